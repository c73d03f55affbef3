"""When a case of ``spineseg run`` is finished, and who is computing it.

A case counts as finished only when its ``<case>_timings.json`` holds a run record equal to the one
this run would write (the input's size and time, the pipeline, stages, labels, given centroids, the
models' and cards' sha256 and the output options) and every output it lists exists; otherwise it is
recomputed and the reason is printed. A lock file per case keeps two runs on one folder from computing
the same case; a lock whose process is gone is taken over, and the temporary files a killed run left
for that case are removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..models.hashing import sha256_of

#: Version of the set of outputs a finished case holds (see :func:`run_record`).
OUTPUTS_VERSION = 2


def input_signature(path: Path) -> dict[str, Any]:
    """Size and modification time of the input file, or of every file of an input folder (DICOM)."""
    if path.is_dir():
        listing = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in path.iterdir() if p.is_file())
        return {
            "folder": str(path),
            "files": len(listing),
            "listing_sha1": hashlib.sha1(repr(listing).encode()).hexdigest(),
        }
    st = path.stat()
    return {"file": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def run_record(case_path: Path, args, pipeline, stages, labels, centroids_path: Path | None) -> dict[str, Any]:
    """What the outputs of a case depend on (compared on a rerun; written into the timings file)."""
    models = {}
    for stage in stages:
        card = pipeline.card(stage)
        card_sha = sha256_of(Path(card.source)) if card.source and Path(card.source).is_file() else ""
        models[stage] = {"weights_sha256": card.sha256, "card_sha256": card_sha}
    return {
        "input": input_signature(case_path),
        "pipeline": pipeline.name,
        "stages": list(stages),
        "labels": None if labels is None else [int(v) for v in labels],
        "centroids_sha256": sha256_of(centroids_path) if centroids_path else None,
        "models": models,
        "options": {
            "save_heatmaps": bool(args.save_heatmaps),
            "dicom_seg": bool(args.dicom_seg),
            # only when given, so that cases finished before --series existed stay finished
            **({"series": args.series} if getattr(args, "series", None) else {}),
        },
        # What a finished case holds; raised when a version adds outputs (2: measurements, review flags;
        # with --dicom-seg, "2+sr": the DICOM measurement report, so only DICOM SEG cases are redone).
        "outputs_version": f"{OUTPUTS_VERSION}+sr" if args.dicom_seg else OUTPUTS_VERSION,
    }


_WHAT = {
    "input": "the input changed",
    "pipeline": "another pipeline",
    "stages": "other stages",
    "labels": "other --labels",
    "centroids_sha256": "other --centroids",
    "models": "other model weights or cards",
    "options": "other output options",
    "outputs_version": "this SpineSeg writes more outputs (measurements, review flags, DICOM measurement report)",
}


def why_recompute(timings_path: Path, record: dict[str, Any]) -> str | None:
    """None when the case is finished with exactly this record, else the reason to compute it (again)."""
    if not timings_path.exists():
        return "not done yet"
    try:
        done = json.loads(timings_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "its timings file is unreadable"
    old = done.get("record")
    if not isinstance(old, dict):
        return "finished by a SpineSeg without run records"
    for key, what in _WHAT.items():
        if old.get(key) != record.get(key):
            return what
    for name in done.get("outputs", []):
        if not (timings_path.parent / name).exists():
            return f"output {name} is missing"
    return None


@contextlib.contextmanager
def case_lock(folder: Path, case: str) -> Iterator[str | None]:
    """Hold ``<folder>/.<case>.lock`` for the block; yields None when held, else who holds it.

    A lock of a process that no longer runs (on this host) is stale: it is taken over, and the
    temporary files of that case's atomic writes (``.<case>_*.tmp-*``) are removed.
    """
    lock = folder / f".{case}.lock"
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _holder(lock)
            if holder is not None:
                yield holder
                return
            with contextlib.suppress(OSError):
                lock.unlink()  # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        try:
            for tmp in folder.glob(f".{case}_*.tmp-*"):
                with contextlib.suppress(OSError):
                    tmp.unlink()
            yield None
        finally:
            with contextlib.suppress(OSError):
                lock.unlink()
        return
    yield f"lock {lock} could not be taken"


def _holder(lock: Path) -> str | None:
    """Who holds ``lock`` if its process still runs, else None (stale or unreadable lock)."""
    try:
        info = json.loads(lock.read_text(encoding="utf-8"))
        pid, host = int(info["pid"]), str(info["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if host != socket.gethostname():
        return f"process {pid} on {host}"  # cannot check another host: respect its lock
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return f"process {pid}"
