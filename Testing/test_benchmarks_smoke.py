"""Smoke tests of the benchmark scripts (Testing/benchmarks): their ``--quick`` modes run end to end.

Each script runs as a user runs it (a subprocess) on tiny inputs with the tiny hand-set models
of slicer_fixtures, and its JSON is checked against the data it was computed from, so the
scripts cannot rot. The numbers themselves are benchmarks, not tests.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "Testing" / "benchmarks"

pytestmark = pytest.mark.slow


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    r = subprocess.run(
        [sys.executable, str(BENCH / script), "--quick", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=600,
        check=False,
    )
    assert r.returncode == 0, f"{script} failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return r


def _load(script: str):
    name = script.removesuffix(".py")
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH / script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _close(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and math.isclose(a, b, abs_tol=1e-9))


def test_bench_accuracy_quick(tmp_path):
    out = tmp_path / "res" / "accuracy.json"
    r = _run("bench_accuracy.py", "--data", str(tmp_path / "data"), "--out", str(out), "--threads", "1")
    res = json.loads(out.read_text())
    assert res["benchmark"] == "bench_accuracy" and "--quick" in res["command"]
    assert {"nproc", "cpu", "gpu"} <= set(res["machine"]) and res["machine"]["nproc"] >= 1
    assert set(res["settings"]["models"]) == {"spine", "vertebrae", "segmentation"}

    from SpineSegLib import labels as L

    scored = {L.id_of(n) for n in res["settings"]["scored_labels"]}
    assert 26 not in scored and scored  # the sacrum: no heatmap channel, not scored
    h = res["heldout"]
    assert h["n_cases"] == 2 and h["seeds"] == [100000, 100001] and len(h["cases"]) == 2
    assert h["mix"]["regions"] == {"lumbar": 2} and h["mix"]["spacings_mm"] == {"2x2x2": 2}
    rows = []
    for case, seed in zip(h["cases"], h["seeds"]):
        # the scored ground-truth vertebrae are exactly the cached mask's labels the model can name
        mask = tmp_path / "data" / "derivatives" / f"sub-phantom{seed:06d}"
        gt = sitk.GetArrayFromImage(sitk.ReadImage(str(mask / f"sub-phantom{seed:06d}_seg-vert_msk.nii.gz")))
        present = set(np.unique(gt).tolist()) - {0}
        m = case["metrics"]
        assert m["n_gt"] == len(present & scored) > 0
        assert case["not_scored"] == [L.name_of(v) for v in sorted(present - scored)]
        assert set(case["per_vertebra"]) <= {L.name_of(v) for v in scored}
        # the script's per-case numbers agree with evaluate()'s own summary
        s = case["evaluate_summary"]
        assert m["n_identified"] == s["n_identified"] and m["n_missed"] == s["n_missed"]
        for mine, theirs in [("id_rate", "id_rate"), ("dice_mean", "dice_mean"), ("pe_mean_mm_all", "pe_mean_mm")]:
            assert _close(m[mine], s[theirs]), mine
        for key in ("hd_mean", "assd_mean", "pq", "sq", "rq"):
            assert _close(m[key], s[key]), key
        assert 0.0 <= m["dice_mean"] <= 1.0 and 0.0 <= m["id_rate"] <= 1.0 and 0.0 <= m["pq"] <= 1.0
        assert m["pe_mean_mm_all"] is None or m["pe_mean_mm_all"] >= 0.0
        assert set(case["timings_s"]) >= {"spine", "total"} and case["seconds"] > 0
        rows += [v for v in case["per_vertebra"].values() if v["in_gt"]]

    o = h["overall"]  # pooled over every ground-truth vertebra of both cases
    assert o["n_gt"] == len(rows) == sum(c["metrics"]["n_gt"] for c in h["cases"])
    assert o["n_identified"] == sum(v["identified"] for v in rows)
    assert math.isclose(o["id_rate"], o["n_identified"] / o["n_gt"])
    assert math.isclose(o["dice_mean"], np.mean([v["dice"] for v in rows]))
    pe_id = [v["pe_mm"] for v in rows if v["identified"]]
    assert _close(o["pe_mean_mm_identified"], float(np.mean(pe_id)) if pe_id else None)
    levels = h["per_level"]  # the same rows, grouped by level in anatomical order
    assert [v["name"] for v in levels] == [L.name_of(v) for v in L.anatomical_order({v["label"] for v in rows})]
    assert sum(v["n_gt"] for v in levels) == o["n_gt"] and sum(v["n_identified"] for v in levels) == o["n_identified"]
    assert set(h["goals"]) == {"id_rate", "pe_mean_mm_all", "dice_mean"}
    assert h["goals"]["dice_mean"]["pass"] == (o["dice_mean"] >= 0.93)
    assert h["all_goals_pass"] == all(g["pass"] for g in h["goals"].values())

    real = {c["case"]: c for c in res["real"]}
    assert set(real) == {"totalseg_example_abdomen_ct", "tptbox_sample_ct"}
    totalseg = real["totalseg_example_abdomen_ct"]  # T11..L5 + S1; S1 (26) has no channel
    assert totalseg["metrics"]["n_gt"] == 7 and totalseg["not_scored"] == ["S"]
    assert real["tptbox_sample_ct"]["metrics"]["n_gt"] == 3 and real["tptbox_sample_ct"]["focus"]["name"] == "L3"

    md = out.with_suffix(".md").read_text()
    assert (
        "Per level" in md and "| identification rate" in md and "sub-phantom100001" in md and "tptbox_sample_ct" in md
    )
    assert "identification rate" in r.stdout


def test_bench_accuracy_refuses_a_cache_made_otherwise(tmp_path):
    from SpineSegLib.errors import SpineSegError
    from SpineSegLib.io import write_json_atomic

    bench = _load("bench_accuracy.py")
    configs = bench.heldout_configs(1, quick=True)
    sidecar = bench.bids.case_paths(tmp_path, "phantom100000").sidecar
    sidecar.parent.mkdir(parents=True)
    full = bench.heldout_configs(1, quick=False)[0][1]  # the benchmark mix's settings of the same seed
    write_json_atomic({"config": full.as_dict()}, sidecar)
    with pytest.raises(SpineSegError, match="other settings"):
        bench.prepare_heldout(tmp_path, configs, quick=True)


def test_bench_speed_quick(tmp_path):
    out = tmp_path / "speed.json"
    r = _run("bench_speed.py", "--data", str(tmp_path / "data"), "--out", str(out), "--threads", "1")
    res = json.loads(out.read_text())
    assert res["benchmark"] == "bench_speed" and res["settings"]["threads"] == 1
    assert {"nproc", "cpu", "gpu"} <= set(res["machine"])

    # the input: exactly the asked grid, padded with -1024, centred on the spine's label box
    ct = sitk.ReadImage(res["input"]["ct"])
    assert ct.GetSize() == (128, 128, 150) and np.allclose(ct.GetSpacing(), (2.0, 2.0, 2.0))
    assert sitk.GetArrayViewFromImage(ct).min() == -1024
    labels = sitk.GetArrayFromImage(sitk.ReadImage(res["input"]["ct"].replace("_ct.nii.gz", "_seg-vert_msk.nii.gz")))
    kji = np.argwhere(labels > 0)
    centre = (kji.min(axis=0) + kji.max(axis=0)) / 2.0
    assert np.all(np.abs(centre - (np.array(labels.shape) - 1) / 2.0) <= 1.0)

    ours = res["spineseg"]
    assert "failed" not in ours, ours
    best = ours["best"]
    stages = ("read", "load_models", "spine", "vertebrae", "segmentation", "write")
    assert set(best) == {*stages, "total"} and all(best[k] >= 0 for k in stages)
    assert math.isclose(best["total"], sum(best[k] for k in stages), abs_tol=0.01)
    assert ours["process_wall_s"] >= best["total"]
    assert 0.05 < ours["peak_rss_gb"] < 64
    assert math.isclose(ours["ru_maxrss_gb"], ours["peak_rss_gb"], rel_tol=0.1)  # two views of the same peak

    monai = res["monai"]
    assert "failed" not in monai, monai
    t = monai["times"]
    parts = ("read", "stage1", "stage2", "stage3", "write")
    assert set(t) == {*parts, "total"} and math.isclose(t["total"], sum(t[k] for k in parts), abs_tol=0.01)
    assert monai["n_vertebrae"] == 2  # --quick caps the vertebra crops
    assert 1 <= monai["info"]["stage1_windows"] <= 8 and 1 <= monai["info"]["stage2_windows"] <= 8
    assert 0.05 < monai["peak_rss_gb"] < 64

    assert set(res["goals"]) == {"end_to_end_s", "peak_memory_gb", "speedup"}
    assert math.isclose(res["goals"]["speedup"]["value"], t["total"] / best["total"])
    assert res["goals"]["end_to_end_s"]["pass"] == (best["total"] <= 60.0)
    assert res["goals_apply"] is False  # a quick run is not the benchmark
    assert "speed-up" in r.stdout and out.with_suffix(".md").exists()


def test_bench_training_targets_quick(tmp_path):
    out = tmp_path / "targets.json"
    r = _run("bench_training_targets.py", "--data", str(tmp_path / "data"), "--out", str(out))
    res = json.loads(out.read_text())
    bench = _load("bench_training_targets.py")
    nearest, partial = bench.TARGETS
    rows = [v for c in res["cases"] for v in c["vertebrae"]]
    assert len(rows) == res["summary"]["all"]["n"] >= 4
    for t in bench.TARGETS:
        assert math.isclose(res["summary"]["all"][t], np.mean([v[t] for v in rows]))
    # On an oblique 1.6 x 1.6 x 3 mm scan the partial-volume target reproduces the scored mask (a perfect
    # network reaches Dice ~1), the nearest-neighbour target of the 1 mm cache does not.
    assert min(v[partial] for v in rows) > 0.99
    assert res["summary"]["all"][partial] > res["summary"]["all"][nearest]
    assert "partial volume from native" in r.stdout


@pytest.mark.parametrize("shape", [(64, 64, 76), (96, 96, 96), (276, 276, 462), (50, 120, 97)])
def test_bench_speed_window_count_is_monais(shape):
    from monai.data.utils import dense_patch_slices
    from monai.inferers.utils import _get_scan_interval

    bench = _load("bench_speed.py")
    roi = (96, 96, 96)
    padded = tuple(max(s, r) for s, r in zip(shape, roi))
    interval = _get_scan_interval(padded, roi, 3, (0.4, 0.4, 0.4))
    assert bench._n_windows(shape, roi, 0.4) == len(dense_patch_slices(padded, roi, interval))
