"""The SpineSeg run API on MRML nodes: run the pipeline (or some stages), update after edits, shift labels.

A run exports the input volume to a temporary NIfTI file, starts ``python -m SpineSegLib run ...
--progress json`` in a subprocess (``PythonSlicer`` inside Slicer; any Python in tests), follows its
progress lines, and when it has finished turns the output files into nodes (:mod:`.results`).
Nodes change only at that last step, so a cancelled or failed run leaves the scene as it was.

Blocking use (scripts, ``Slicer --no-main-window``)::

    outcome = SpineSegLogic().process(volume)                 # waitForCompletion=True

GUI use: ``run = logic.process(volume, waitForCompletion=False)``, then call ``run.poll()`` from a
timer until it returns True and hand the run to ``logic.finish(run)``; ``run.cancel()`` stops it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from SpineSegLib import labels as L
from SpineSegLib.centroids import Centroids
from SpineSegLib.methods import DEFAULT_PIPELINE, MethodSpec, get_method

from . import editing, measurements_table, results
from . import nodes as N
from .paths import library_root
from .process import EXIT_CANCELLED, PipelineProcess

#: The default method and its stages (the registry is the one place they are written).
METHOD = get_method("payer")
STAGES = METHOD.stage_names
#: What the "vertebrae" button runs: the stages up to the vertebra points, for review before segmenting.
POINT_STAGES = METHOD.stages_through(METHOD.points_stage)
DEVICES = ("auto", "cpu", "cuda")
ProgressCallback = Callable[[float, str], None]
LogCallback = Callable[[str], None]


@dataclass(frozen=True)
class StageActions:
    """What the module's buttons run for one method (None: the button is hidden for that method).

    ``run_all``: every stage. ``run_first``: the first stage alone (the region box), offered where the
    method has a point-review step. ``run_points``: up to the vertebra points, for review before
    segmenting. ``segment_from_points`` / ``resegment_edited``: segmentation from the (edited) points.
    ``heatmaps``: the method has heatmap channels to show. Label shift and rename work for every method.
    """

    run_all: tuple[str, ...]
    run_first: tuple[str, ...] | None
    run_points: tuple[str, ...] | None
    segment_from_points: tuple[str, ...] | None
    resegment_edited: bool
    heatmaps: bool


def stage_actions(spec: MethodSpec) -> StageActions:
    """The buttons ``spec`` supports; the others are hidden, not left to fail."""
    points = spec.stages_through(spec.points_stage) if spec.points_stage else None
    from_points = None
    if spec.resegment_from_points:
        from_points = tuple(s.name for s in spec.stages if "centroids" in s.needs)
    return StageActions(
        run_all=spec.stage_names,
        run_first=spec.stage_names[:1] if points and len(points) > 1 else None,
        run_points=points,
        segment_from_points=from_points or None,
        resegment_edited=bool(from_points),
        heatmaps=spec.heatmap_stage is not None,
    )


def _needs_points(spec: MethodSpec, stages: Sequence[str]) -> bool:
    """Whether ``stages`` start from points no stage among them makes (segmentation from given points)."""
    made = False
    for stage in spec.stages:
        if stage.name not in stages:
            continue
        if "centroids" in stage.needs and not made:
            return True
        made = made or "centroids" in stage.produces
    return False


class SpineSegRunError(RuntimeError):
    """The pipeline subprocess failed; the message is its own error message."""


class CancelledRun(RuntimeError):
    """The run was cancelled; no node was changed."""


@dataclass
class RunOutcome:
    """What a finished run changed."""

    segmentation: object | None = None
    centroids: object | None = None  # markups node
    heatmap: object | None = None
    structures: object | None = None  # segmentation node of the MR pipeline's structures
    measurements: object | None = None  # table node: per-vertebra measurements (measurements_table)
    vertebrae: list[str] = field(default_factory=list)
    chain_problems: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    merge: editing.MergeReport | None = None
    edit: editing.ChainEdit | None = None


@dataclass
class PipelineRun:
    """A started run: poll it until it has finished, then give it to :meth:`SpineSegLogic.finish`."""

    kind: str  # "run" or "update"
    volume: object
    stages: tuple[str, ...]
    workdir: Path
    process: PipelineProcess
    progress: ProgressCallback | None = None
    log: LogCallback | None = None
    labels: list[int] | None = None
    centroids: Centroids | None = None  # centroids given to the subprocess
    edit: editing.ChainEdit | None = None
    overwrite_edited: bool = False
    partial: RunOutcome | None = None  # what an update already changed before the subprocess
    fraction: float = 0.0
    started: float = field(default_factory=time.monotonic)

    def poll(self) -> bool:
        """Forward new progress/log lines to the callbacks; True once the subprocess has ended."""
        for event in self.process.poll():
            if event.kind == "progress":
                self.fraction = event.fraction or 0.0
                if self.progress:
                    self.progress(self.fraction, event.message)
            elif self.log and event.message.strip():
                self.log(event.message)
        return self.process.returncode is not None

    def wait(self, interval: float = 0.1) -> None:
        while not self.poll():
            time.sleep(interval)
        self.poll()

    def cancel(self) -> None:
        """Kill the subprocess tree; :meth:`SpineSegLogic.finish` then changes nothing."""
        self.process.cancel()

    @property
    def cancelled(self) -> bool:
        return self.process.cancelled or self.process.returncode == EXIT_CANCELLED


class SpineSegLogic:
    """Runs SpineSeg on volume nodes (Qt-free; the module's logic class and the batch script use it)."""

    def __init__(
        self,
        python_executable: str | None = None,
        environment: dict[str, str] | None = None,
        work_root: str | os.PathLike | None = None,
        installer=None,
    ):
        self.python_executable = python_executable or default_python_executable()
        self.environment = dict(environment or {})
        self.work_root = Path(work_root) if work_root else Path(tempfile.gettempdir()) / "SpineSeg"
        self.installer = installer  # dependencies.Installer; None: no dependency check before runs
        self._heatmap_dir: Path | None = None

    def method_of(self, pipeline: str) -> MethodSpec:
        """The registered method ``pipeline`` runs, from the manifest the subprocess will use."""
        from SpineSegLib.errors import SpineSegError
        from SpineSegLib.models import Manifest

        resources = self.environment.get("SPINESEG_RESOURCES")
        path = Path(resources) / "models" / "manifest.json" if resources else None
        try:
            return Manifest.load(path).method(pipeline)
        except SpineSegError as exc:
            if pipeline != DEFAULT_PIPELINE:
                raise SpineSegRunError(str(exc)) from None
            return METHOD  # no manifest yet: the run itself reports the missing models

    # ------------------------------------------------------------------------------------------
    # Subprocess

    def command(
        self,
        input_path: Path,
        output: Path,
        stages: Sequence[str],
        pipeline: str = DEFAULT_PIPELINE,
        device: str = "auto",
        centroids_file: Path | None = None,
        labels: Iterable[int] | None = None,
        save_heatmaps: bool = True,
    ) -> list[str]:
        if device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
        cmd = [self.python_executable, "-m", "SpineSegLib", "run", str(input_path), "-o", str(output)]
        cmd += ["--stages", ",".join(stages), "--pipeline", pipeline, "--device", device, "--progress", "json"]
        cmd += ["--force"]
        if centroids_file is not None:
            cmd += ["--centroids", str(centroids_file)]
        if labels is not None:
            cmd += ["--labels", ",".join(L.name_of(x) for x in labels)]
        if save_heatmaps:
            cmd += ["--save-heatmaps"]
        return cmd

    def subprocess_environment(self) -> dict[str, str]:
        env = _base_environment()
        root = str(library_root())
        env["PYTHONPATH"] = os.pathsep.join([root, *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.environment)
        return env

    def start(
        self,
        volume,
        stages: Sequence[str] | None = None,
        pipeline: str = DEFAULT_PIPELINE,
        device: str = "auto",
        centroids: Centroids | None = None,
        labels: Iterable[int] | None = None,
        progress: ProgressCallback | None = None,
        log: LogCallback | None = None,
        kind: str = "run",
    ) -> PipelineRun:
        """Export ``volume`` and start the subprocess; returns at once. ``stages``: default all of the method's."""
        from SpineSegLib.errors import SpineSegError

        spec = self.method_of(pipeline)
        try:
            stages = spec.parse_stages(spec.stage_names if stages is None else stages)
        except SpineSegError as exc:
            raise ValueError(str(exc)) from None
        if _needs_points(spec, stages) and not centroids:
            raise ValueError("the segmentation stage needs vertebra points: run the vertebrae stage first")
        self.work_root.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix="run-", dir=self.work_root))
        try:
            input_path = workdir / "input.nii"
            sitk.WriteImage(N.sitk_from_volume(volume), str(input_path), False)
            centroids_file = None
            if centroids:
                from SpineSegLib.io import write_centroids

                centroids_file = write_centroids(centroids, workdir / "centroids.mrk.json")
            labels = None if labels is None else L.anatomical_order(labels)
            cmd = self.command(
                input_path, workdir / "out", stages, pipeline, device, centroids_file, labels, save_heatmaps=True
            )
            if log:
                log("Running: " + " ".join(cmd[1:]))
            proc = PipelineProcess(cmd, env=self.subprocess_environment(), cwd=str(workdir))
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        return PipelineRun(kind, volume, stages, workdir, proc, progress, log, labels, centroids)

    # ------------------------------------------------------------------------------------------
    # The public API

    def process(
        self,
        inputVolume,
        stages: Sequence[str] | None = None,
        pipeline: str = DEFAULT_PIPELINE,
        device: str = "auto",
        waitForCompletion: bool = True,
        interactive: bool = False,
        progressCallback: ProgressCallback | None = None,
        logCallback: LogCallback | None = None,
    ):
        """Run ``stages`` (default: all of the pipeline's) on ``inputVolume``.

        Blocking: the :class:`RunOutcome`, else the :class:`PipelineRun`.

        The segmentation stage without the vertebrae stage uses the volume's current vertebra points.
        ``interactive`` allows dialogs (dependency installation); without it nothing is ever asked.
        """
        self._check_dependencies(interactive, logCallback)
        centroids = None
        if stages is not None and _needs_points(self.method_of(pipeline), stages):
            markups = results.find_output(inputVolume, results.ROLE_CENTROIDS)
            if markups is None:
                raise ValueError("no vertebra points for this volume yet: run the vertebrae stage first")
            centroids, problems = N.centroids_from_markups(markups)
            if problems:
                raise ValueError("; ".join(problems))
        run = self.start(inputVolume, stages, pipeline, device, centroids, None, progressCallback, logCallback)
        if not waitForCompletion:
            return run
        run.wait()
        return self.finish(run)

    def update_segmentation(
        self,
        inputVolume,
        pipeline: str = DEFAULT_PIPELINE,
        device: str = "auto",
        overwriteEdited: bool = False,
        waitForCompletion: bool = True,
        interactive: bool = False,
        progressCallback: ProgressCallback | None = None,
        logCallback: LogCallback | None = None,
    ):
        """Apply the edits of the vertebra points to the segmentation.

        Moved and added vertebrae are segmented again (only them), removed ones lose their segment and
        renamed ones are renamed. Returns a :class:`RunOutcome` (or the run when not waiting); when only
        renames/removals happened no subprocess is needed and the outcome comes back at once.
        """
        markups = results.find_output(inputVolume, results.ROLE_CENTROIDS)
        segmentation = results.find_output(inputVolume, results.ROLE_SEGMENTATION)
        if markups is None or segmentation is None:
            raise ValueError("run SpineSeg on this volume first: there are no vertebra points or segments to update")
        current, edit, problems = editing.detect_edits(markups)
        if problems:
            raise ValueError("; ".join(problems))
        outcome = RunOutcome(segmentation=segmentation, centroids=markups, edit=edit)
        todo = edit.to_segment
        if not todo:  # renames and removals only: nothing to compute
            outcome.merge = _apply_renames_and_removals(segmentation, edit, editing.MergeReport())
            results.store_run_centroids(markups, current)
            outcome.vertebrae = [L.name_of(k) for k in current]
            outcome.chain_problems = editing.chain_problems(current)
            return outcome
        self._check_dependencies(interactive, logCallback)
        run = self.start(
            inputVolume, ("segmentation",), pipeline, device, current, todo, progressCallback, logCallback, "update"
        )
        run.edit = edit
        run.overwrite_edited = overwriteEdited
        run.partial = outcome
        if not waitForCompletion:
            return run
        run.wait()
        return self.finish(run)

    def finish(self, run: PipelineRun) -> RunOutcome:
        """Turn a finished run's outputs into nodes (and remove its temporary folder)."""
        try:
            run.poll()
            if run.cancelled:
                raise CancelledRun("SpineSeg run cancelled; nothing was changed")
            code = run.process.returncode
            if code != 0:
                detail = "\n".join(line for line in run.process.stderr_lines if line.strip())[-2000:]
                raise SpineSegRunError(detail or f"the SpineSeg pipeline failed (exit code {code})")
            outputs = _outputs(run.workdir / "out", "input")
            if run.kind == "update":
                return self._finish_update(run, outputs)
            return self._finish_run(run, outputs)
        finally:
            shutil.rmtree(run.workdir, ignore_errors=True)

    def _finish_run(self, run: PipelineRun, outputs: dict[str, Path]) -> RunOutcome:
        volume = run.volume
        outcome = RunOutcome()
        outcome.timings = _read_json(outputs["timings"]) if outputs["timings"].is_file() else {}
        outcome.messages += list(outcome.timings.get("messages", []))
        review = outcome.timings.get("review") or {}
        outcome.messages += [f"REVIEW: {line}" for line in review.get("case", [])]
        outcome.messages += shift_hint(review.get("suggested_shift"))
        channels = None
        if outputs["heatmaps"].is_file():
            channels = results.read_heatmap_file(outputs["heatmaps"])
            kept = self._keep_heatmap_file(volume, outputs["heatmaps"])
            outcome.heatmap = results.import_heatmaps(volume, channels, source_file=kept)
        if outputs["centroids"].is_file():
            from SpineSegLib.io import read_centroids

            previous_markups = results.find_output(volume, results.ROLE_CENTROIDS)
            previous = results.run_centroids(previous_markups) if previous_markups is not None else None
            centroids = read_centroids(outputs["centroids"], reference=grid_of(volume))
            responses = {}
            if channels is not None:
                for label, point in centroids.items():
                    value = channels.response(label, point)
                    if value is not None:
                        responses[label] = value
            from SpineSegLib.io.verse_ctd import verse_flags

            flags = verse_flags(_read_json(outputs["centroids"]))
            outcome.centroids = results.import_centroids(volume, centroids, responses, flags=flags)
            outcome.vertebrae = [L.name_of(k) for k in centroids]
            outcome.chain_problems = editing.chain_problems(centroids)
            if "segmentation" not in run.stages and results.find_output(volume, results.ROLE_SEGMENTATION):
                # The existing segments were made from the previous points: keep those as the reference,
                # so that "Update segmentation" re-segments the vertebrae whose point this run moved.
                if previous is not None:
                    results.store_run_centroids(outcome.centroids, previous)
                else:
                    outcome.centroids.RemoveAttribute(results.RUN_CENTROIDS_ATTRIBUTE)
        elif "vertebrae" in run.stages:
            outcome.messages.append("no vertebra was found")
        if run.stages == ("spine",):
            seconds = outcome.timings.get("seconds", {}).get("spine")
            found = not any("no spine" in m for m in outcome.messages)
            outcome.messages.append(
                ("spine found" if found else "no spine found") + (f" ({seconds:.1f} s)" if seconds is not None else "")
            )
        if outputs["labels"].is_file():
            from SpineSegLib.io import read_labelmap

            outcome.segmentation, messages = results.import_segmentation(volume, read_labelmap(outputs["labels"]))
            outcome.messages += messages
            if run.centroids is not None:  # segmentation from the user's points: they are now the run's points
                markups = results.find_output(volume, results.ROLE_CENTROIDS)
                if markups is not None:
                    results.store_run_centroids(markups, run.centroids)
        if outputs["measurements_csv"].is_file():
            text = outputs["measurements_csv"].read_text(encoding="utf-8")
            outcome.measurements = measurements_table.import_measurements(volume, text)
        if outputs["semantic"].is_file():  # the MR pipeline's structures (canal, cord, discs, processes ...)
            from SpineSegLib.io import read_labelmap

            outcome.structures = results.import_structures(volume, read_labelmap(outputs["semantic"]))
        return outcome

    def _finish_update(self, run: PipelineRun, outputs: dict[str, Path]) -> RunOutcome:
        from SpineSegLib.io import read_labelmap

        outcome = run.partial or RunOutcome()
        if not outputs["labels"].is_file():
            raise SpineSegRunError("the pipeline wrote no label map")
        new = sitk.GetArrayFromImage(read_labelmap(outputs["labels"]))
        # Only now, after the subprocess succeeded, change any segment: a cancelled update changes nothing.
        renamed = _apply_renames_and_removals(
            outcome.segmentation, run.edit or editing.ChainEdit(), editing.MergeReport()
        )
        report = editing.merge_segments(
            outcome.segmentation, run.volume, new, run.labels or [], overwrite_edited=run.overwrite_edited
        )
        report.renamed, report.removed = renamed.renamed, renamed.removed
        outcome.merge = report
        outcome.measurements = measurements_table.remeasure(run.volume, outcome.segmentation, list(run.labels or []))
        results.store_run_centroids(outcome.centroids, run.centroids)
        outcome.vertebrae = [L.name_of(k) for k in run.centroids]
        outcome.chain_problems = editing.chain_problems(run.centroids)
        outcome.timings = _read_json(outputs["timings"]) if outputs["timings"].is_file() else {}
        return outcome

    def _keep_heatmap_file(self, volume, path: Path) -> Path:
        """Copy the run's heatmaps out of its temporary folder (the node re-reads channels from there)."""
        if self._heatmap_dir is None:  # one folder per logic: node IDs repeat across Slicer sessions
            self.work_root.mkdir(parents=True, exist_ok=True)
            self._heatmap_dir = Path(tempfile.mkdtemp(prefix="heatmaps-", dir=self.work_root))
        folder = self._heatmap_dir
        safe = "".join(c if c.isalnum() else "_" for c in volume.GetID())
        target = folder / f"{safe}_heatmaps.nii.gz"
        shutil.copyfile(path, target)
        meta = path.with_name(path.name.replace("_heatmaps.nii.gz", "_heatmaps.json"))
        if meta.is_file():
            shutil.copyfile(meta, target.with_name(f"{safe}_heatmaps.json"))
        return target

    def _check_dependencies(self, interactive: bool, log: LogCallback | None) -> None:
        if self.installer is not None:
            installed = self.installer.ensure(interactive=interactive)
            if installed and log:
                log("Installed: " + ", ".join(installed))

    # ------------------------------------------------------------------------------------------
    # Editing helpers

    def shift_labels(self, inputVolume, steps: int) -> editing.ShiftReport:
        """Rename every vertebra point and segment ``steps`` positions down (+) or up (-) the spine."""
        markups = results.find_output(inputVolume, results.ROLE_CENTROIDS)
        if markups is None:
            raise ValueError("no vertebra points for this volume: run SpineSeg first")
        return editing.shift_labels(markups, results.find_output(inputVolume, results.ROLE_SEGMENTATION), steps)

    def show_heatmap(self, inputVolume, label: int | None) -> None:
        heat = results.find_output(inputVolume, results.ROLE_HEATMAP)
        if heat is None:
            raise ValueError("no heatmap for this volume: run the vertebrae stage first")
        results.show_heatmap_channel(heat, label)


