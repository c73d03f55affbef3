"""``spineseg run``: the full pipeline on one case or a cohort, resumable and atomic.

Each case's outputs are written atomically; ``<case>_timings.json`` is written last with the run
record (input, pipeline, stages, labels, centroids, models, options: :mod:`.case_state`), so a case
counts as finished when it exists with the same record and every output; a re-run skips those and
recomputes the others, saying why. A lock per case keeps two runs from computing one case.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..errors import InputError, SpineSegError
from ..methods import DEFAULT_PIPELINE, get_method
from .options import parse_labels

#: The pipeline a DICOM series with Modality MR gets when --pipeline is not given (where the manifest has it).
MR_PIPELINE = "mr-t2w"
#: The default pipeline's stages (another pipeline's are checked against its own method).
STAGE_CHOICES = ",".join(get_method("payer").stage_names)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "inputs", nargs="+", type=Path, metavar="INPUT", help="image file, DICOM folder, or folder of images"
    )
    p.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where to run (default auto)")
    p.add_argument(
        "--stages",
        help=f"comma-separated stages to run (default: all of the pipeline's; {DEFAULT_PIPELINE}: {STAGE_CHOICES})",
    )
    p.add_argument(
        "--centroids", type=Path, help="centroids to use instead of stage 2 (VerSe _ctd.json, .mrk.json, .csv)"
    )
    p.add_argument("--labels", help="only (re)segment these vertebrae, e.g. L1,L2 or 20,21")
    p.add_argument(
        "--series",
        metavar="UID",
        help="the series to take from a DICOM folder input (default: the pipeline's modality, ORIGINAL, regular "
        "slices, most slices; `spineseg series FOLDER` lists them)",
    )
    p.add_argument("--save-heatmaps", action="store_true", help="also write the vertebra heatmaps")
    p.add_argument(
        "--dicom-seg",
        action="store_true",
        help="also write a DICOM Segmentation referencing the input series (<case>_seg-vert_msk.dcm; "
        "DICOM folder inputs only; needs highdicom)",
    )
    p.add_argument(
        "--pipeline",
        help=f"pipeline from the model manifest (default {DEFAULT_PIPELINE}, or {MR_PIPELINE} for a DICOM series "
        "whose Modality is MR; `spineseg pipelines` lists them)",
    )
    p.add_argument("--force", action="store_true", help="recompute cases whose outputs exist")
    p.add_argument("--progress", choices=("bar", "json", "none"), default="bar", help="progress display (default bar)")


def _check_output_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(folder, f"cannot create the output folder ({exc.strerror})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(folder, "output folder is not writable")


class _Progress:
    """tqdm bars (cases, and the current case's stages), JSON lines, or nothing."""

    def __init__(self, mode: str, n_cases: int):
        self.mode, self.n_cases = mode, n_cases
        self.case_bar = self.stage_bar = None
        if mode == "bar":
            from tqdm import tqdm

            self._tqdm = tqdm
            self.case_bar = tqdm(total=n_cases, desc="cases", unit="case", position=0, disable=n_cases == 1)
        self.index = 0

    def start_case(self, index: int, name: str) -> None:
        self.index = index
        if self.mode == "bar":
            self.stage_bar = self._tqdm(
                total=100,
                desc=name,
                position=1 if self.n_cases > 1 else 0,
                leave=False,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}",
            )
        self.emit(0.0, f"{name}: start")

    def emit(self, fraction: float, message: str) -> None:
        overall = (self.index + fraction) / max(self.n_cases, 1)
        if self.mode == "json":
            print(
                json.dumps({"progress": round(overall, 4), "case_progress": round(fraction, 4), "message": message}),
                flush=True,
            )
        elif self.stage_bar is not None:
            self.stage_bar.n = round(100 * fraction)
            self.stage_bar.set_postfix_str(message, refresh=True)
        elif self.mode == "bar":  # between cases (e.g. a skipped one): no bar to show the message on
            self._tqdm.write(f"spineseg: {message}", file=sys.stderr)

    def note(self, fraction: float, message: str) -> None:
        """A message about a case (done, recomputed and why, skipped): shown in every mode, even "none"."""
        if self.mode == "none":
            print(f"spineseg: {message}", file=sys.stderr, flush=True)
        elif self.mode == "bar" and self.stage_bar is None:
            self._tqdm.write(f"spineseg: {message}", file=sys.stderr)
        else:
            self.emit(fraction, message)

    def write(self, text: str) -> None:
        """Text for the user's terminal (stdout) that does not tear the progress bars."""
        if self.mode == "bar":
            self._tqdm.write(text, file=sys.stdout)
        else:
            print(text, flush=True)

    def end_case(self) -> None:
        if self.stage_bar is not None:
            self.stage_bar.close()
            self.stage_bar = None
        if self.case_bar is not None:
            self.case_bar.update(1)

    def close(self) -> None:
        if self.case_bar is not None:
            self.case_bar.close()


