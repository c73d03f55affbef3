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


@pytest.fixture(scope="module")
def real_quick(tmp_path_factory):
    """One --quick run of bench_real.py: (results, JSON path, stdout)."""
    out = tmp_path_factory.mktemp("bench_real") / "res" / "real.json"
    r = _run("bench_real.py", "--out", str(out), "--threads", "1")
    return json.loads(out.read_text()), out, r.stdout


def test_bench_real_quick(real_quick):
    res, out, stdout = real_quick
    assert res["benchmark"] == "bench_real" and "--quick" in res["command"]
    assert {"nproc", "cpu", "gpu"} <= set(res["machine"])
    assert set(res["settings"]["models"]) == {"spine", "vertebrae", "segmentation"}
    assert all(m["real_cases"] == [] for m in res["settings"]["models"].values())  # the tiny models saw no patient

    from SpineSegLib import labels as L
    from SpineSegLib.body_centroids import body_centroids
    from SpineSegLib.io import read_labelmap

    (case,) = res["cases"]
    assert case["case"] == "tptbox_spine_crops/sample_ct" and not case["goal_case"]
    assert res["extra_cases"] == [case["case"]]
    assert case["scored_levels"] == ["L2", "L3", "L4"]
    assert case["seen_by_stage"] == {"spine": False, "vertebrae": False, "segmentation": False}
    # the true points are the body centroids of the repository's mask
    mask = read_labelmap(Path(case["image"]).parent / "sub-ct_seg-vert_label-22_msk.nii.gz")
    body = body_centroids(mask)
    for name, point in case["true_points_lps_mm"].items():
        np.testing.assert_allclose(point, body[L.id_of(name)], atol=0.006)
        assert case["body_minus_whole_mm"][name] > 0
    assert set(case["runs"]) == {"full", "stage3_body", "stage3_mask"}
    for key, run in case["runs"].items():
        m, s = run["metrics"], run["evaluate_summary"]
        gt_rows = [v for v in run["per_vertebra"].values() if v["in_gt"]]
        assert m["n_gt"] == len(gt_rows) == 3 and not run["seen_in_training"]
        assert m["n_identified"] == s["n_identified"] == sum(v["identified"] for v in gt_rows)
        assert _close(m["dice_mean"], s["dice_mean"]) and math.isclose(
            m["dice_mean"], np.mean([v["dice"] for v in gt_rows])
        )
        assert 0.0 <= m["dice_mean"] <= 1.0 and run["seconds"] > 0, key
        # only the labelled levels are scored in the crop: a predicted neighbour is not an extra vertebra
        assert set(run["per_vertebra"]) <= {"L2", "L3", "L4"}
        assert case["focus"][key]["name"] == "L3" and case["focus"][key]["dice"] == run["per_vertebra"]["L3"]["dice"]
    full = case["runs"]["full"]
    assert set(full["timings_s"]) >= {"spine", "total"}
    # the nearest predicted centroid of any name is never further than the same-name one (the PE)
    nearest = full["nearest_prediction"]["per_vertebra"]
    assert set(nearest) == (set(case["scored_levels"]) if full["predicted_labels"] else set())
    for name, row in full["per_vertebra"].items():
        if row["in_gt"] and row["pe_mm"] is not None:
            assert nearest[name]["distance_mm"] <= row["pe_mm"] + 0.01
            assert nearest[name]["label"] in full["predicted_labels"]

    pooled = res["goal_cases_pooled"]  # no goal case in the quick run: nothing pooled
    assert all(p["overall"]["n_gt"] == 0 and p["per_level"] == [] for p in pooled.values())
    assert all(g["value"] is None and not g["pass"] for g in res["goals"].values()) and not res["all_goals_pass"]

    v = res["body_centroid_validation"]
    assert v["radius_mm"] == 5.5 and v["radius_chosen_on"] == "verse004"
    rows = {row["case"]: row for row in v["cases"]}
    assert set(rows) == {"verse010", "verse010 at 3 mm", "tptbox L3"} and not rows["verse010"]["used_for_choice"]
    per = rows["verse010"]["per_vertebra_mm"]
    assert list(per) == ["L1", "L2", "L3", "L4", "L5"]
    assert math.isclose(rows["verse010"]["estimate"]["lumbar"]["mean_mm"], np.mean(list(per.values())), abs_tol=0.01)
    assert rows["verse010"]["estimate"]["lumbar"]["max_mm"] < rows["verse010"]["whole_mask"]["lumbar"]["mean_mm"]

    md = out.with_suffix(".md").read_text()
    assert "ESTIMATED vertebral-body centroids" in md and "tptbox_spine_crops/sample_ct" in md
    assert "(b) Stage 3 alone from the true points" in md and "real_cases" in md
    assert "(a) id" in stdout