# ----------------------------------------------------------------------------------------------


def _apply_renames_and_removals(segmentation, edit: editing.ChainEdit, report: editing.MergeReport):
    if edit.renamed:
        report.renamed = editing.rename_segments(segmentation, edit.renamed)
    if edit.removed:
        report.removed = editing.remove_segments(segmentation, edit.removed)
    return report


def grid_of(volume):
    """The volume's voxel grid as a SpineSegLib Grid (LPS)."""
    from SpineSegLib.geometry import Grid

    a = N.ijk_to_ras(volume)
    spacing = np.linalg.norm(a[:3, :3], axis=0)
    direction = N.LPS_TO_RAS @ (a[:3, :3] / spacing)
    return Grid(
        tuple(int(d) for d in volume.GetImageData().GetDimensions()),
        tuple(float(s) for s in spacing),
        tuple(float(o) for o in N.LPS_TO_RAS @ a[:3, 3]),
        tuple(float(d) for d in direction.ravel()),
    )


def _outputs(folder: Path, case: str) -> dict[str, Path]:
    from SpineSegLib.bids import output_names

    return {key: folder / name for key, name in output_names(case).items()}


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def default_python_executable() -> str:
    """``PythonSlicer`` inside Slicer (the same Python with Slicer's packages), else this interpreter."""
    try:
        import slicer

        app = getattr(slicer, "app", None)
    except ImportError:
        app = None
    if app is not None:
        found = shutil.which("PythonSlicer")
        if found:
            return found
        home = Path(app.slicerHome)
        for candidate in (home / "bin" / "PythonSlicer", home / "bin" / "PythonSlicer.exe"):
            if candidate.is_file():
                return str(candidate)
    return sys.executable


def _base_environment() -> dict[str, str]:
    """Slicer's startup environment inside Slicer (what PythonSlicer expects), else this process's."""
    env = None
    try:
        import slicer

        if getattr(slicer, "app", None) is not None:
            env = dict(slicer.util.startupEnvironment())
    except (ImportError, AttributeError):
        env = None
    if env is None:
        return dict(os.environ)
    for key, value in os.environ.items():  # settings made in this session (model cache, resources)
        if key.startswith("SPINESEG_"):
            env[key] = value
    return env


def shift_hint(shift: int | None) -> list[str]:
    """How to apply the renaming the review suggests with the module's shift buttons (nothing is renamed)."""
    if not shift:
        return []
    button = "Shift labels down" if shift > 0 else "Shift labels up"
    times = "once" if abs(shift) == 1 else f"{abs(shift)} times"
    return [f"REVIEW: to rename as the ribs and the sacrum suggest, press '{button}' {times}"]