def run(args: argparse.Namespace) -> int:
    from .. import bids
    from ..pipeline import open_pipeline
    from .case_state import case_lock, run_record, why_recompute
    from .inputs import discover

    pipeline = open_pipeline(args.pipeline or DEFAULT_PIPELINE, device=args.device)
    stages = pipeline.method.parse_stages(args.stages or pipeline.method.stage_names)
    opened = {pipeline.name: pipeline}
    labels = parse_labels(args.labels)
    cases = discover(args.inputs)
    if args.dicom_seg:
        from ..io.dicom_seg import _highdicom

        _highdicom()  # a missing library is said before any work
        not_dicom = [str(c.path) for c in cases if not c.path.is_dir()]
        if not_dicom:
            raise SpineSegError(f"--dicom-seg needs DICOM folder inputs; not DICOM series: {', '.join(not_dicom[:3])}")
    if args.series and not any(c.path.is_dir() for c in cases):
        raise SpineSegError("--series chooses a series of a DICOM folder input; none of the inputs is a folder")
    if args.centroids and not pipeline.method.resegment_from_points:
        raise SpineSegError(
            f"--centroids: pipeline {pipeline.name!r} ({pipeline.method.name}) "
            "does not start from given vertebra points"
        )
    if args.centroids and len(cases) != 1:
        raise SpineSegError("--centroids needs exactly one input case")
    if args.centroids and not args.centroids.is_file():
        raise InputError(args.centroids, "centroid file not found")
    _check_output_folder(args.output)
    progress = _Progress(args.progress, len(cases))
    failures: list[str] = []
    try:
        for i, case in enumerate(cases):
            names = bids.output_names(case.name)
            case_args, case_pipeline, case_stages = args, pipeline, stages
            chosen = None if args.pipeline else pipeline_for_series(case.path, args.series)
            if chosen is not None and chosen != pipeline.name:
                if chosen not in opened:
                    opened[chosen] = open_pipeline(chosen, device=args.device)
                case_pipeline = opened[chosen]
                case_stages = case_pipeline.method.parse_stages(args.stages or case_pipeline.method.stage_names)
                case_args = argparse.Namespace(**{**vars(args), "pipeline": chosen})
                progress.note(0.0, f"{case.name}: DICOM Modality MR: pipeline {chosen}")
            record = run_record(case.path, case_args, case_pipeline, case_stages, labels, args.centroids)
            reason = "--force" if args.force else why_recompute(args.output / names["timings"], record)
            progress.index = i  # this case's slice of the overall progress, not the previous case's
            if reason is None:
                progress.note(1.0, f"{case.name}: already done (use --force to recompute)")
                progress.end_case()
                continue
            with case_lock(args.output, case.name) as holder:
                if holder is not None:
                    progress.note(1.0, f"{case.name}: skipped, being computed by {holder}")
                    progress.end_case()
                    continue
                if reason not in ("not done yet", "--force"):
                    progress.note(0.0, f"{case.name}: recomputing: {reason}")
                progress.start_case(i, case.name)
                try:
                    _run_case(case, case_args, case_pipeline, case_stages, labels, progress, record)
                except InputError as exc:
                    if len(cases) == 1:
                        raise
                    failures.append(str(exc))
                    print(f"spineseg: error: {exc}", file=sys.stderr)
                finally:
                    progress.end_case()
    finally:
        progress.close()
    if failures:
        raise SpineSegError(f"{len(failures)} of {len(cases)} cases failed (see the messages above)")
    return 0