def test_bench_real_goals_pool_held_out_goal_cases_and_flag_seen_ones(real_quick):
    """The goal logic on two quick-run results made goal cases: pooled over vertebrae; a case a card saw is left out."""
    (case,) = json.loads(json.dumps(real_quick[0]["cases"]))
    bench = _load("bench_real.py")
    a = {**case, "case": "a", "goal_case": True}
    b = json.loads(json.dumps({**case, "case": "b", "goal_case": True}))
    b["runs"]["full"]["per_vertebra"] = {k: v for k, v in b["runs"]["full"]["per_vertebra"].items() if k == "L3"}
    goals = bench.goal_checks([a, b])
    rows = [*a["runs"]["full"]["per_vertebra"].values(), b["runs"]["full"]["per_vertebra"]["L3"]]
    assert math.isclose(goals["full.dice_mean"]["value"], np.mean([v["dice"] for v in rows]))
    assert goals["full.dice_mean"]["cases"] == ["a", "b"] and goals["full.dice_mean"]["pass"] == (
        goals["full.dice_mean"]["value"] >= 0.85
    )
    b["runs"]["stage3_body"]["seen_in_training"] = True
    goals = bench.goal_checks([a, b])
    assert goals["stage3_body.dice_mean"]["cases"] == ["a"] and goals["stage3_body.dice_mean"]["left_out_seen"] == ["b"]
    assert math.isclose(goals["stage3_body.dice_mean"]["value"], a["runs"]["stage3_body"]["metrics"]["dice_mean"])


def test_bench_real_seen_by_reads_the_cards_real_cases():
    from SpineSegLib.models.card import ModelCard

    bench = _load("bench_real.py")
    cases = {c.name: c for c in bench.CASES}

    def card(stage, real):
        return ModelCard("m", stage, {}, [1.0] * 3, [8] * 3, {}, real_cases=real)

    cards = {"spine": card("spine", []), "vertebrae": card("vertebrae", ["sub-verse010"]), "segmentation": None}
    cards["segmentation"] = card("segmentation", ["sub-verse005", "sub-verse006"])
    assert bench.seen_by(cases["verse005_lumbar_ct"], cards) == {
        "spine": False,
        "vertebrae": False,
        "segmentation": True,
    }
    assert not any(bench.seen_by(cases["totalseg_cta_crop"], cards).values())
    cards["spine"] = card("spine", ["totalseg_cta_crop"])  # by folder name
    assert bench.seen_by(cases["totalseg_cta_crop"], cards)["spine"]


