"""Run SpineSeg on one or many volumes without the GUI, through the module logic.

    Slicer --no-splash --no-main-window --python-script spineseg_batch.py \
        --input ct1.nii.gz ct2.nrrd --output results/ [--device cpu] [--pipeline ct-full-spine] [--no-heatmaps]

For each input ``<name>`` it writes ``<name>.seg.nrrd`` (one segment per vertebra, with terminology),
``<name>_vertebrae.mrk.json`` (vertebra points, LPS) and ``<name>_heatmap.nrrd`` (maximum over the
vertebra heatmaps). It blocks, never opens a dialog, and exits with 0 (all done), 1 (some input
failed) or 2 (bad arguments, missing Python packages). Cases whose three outputs exist are skipped unless ``--force``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from pathlib import Path

# Installed: <qt-scripted-modules>/Resources/Scripts/this.py -> SpineSegSlicerLib is in <qt-scripted-modules>.
# Source tree: SpineSeg/Resources/Scripts/this.py -> SpineSegSlicerLib is in SpineSeg/.
_MODULE_DIR = Path(__file__).resolve().parents[2]
if str(_MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(_MODULE_DIR))


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="spineseg_batch.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--input", "-i", nargs="+", required=True, type=Path, help="volume files (NIfTI, NRRD, ...)")
    p.add_argument("--output", "-o", required=True, type=Path, help="output folder")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--pipeline", default="ct-full-spine")
    p.add_argument("--no-heatmaps", action="store_true", help="do not write the heatmap volume")
    p.add_argument("--force", action="store_true", help="recompute cases whose outputs exist")
    return p.parse_args(argv)


def output_paths(output: Path, name: str) -> dict[str, Path]:
    return {
        "segmentation": output / f"{name}.seg.nrrd",
        "centroids": output / f"{name}_vertebrae.mrk.json",
        "heatmap": output / f"{name}_heatmap.nrrd",
    }


def load_volume(scene, path: Path):
    """Load a scalar volume through a storage node (works in Slicer and on the bare Slicer core libraries)."""
    from SpineSegLib.bids import case_name

    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", case_name(path))
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(path))
    node.SetAndObserveStorageNodeID(storage.GetID())
    if not storage.ReadData(node):
        scene.RemoveNode(node)
        scene.RemoveNode(storage)
        raise RuntimeError(f"{path}: cannot be read as a volume")
    node.CreateDefaultDisplayNodes()
    return node


def save_outputs(outcome, paths: dict[str, Path], heatmaps: bool) -> list[Path]:
    import slicer

    written = []
    if outcome.segmentation is not None:
        storage = slicer.vtkMRMLSegmentationStorageNode()
        storage.SetFileName(str(paths["segmentation"]))
        if not storage.WriteData(outcome.segmentation):
            raise RuntimeError(f"writing {paths['segmentation']} failed")
        written.append(paths["segmentation"])
    if outcome.centroids is not None:
        storage = slicer.vtkMRMLMarkupsJsonStorageNode()
        storage.SetFileName(str(paths["centroids"]))
        storage.SetCoordinateSystem(slicer.vtkMRMLStorageNode.CoordinateSystemLPS)
        if not storage.WriteData(outcome.centroids):
            raise RuntimeError(f"writing {paths['centroids']} failed")
        written.append(paths["centroids"])
    if heatmaps and outcome.heatmap is not None:
        storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
        storage.SetFileName(str(paths["heatmap"]))
        if not storage.WriteData(outcome.heatmap):
            raise RuntimeError(f"writing {paths['heatmap']} failed")
        written.append(paths["heatmap"])
    return written


def main(argv: list[str] | None = None, scene=None, logic=None) -> int:
    """Process every input; returns the exit code. ``scene``/``logic`` default to Slicer's scene and a new logic."""
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:
        return 2 if exc.code else 0
    import slicer
    from SpineSegSlicerLib.dependencies import DependencyError, Installer
    from SpineSegSlicerLib.logic import SpineSegLogic

    from SpineSegLib.bids import case_name

    scene = scene or slicer.mrmlScene
    logic = logic or SpineSegLogic(installer=Installer(slicer))
    try:
        if logic.installer is not None:
            logic.installer.ensure(interactive=False)  # one clear message instead of a failure per case
    except DependencyError as exc:
        print(f"spineseg_batch: {exc}", file=sys.stderr, flush=True)
        return 2
    args.output.mkdir(parents=True, exist_ok=True)
    failed = 0
    for n, path in enumerate(args.input, start=1):
        name = case_name(path)
        paths = output_paths(args.output, name)
        wanted = [paths["segmentation"], paths["centroids"]] + ([] if args.no_heatmaps else [paths["heatmap"]])
        if not args.force and all(p.is_file() for p in wanted):
            print(f"[{n}/{len(args.input)}] {name}: already done", flush=True)
            continue
        print(f"[{n}/{len(args.input)}] {name}: {path}", flush=True)
        try:
            volume = load_volume(scene, path)
            outcome = logic.process(
                volume,
                pipeline=args.pipeline,
                device=args.device,
                waitForCompletion=True,
                interactive=False,
                progressCallback=lambda f, m, name=name: print(f"  {name}: {100 * f:3.0f}% {m}", flush=True),
            )
            for problem in outcome.chain_problems:
                print(f"  {name}: check the vertebra chain: {problem}", flush=True)
            written = save_outputs(outcome, paths, not args.no_heatmaps)
            print(
                f"  {name}: vertebrae {', '.join(outcome.vertebrae) or 'none'}; wrote {len(written)} files", flush=True
            )
        except Exception as exc:
            failed += 1
            logging.debug(traceback.format_exc())
            print(f"  {name}: FAILED: {exc}", file=sys.stderr, flush=True)
        finally:
            scene.Clear(0)  # one case at a time: memory stays flat over a long batch
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
