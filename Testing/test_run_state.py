"""``spineseg run`` re-runs: what counts as finished, locks between runs, leftovers of a killed run, SIGTERM.

Runs use the tiny hand-set models of :mod:`slicer_fixtures` on the synthetic lumbar CT (a second or two
per case). A re-run with anything that changes the outputs recomputes the case and says why; an
identical re-run leaves every file untouched.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import SimpleITK as sitk
from slicer_fixtures import synthetic_lumbar_ct, write_tiny_resources

from SpineSegLib.cli import main
from SpineSegLib.io import write_centroids

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def resources(tmp_path_factory) -> Path:
    return write_tiny_resources(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def case(tmp_path, resources, monkeypatch) -> Path:
    monkeypatch.setenv("SPINESEG_RESOURCES", str(resources))
    path = tmp_path / "sub-syn_ct.nii.gz"
    sitk.WriteImage(synthetic_lumbar_ct().image, str(path))
    return path


def run(capsys, *args) -> tuple[int, str]:
    rc = main(["run", *map(str, args), "--device", "cpu", "--progress", "none"])
    return rc, capsys.readouterr().err


def mtime(path: Path) -> int:
    return path.stat().st_mtime_ns


def test_identical_rerun_changes_nothing_and_any_change_recomputes_with_its_reason(case, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(capsys, case, "-o", out)[0] == 0
    mask, timings = out / "sub-syn_seg-vert_msk.nii.gz", out / "sub-syn_timings.json"
    record = json.loads(timings.read_text())["record"]
    assert record["stages"] == ["spine", "vertebrae", "segmentation"] and set(record["models"]) == set(record["stages"])
    before = mtime(timings)
    rc, err = run(capsys, case, "-o", out)
    assert rc == 0 and "already done" in err and mtime(timings) == before
    # Each of these changes what the outputs would be: the case runs again and the reason is printed.
    rc, err = run(capsys, case, "-o", out, "--labels", "L2,L3")
    assert rc == 0 and "recomputing: other --labels" in err
    assert sorted(int(v) for v in set(sitk.GetArrayFromImage(sitk.ReadImage(str(mask))).ravel()) if v) == [21, 22]
    rc, err = run(capsys, case, "-o", out, "--labels", "L2,L3")
    assert "already done" in err
    rc, err = run(capsys, case, "-o", out, "--labels", "L2,L3", "--save-heatmaps")
    assert "recomputing: other output options" in err
    mask.unlink()
    rc, err = run(capsys, case, "-o", out, "--labels", "L2,L3", "--save-heatmaps")
    assert f"recomputing: output {mask.name} is missing" in err and mask.exists()
    image = sitk.ReadImage(str(case))
    sitk.WriteImage(image + 1, str(case))
    rc, err = run(capsys, case, "-o", out, "--labels", "L2,L3", "--save-heatmaps")
    assert "recomputing: the input changed" in err


def test_other_centroids_recompute_the_segmentation(case, tmp_path, capsys):
    out = tmp_path / "out"
    truth = synthetic_lumbar_ct().centroids
    points = tmp_path / "points.json"
    write_centroids(truth, points, reference=sitk.ReadImage(str(case)))
    args = ("-o", out, "--stages", "segmentation", "--centroids", points)
    assert run(capsys, case, *args)[0] == 0
    assert "already done" in run(capsys, case, *args)[1]
    write_centroids(truth.subset([20, 21]), points, reference=sitk.ReadImage(str(case)))
    rc, err = run(capsys, case, *args)
    assert rc == 0 and "recomputing: other --centroids" in err


def test_a_case_locked_by_a_live_run_is_skipped_and_a_stale_lock_is_taken_over(case, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import socket

        lock = out / ".sub-syn.lock"
        lock.write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname()}))
        rc, err = run(capsys, case, "-o", out)
        assert rc == 0 and f"skipped, being computed by process {sleeper.pid}" in err
        assert not (out / "sub-syn_timings.json").exists() and lock.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    # The holder is gone: its lock is stale, and so are the temporary files of its unfinished writes.
    leftover = out / ".sub-syn_seg-vert_msk.tmp-dead1234.nii.gz"
    leftover.write_bytes(b"half a file")
    rc, err = run(capsys, case, "-o", out)
    assert rc == 0 and (out / "sub-syn_timings.json").exists()
    assert not leftover.exists() and not lock.exists()


def test_sigterm_stops_cleanly_and_the_rerun_finishes_the_rest(case, tmp_path, resources):
    inputs = tmp_path / "cases"
    inputs.mkdir()
    for name in ("a", "b", "c", "d"):
        os.link(case, inputs / f"{name}_ct.nii.gz")
    out = tmp_path / "out"
    env = {**os.environ, "SPINESEG_RESOURCES": str(resources)}
    cmd = [sys.executable, "-m", "SpineSegLib", "run", str(inputs), "-o", str(out), "--device", "cpu"]
    proc = subprocess.Popen(
        [*cmd, "--progress", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO
    )
    for line in proc.stdout:  # wait until the first case has finished and the second has started
        if "b: start" in line:
            break
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "terminated (SIGTERM)" in err and "Traceback" not in err
    assert not list(out.glob(".*tmp-*")) and not list(out.glob(".*.lock"))
    done = {p.name for p in out.glob("*_timings.json")}
    assert "a_timings.json" in done and len(done) < 4
    again = subprocess.run(
        [*cmd, "--progress", "none"], check=False, capture_output=True, text=True, env=env, cwd=REPO, timeout=300
    )
    assert again.returncode == 0 and "a: already done" in again.stderr
    assert {p.name for p in out.glob("*_timings.json")} == {f"{n}_timings.json" for n in "abcd"}