def test_bench_real_without_shared_data_says_so_and_exits_0(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            str(BENCH / "bench_real.py"),
            "--shared",
            str(tmp_path / "absent"),
            "--out",
            str(tmp_path / "x.json"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0 and "not found" in r.stdout and not (tmp_path / "x.json").exists()


def test_ct_appearance_benchmark_prints_one_row_per_image(tmp_path):
    r = _run("bench_ct_appearance.py", "--shared", str(tmp_path / "absent"))
    rows = [line for line in r.stdout.splitlines() if line.startswith("| phantom")]
    assert len(rows) == 3 and "real CTs skipped" in r.stdout
    # The real appearance's shell is dimmer than the classic one's (rim median, second column group).
    rim = [float(row.split("|")[3].split()[0]) for row in rows]
    assert rim[1] < rim[0] and rim[2] < rim[0]


def test_bench_lumbar_quick_scores_only_lumbar_levels_and_pools_them(tmp_path):
    out = tmp_path / "lumbar.json"
    _run("bench_lumbar.py", "--data", str(tmp_path / "data"), "--out", str(out), "--markdown", str(tmp_path / "l.md"))
    res = json.loads(out.read_text())
    assert res["settings"]["pipelines"] == ["ct-lumbar", "ct-full-spine"] and len(res["phantoms"]) == 2
    for case in res["phantoms"]:
        mask = next((tmp_path / "data" / "derivatives").rglob(case["case"].replace("_ct.", "_seg-vert_msk.")))
        gt = sitk.GetArrayFromImage(sitk.ReadImage(str(mask)))
        from SpineSegLib import labels as L

        lumbar = [L.name_of(v) for v in L.anatomical_order(int(v) for v in np.unique(gt) if 20 <= v <= 25)]
        for run in case["runs"].values():
            assert list(run["levels"]) == lumbar  # every ground-truth lumbar level, nothing else
    for name in res["settings"]["pipelines"]:
        levels = [lv for c in res["phantoms"] for lv in c["runs"][name]["levels"].values()]
        p = res["pooled"]["phantoms"][name]
        assert p["vertebrae"] == len(levels) and _close(p["dice"], float(np.mean([lv["dice"] for lv in levels])))
        assert p["identified"] == sum(lv["identified"] for lv in levels)
    assert res["goal"]["phantom"] == ("met" if res["goal"]["phantom_dice"] >= 0.93 else "MISSED")


def test_bench_review_counts_truth_and_renamed_cases(tmp_path):
    """bench_review on one lumbar phantom: its counts agree with the review run here on the same files."""
    from SpineSegLib import labels as L
    from SpineSegLib.cli import main as cli_main
    from SpineSegLib.io import read_centroids, read_image, read_labelmap
    from SpineSegLib.plausibility import review

    data = tmp_path / "data"
    assert cli_main(["phantom", "-o", str(data), "--region", "lumbar", "--spacing", "2", "2", "2", "--seed", "7"]) == 0
    out = tmp_path / "res" / "review.json"
    r = subprocess.run(
        [sys.executable, str(BENCH / "bench_review.py"), "--data", str(data), "--shifts", "1,3", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(out.read_text())
    bench = _load("bench_review.py")
    ((name, mask_path, ctd_path),) = bench.cases(data)
    mask = read_labelmap(mask_path)
    ctd = read_centroids(ctd_path, reference=mask)
    truth = res["truth"]
    assert truth["cases"] == 1
    assert truth["vertebrae"] == len([x for x in ctd.labels if x in L.VERTEBRA_LABELS]) > 0
    assert truth["doubtful"] == int(review(ctd, mask).identification_doubtful)
    assert set(res["shifted"]) == {"1", "-1", "3", "-3"}
    # the lumbar chain ends at L5: no vertebra can be renamed towards the feet
    empty = {"cases": 0, "doubtful": 0, "with_ct": 0, "doubtful_ribs": 0, "doubtful_ct": 0}
    empty.update(shift_right=0, shift_wrong=0)
    assert res["shifted"]["-1"] == res["shifted"]["-3"] == empty
    image = read_image(data / "rawdata" / name / f"{name}_ct.nii.gz")
    assert truth["with_ct"] == 1
    assert truth["doubtful_ct"] == int(review(ctd, mask, image=image).identification_doubtful)
    for k in (1, 3):
        moved_mask, moved_ctd = bench.shifted(mask, ctd, k)
        assert set(moved_ctd.labels) == {bench.ORDER[bench.ORDER.index(x) - k] for x in ctd.labels if x in bench.ORDER}
        moved_review = review(moved_ctd, moved_mask, image=image)
        assert res["shifted"][str(k)] == {
            "shift_right": int(moved_review.suggested_shift == k),
            "shift_wrong": int(moved_review.suggested_shift not in (None, k)),
            "cases": 1,
            "doubtful": int(review(moved_ctd, moved_mask).identification_doubtful),
            "with_ct": 1,
            "doubtful_ribs": res["shifted"][str(k)]["doubtful_ribs"],
            # the cues read once and renamed agree with a review that reads them from the renamed files
            "doubtful_ct": int(moved_review.identification_doubtful),
        }
    assert Path(out.with_suffix(".md")).read_text().startswith("### Plausibility review")


def test_bench_mr_quick_scores_what_it_computed(tmp_path):
    """bench_mr --quick on one small MR phantom with the bundled mr-t2w weights: pooled = sum of the rows."""
    from SpineSegLib.models import Manifest

    if "mr-t2w" not in Manifest.load().pipelines:
        pytest.skip("no bundled mr-t2w pipeline")
    out = tmp_path / "res" / "mr.json"
    _run("bench_mr.py", "--data", str(tmp_path / "data"), "--first-seed", "7", "--out", str(out), "--threads", "1")
    res = json.loads(out.read_text())
    assert res["settings"]["quick"] and res["real"] == [] and len(res["phantoms"]) == 1
    (case,) = res["phantoms"]
    gt = sitk.GetArrayFromImage(sitk.ReadImage(str(next((tmp_path / "data").rglob("*_seg-vert_msk.nii.gz")))))
    from SpineSegLib import labels as L

    truth = [L.name_of(int(v)) for v in np.unique(gt) if v in L.VERTEBRA_LABELS]
    assert list(case["levels"]) == truth
    pooled = res["pooled"]["phantoms"]
    assert pooled["vertebrae"] == len(truth)
    assert pooled["identified"] == sum(v["identified"] for v in case["levels"].values())
    assert _close(pooled["dice"], float(np.mean([v["dice"] for v in case["levels"].values()])))
    assert all(0.0 <= v["dice"] <= 1.0 for v in case["levels"].values())
    assert [g[0] for g in res["goals"]] == ["phantom_dice", "phantom_id", "phantom_disc", "real_id", "real_body_dice"]