def pipeline_for_series(path: Path, series: str | None = None) -> str | None:
    """``MR_PIPELINE`` for a DICOM folder whose series (``series``, else the folder's choice) is MR, else None."""
    if not path.is_dir():
        return None
    from ..io.images import dicom_modality
    from ..models import Manifest

    if dicom_modality(path, series) != "MR":
        return None
    try:
        return MR_PIPELINE if MR_PIPELINE in Manifest.load().pipelines else None
    except SpineSegError:
        return None


def _read_input(case, args, pipeline, progress: _Progress):
    """The case's image and, for a DICOM folder, the UID of the series this pipeline takes (said with why)."""
    from ..io import read_image

    if not case.path.is_dir():
        return read_image(case.path), None
    from ..io.dicom_series import choose_series, read_series
    from ..io.images import check_volume

    modality = pipeline.method.modalities[0] if pipeline.method.modalities else None
    series, why = choose_series(case.path, args.series, modality)
    progress.note(0.0, f"{case.name}: {series.summary()}: {why}")
    # The chosen series itself, not read_image(uid), which would choose (and check its slices) again.
    return check_volume(read_series(case.path, series), case.path), series.uid


def _run_case(case, args, pipeline, stages, labels, progress: _Progress, record: dict) -> None:
    import time

    from .. import bids
    from .. import labels as L
    from ..io import (
        read_centroids,
        write_centroids,
        write_image,
        write_json_atomic,
        write_labelmap,
        write_text_atomic,
    )
    from ..measurements import measure_vertebrae
    from ..report import write_snapshot
    from ..report.case_table import case_table, measurements_csv

    image, series_uid = _read_input(case, args, pipeline, progress)
    given = read_centroids(args.centroids, reference=image) if args.centroids else None
    if given is not None and not given:
        raise InputError(args.centroids, "holds no vertebra point: nothing to segment")
    if given is not None and labels is not None and not set(labels) & set(given.labels):
        raise InputError(
            args.centroids,
            f"has no point of --labels {', '.join(L.name_of(v) for v in labels)} "
            f"(its points: {', '.join(L.name_of(v) for v in given.labels)})",
        )
    t0 = time.perf_counter()
    result = pipeline.run(
        image,
        stages=stages,
        centroids=given,
        labels=labels,
        progress=lambda f, m: progress.emit(f, f"{case.name}: {m}"),
    )
    for message in result.messages:
        print(f"spineseg: warning: {case.name}: {message}", file=sys.stderr)
    if labels is not None and result.labelmap is not None:
        import numpy as np
        import SimpleITK as sitk

        if not np.isin(sitk.GetArrayViewFromImage(result.labelmap), list(labels)).any():
            found = ", ".join(L.name_of(v) for v in result.centroids.labels) or "none"
            raise InputError(
                case.path,
                f"--labels {', '.join(L.name_of(v) for v in labels)}: none of these vertebrae is in the result "
                f"(vertebrae found: {found}); nothing written",
            )
    names = bids.output_names(case.name)
    out = args.output
    written = []
    if result.labelmap is not None:
        written.append(write_labelmap(result.labelmap, out / names["labels"]))
    if result.semantic is not None:
        written.append(write_labelmap(result.semantic, out / names["semantic"]))
    rev = result.review
    flags = rev.vertebrae if rev else None
    if result.centroids or pipeline.method.points_stage in stages or given is not None:
        written.append(write_centroids(result.centroids, out / names["centroids"], reference=image, flags=flags))
    measurements = None
    if result.labelmap is not None:
        # Core attenuation only where the input is CT in Hounsfield units.
        hounsfield = "ct" in pipeline.method.modalities and result.input_warning is None
        measurements = measure_vertebrae(result.labelmap, image, hounsfield=hounsfield)
        doc = {"case": case.name, **measurements.as_dict(), "review": rev.as_dict() if rev else None}
        written.append(write_json_atomic(doc, out / names["measurements"]))
        written.append(write_text_atomic(measurements_csv(measurements, rev), out / names["measurements_csv"]))
    if args.save_heatmaps and result.localization is not None:
        written.append(write_image(result.heatmaps, out / names["heatmaps"]))
        channels = result.localization.labels
        write_json_atomic(
            {
                "labels": channels,
                "names": [L.name_of(c) for c in channels],
                "grid_spacing_mm": list(result.localization.grid.spacing),
            },
            out / f"{case.name}_heatmaps.json",
        )
    if args.dicom_seg and result.labelmap is not None:
        from ..io.dicom_seg import uncoded_labels, write_dicom_seg

        shas = {stage: pipeline.card(stage).sha256 for stage in stages if stage in pipeline.method.stage_names}
        seg = write_dicom_seg(
            result.labelmap,
            case.path,
            out / f"{case.name}_seg-vert_msk.dcm",
            pipeline=pipeline.name,
            weights_sha256=shas,
            series_uid=series_uid,
        )
        left_out = uncoded_labels(result.labelmap) if seg is not None else []
        if left_out:
            print(
                f"spineseg: warning: {case.name}: the DICOM SEG leaves out the labels without a SNOMED CT code "
                f"({', '.join(str(v) for v in left_out)}); the NIfTI label map has them",
                file=sys.stderr,
            )
        if seg is not None:
            written.append(seg)
            if measurements is not None:
                from ..io.dicom_sr import write_measurement_report

                sr = write_measurement_report(
                    seg,
                    measurements,
                    case.path,
                    out / names["measurements_sr"],
                    pipeline=pipeline.name,
                    series_uid=series_uid,
                )
                if sr is not None:
                    written.append(sr)
        else:
            print(f"spineseg: warning: {case.name}: no vertebra segmented: no DICOM SEG written", file=sys.stderr)
    if result.labelmap is not None or result.centroids:
        written.append(
            write_snapshot(
                out / names["snapshot"],
                image,
                result.labelmap,
                result.centroids,
                title=case.name,
                notes=rev.lines() if rev else (),
            )
        )
    timings = {
        "case": case.name,
        "input": str(case.path),
        "stages": list(stages),
        "device": str(pipeline.device),
        "seconds": {k: round(v, 3) for k, v in result.timings.items()},
        "wall_seconds": round(time.perf_counter() - t0, 3),
        "vertebrae": [L.name_of(lab) for lab in result.centroids.labels],
        "messages": result.messages,
        "review": rev.as_dict() if rev else None,
        "outputs": [p.name for p in written],
        "record": record,  # what these outputs depend on: a rerun with anything else recomputes the case
    }
    write_json_atomic(timings, out / names["timings"])
    if rev and rev.identification_doubtful:
        print(f"spineseg: warning: {case.name}: the vertebra levels are doubtful (see REVIEW)", file=sys.stderr)
    if rev and rev.incomplete:
        print(f"spineseg: warning: {case.name}: vertebrae in the image are missing (see REVIEW)", file=sys.stderr)
    if args.progress != "json" and (result.centroids or measurements):
        progress.write(f"{case.name}:\n{case_table(result.centroids, measurements, rev)}")
