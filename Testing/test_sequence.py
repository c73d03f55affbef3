"""Landmark sequence selection: the anatomical rules, exactness of the DP, a realistic spine, check_chain."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from SpineSegLib import labels as L
from SpineSegLib.centroids import Centroids
from SpineSegLib.geometry import Grid
from SpineSegLib.heatmaps import Candidate, heatmap_candidates, heatmap_targets
from SpineSegLib.sequence import ChainRules, check_chain, fill_skipped, select_sequence

ID = L.id_of


def cands(*items):
    """{label: [Candidate]} from (name, (x, y, z), value) triples."""
    out: dict[int, list[Candidate]] = {}
    for name, point, value in items:
        lab = L.id_of(name)
        out.setdefault(lab, []).append(Candidate(lab, np.asarray(point, float), value))
    return out


def names(result):
    return [L.name_of(lab) for lab in result.centroids]


def column(names_, step=25.0, value=0.8):
    return [(n, (0.0, 0.0, -step * k), value) for k, n in enumerate(names_)]


# ---------------------------------------------------------------------------------------- rules


def test_plausible_pair_is_accepted_and_implausible_pairs_are_rejected():
    ok = select_sequence(cands(("T7", (0, 0, 0), 0.8), ("T8", (2, 3, -20), 0.7)))
    assert names(ok) == ["T7", "T8"]
    assert ok.score == pytest.approx(1.5)
    assert ok.centroids.confidence == {ID("T7"): 0.8, ID("T8"): 0.7}
    np.testing.assert_array_equal(ok.centroids[ID("T8")], [2, 3, -20])
    implausible = {
        "too close": cands(("T7", (0, 0, 0), 0.8), ("T8", (0, 0, -12.0), 0.7)),
        "too far": cands(("T7", (0, 0, 0), 0.8), ("T8", (0, 0, -50.5), 0.7)),
        "wrong order": cands(("T7", (0, 0, 0), 0.8), ("T8", (0, 0, 20), 0.7)),
        "level": cands(("T7", (0, 0, 0), 0.8), ("T8", (20, 0, 0), 0.7)),
        "skipped T8": cands(("T7", (0, 0, 0), 0.8), ("T9", (0, 0, -25), 0.7)),
        "skipped L5": cands(("L4", (0, 0, 0), 0.8), ("L6", (0, 0, -35), 0.7)),
    }
    for why, c in implausible.items():
        result = select_sequence(c)
        assert len(result.centroids) == 0, why
        assert len(result.rejected) == 2, why
        assert all("no chain of at least 2" in r.reason for r in result.rejected), why


@pytest.mark.parametrize(
    "chain",
    [
        ["T11", "T12", "L1", "L2"],  # normal spine: T13 skipped
        ["T11", "T12", "T13", "L1", "L2"],
        ["L4", "L5", "L6"],
        ["L4", "L5"],  # L6 absent
        ["T13", "L1"],
    ],
)
def test_transitional_vertebrae_may_be_present_or_skipped(chain):
    result = select_sequence(cands(*column(chain)))
    assert names(result) == chain
    assert check_chain(result.centroids) == []


def test_custom_distances_and_cranial_direction():
    c = cands(("T7", (0, 0, 0), 0.8), ("T8", (0, -60, 0), 0.7))  # the patient axis runs along -y here
    assert len(select_sequence(c).centroids) == 0
    rules = ChainRules(max_distance_mm=70.0, cranial=(0.0, 2.0, 0.0))
    assert names(select_sequence(c, rules)) == ["T7", "T8"]
    assert rules.cranial == (0.0, 1.0, 0.0)
    with pytest.raises(ValueError):
        ChainRules(cranial=(0.0, 0.0, 0.0))
    with pytest.raises(ValueError):
        ChainRules(min_distance_mm=60.0)


def test_duplicate_detection_of_one_vertebra_is_not_taken_twice():
    # T8's only detection sits on T7 (the same vertebra seen by two channels).
    c = cands(("T7", (0, 0, 0), 0.9), ("T8", (1, 0, -1), 0.95), ("T9", (0, 0, -25), 0.8))
    result = select_sequence(c)
    assert names(result) == ["T8", "T9"]
    pts = result.centroids.array()
    assert np.linalg.norm(pts[0] - pts[1]) > 12.5
    (rej,) = result.rejected
    assert rej.candidate.label == ID("T7") and rej.reason == "outside the selected chain T8..T9"


def test_strong_far_outlier_is_not_chained_and_min_length_rules_out_lone_outliers():
    good = column(["T6", "T7", "T8", "T9"], value=0.7)
    c = cands(*good, ("T10", (200, 0, -100), 1.0), ("T5", (0, 150, 25), 1.0))
    result = select_sequence(c)
    assert names(result) == ["T6", "T7", "T8", "T9"]
    assert {r.candidate.label for r in result.rejected} == {ID("T10"), ID("T5")}
    # A weak but plausible pair beats a single strong outlier only because a chain needs 2 landmarks.
    c = cands(("T6", (0, 0, 0), 0.3), ("T7", (0, 0, -25), 0.3), ("L2", (200, 0, -300), 0.99))
    assert names(select_sequence(c)) == ["T6", "T7"]
    assert names(select_sequence(c, min_length=1)) == ["L2"]
    assert names(select_sequence(c, min_length=3)) == []


def test_weak_values_may_sit_inside_a_chain_but_not_at_its_ends():
    c = cands(*column(["T6", "T7", "T8"]), ("T9", (0, 0, -75), 0.2))
    assert names(select_sequence(c)) == ["T6", "T7", "T8"]  # a weak T9 cannot end the chain
    c[ID("T10")] = [Candidate(ID("T10"), (0, 0, -100), 0.8)]
    assert names(select_sequence(c)) == ["T6", "T7", "T8", "T9", "T10"]  # but may sit inside it
    assert names(select_sequence(c, end_min_value=0.1)) == ["T6", "T7", "T8", "T9", "T10"]
    c[ID("T9")] = [Candidate(ID("T9"), (0, 0, -75), 0.04)]  # below min_value: never enters, the chain breaks
    result = select_sequence(c)
    assert names(result) == ["T6", "T7", "T8"]
    reasons = {r.candidate.label: r.reason for r in result.rejected}
    assert reasons[ID("T9")] == "value 0.040 below min_value 0.05"
    assert reasons[ID("T10")] == "outside the selected chain T6..T8"


def test_every_candidate_is_either_chosen_or_rejected_once_and_bad_input_is_refused():
    c = cands(*column(["T6", "T7", "T8"]), ("T7", (0, 0, -24), 0.5), ("T7", (90, 0, -25), 0.1))
    c[26] = [Candidate(26, (0, 0, -200), 0.9)]  # sacrum: no channel of the sequence
    result = select_sequence(c)
    assert names(result) == ["T6", "T7", "T8"]
    all_ids = sorted(id(x) for v in c.values() for x in v)
    assert sorted([id(x) for x in result.chain] + [id(r.candidate) for r in result.rejected]) == all_ids
    reasons = sorted(r.reason for r in result.rejected)
    assert reasons == ["S is not a channel of the sequence"] + ["T7: another candidate is on the selected chain"] * 2
    with pytest.raises(ValueError, match="listed under label"):
        select_sequence({ID("T7"): [Candidate(ID("T8"), (0, 0, 0), 0.5)]})
    assert select_sequence({}).score == 0.0


# ---------------------------------------------------------------------------------------- exactness


def brute_force(channels, cand_lists, min_value, end_min_value, min_length, dmin=12.5, dmax=50.0):
    """Best score over all chains, enumerated; rules re-implemented here with plain Python."""
    order = L.anatomical_order(channels)
    full = L.anatomical_order(L.HEATMAP_LABELS)

    def adjacent(a, b):
        between = full[full.index(a) + 1 : full.index(b)]
        return all(x in L.TRANSITIONAL_LABELS for x in between)

    def pair_ok(p, q):
        return dmin < math.dist(p.point_lps, q.point_lps) < dmax and p.point_lps[2] > q.point_lps[2]

    best, best_chains = -math.inf, []
    for r in range(1, len(order) + 1):
        for subset in itertools.combinations(order, r):
            if not all(adjacent(a, b) for a, b in itertools.pairwise(subset)):
                continue
            if r < min_length:
                continue
            options = [[c for c in cand_lists.get(lab, []) if c.value >= min_value] for lab in subset]
            for chain in itertools.product(*options):
                if chain[0].value < end_min_value or chain[-1].value < end_min_value:
                    continue
                if not all(pair_ok(p, q) for p, q in itertools.pairwise(chain)):
                    continue
                s = sum(c.value for c in chain)
                if s > best + 1e-12:
                    best, best_chains = s, [chain]
                elif abs(s - best) <= 1e-12:
                    best_chains.append(chain)
    return best, best_chains


@pytest.mark.parametrize("channel_names", [("T11", "T12", "T13", "L1", "L2"), ("C6", "C7", "T1", "T2", "T3")])
def test_dp_matches_brute_force_on_random_candidate_sets(channel_names):
    rng = np.random.default_rng(sum(map(ord, "".join(channel_names))))
    channels = [L.id_of(n) for n in channel_names]
    trials, nonempty = 120, 0
    for trial in range(trials):
        cand_lists = {}
        for rank, lab in enumerate(channels):
            n = int(rng.integers(0, 4))  # 0..3 candidates
            pts = np.column_stack([rng.normal(0, 8, n), rng.normal(0, 8, n), -25.0 * rank + rng.normal(0, 15, n)])
            cand_lists[lab] = [Candidate(lab, p, float(v)) for p, v in zip(pts, rng.uniform(0.0, 1.0, n))]
        min_length = int(rng.integers(1, 4))
        end_min_value = float(rng.choice([0.0, 0.25, 0.5]))
        result = select_sequence(cand_lists, min_length=min_length, end_min_value=end_min_value)
        best, best_chains = brute_force(channels, cand_lists, 0.05, end_min_value, min_length)
        if not best_chains:
            assert len(result.chain) == 0, trial
            continue
        nonempty += 1
        assert result.score == pytest.approx(best, abs=1e-9), trial
        assert any([id(c) for c in ch] == [id(c) for c in result.chain] for ch in best_chains), trial
        assert check_chain(result.centroids) == []
    assert nonempty > trials // 3  # the random sets exercise real chains, not only empty answers


# ---------------------------------------------------------------------------------------- realistic spine


def curved_spine(names_, rng):
    """True landmark positions (LPS mm) along a sagittally curved synthetic spine, cranial first."""
    spacing = {L.CERVICAL: 16.0, L.THORACIC: 24.0, L.LUMBAR: 36.0}
    pts, p = {}, np.array([10.0, -40.0, 600.0])
    for k, n in enumerate(names_):
        lab = L.id_of(n)
        pts[lab] = p.copy()
        tilt = 0.45 * np.sin(k / 5.0)  # lordosis / kyphosis: direction tilts anteriorly and posteriorly
        step = spacing[L.region_of(lab)] * rng.uniform(0.9, 1.1)
        p = p + step * np.array([rng.normal(0, 0.05), np.sin(tilt), -np.cos(tilt)])
    return pts


def distracted(true_pts, rng):
    """True candidates plus neighbour-shifted duplicates (weaker), far outliers and sub-threshold noise."""
    order = L.anatomical_order(L.HEATMAP_LABELS)
    out: dict[int, list[Candidate]] = {lab: [] for lab in order}
    for lab, p in true_pts.items():
        v = float(rng.uniform(0.6, 0.95))
        out[lab].append(Candidate(lab, p + rng.normal(0, 1.0, 3), v))
        k = order.index(lab)
        for nb in (order[k - 1] if k > 0 else None, order[k + 1] if k + 1 < len(order) else None):
            if nb is not None:  # the neighbour's channel also fires on this vertebra, more weakly
                out[nb].append(Candidate(nb, p + rng.normal(0, 2.0, 3), v * rng.uniform(0.2, 0.6)))
    for lab in rng.choice(order, 6, replace=False):  # strong responses far from the spine
        far = next(iter(true_pts.values())) + rng.uniform([150, 100, -400], [250, 200, 0])
        out[int(lab)].append(Candidate(int(lab), far, float(rng.uniform(0.8, 1.0))))
    for lab in order:  # weak noise maxima below min_value
        out[lab].append(Candidate(lab, rng.uniform([-50, -100, 100], [50, 50, 600]), 0.04))
    return out


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("with_t13", [False, True])
def test_true_chain_is_recovered_from_a_curved_spine_with_distractors(seed, with_t13):
    rng = np.random.default_rng(seed)
    thoracic = [f"T{k}" for k in range(1, 13)] + (["T13"] if with_t13 else [])
    visible = ["C3", "C4", "C5", "C6", "C7", *thoracic, "L1", "L2", "L3", "L4", "L5"]
    true_pts = curved_spine(visible, rng)
    result = select_sequence(distracted(true_pts, rng))
    assert names(result) == visible
    for lab, p in true_pts.items():
        assert np.linalg.norm(result.centroids[lab] - p) < 5.0
    assert check_chain(result.centroids) == []
    # The same scene in another patient frame: the rules follow the cranial direction given.
    rot = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # maps +z (superior) to -y
    rotated = {
        lab: [Candidate(lab, rot @ c.point_lps, c.value) for c in cs] for lab, cs in distracted(true_pts, rng).items()
    }
    assert names(select_sequence(rotated, ChainRules(cranial=tuple(rot @ [0, 0, 1.0])))) == visible
    assert names(select_sequence(rotated)) != visible


# ---------------------------------------------------------------------------------------- check_chain


def test_check_chain_messages():
    assert check_chain(Centroids({lab: (0, 0, -25.0 * k) for k, lab in enumerate(range(8, 14))})) == []
    c = Centroids(
        {
            ID("T5"): (0, 0, 0),
            ID("T7"): (0, 0, -40),  # T6 missing: a gap (40 mm apart is fine across a gap)
            ID("T8"): (0, 0, -48.1),  # 8.1 mm from T7
            ID("T9"): (0, 0, -110),  # 61.9 mm from T8
            ID("L1"): (0, 0, -130),  # T10..T12 missing
            ID("L2"): (0, 0, -100),  # above L1
            ID("L4"): (30, 0, -100),  # level with L2, and L3 missing
            26: (0, 0, -300),  # the sacrum is no sequence channel: ignored
        }
    )
    assert check_chain(c) == [
        "gap: T5 is followed by T7",
        "T7-T8: 8.1 mm apart (< 12.5 mm)",
        "T8-T9: 61.9 mm apart (> 50 mm)",
        "gap: T9 is followed by L1",
        "L2 is above L1",
        "gap: L2 is followed by L4",
        "L4 is level with L2",
    ]
    # T12 -> L1 skips only the transitional T13: no gap; custom rules change the limits in the messages.
    c = Centroids({ID("T12"): (0, 0, 0), ID("L1"): (0, 0, -30)})
    assert check_chain(c) == []
    assert check_chain(c, ChainRules(max_distance_mm=20)) == ["T12-L1: 30.0 mm apart (> 20 mm)"]
    assert check_chain(c, ChainRules(cranial=(0, 0, -1))) == ["L1 is above T12"]


def test_heatmaps_to_sequence_end_to_end():
    rng = np.random.default_rng(11)
    visible = ["T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5"]
    true_pts = curved_spine(visible, rng)
    pts = np.stack(list(true_pts.values()))
    grid = Grid.centered((pts.min(0) + pts.max(0)) / 2, (40, 64, 128), (2.0, 2.0, 2.0))
    assert grid.contains(pts, margin_vox=12).all()
    labels = L.HEATMAP_LABELS
    hm = heatmap_targets(grid, Centroids(true_pts), labels, sigma_vox=3.0) * 0.9
    # Neighbouring channels also respond, more weakly, on each vertebra (the usual confusion of a network).
    order = L.anatomical_order(labels)
    for lab, p in true_pts.items():
        k = order.index(lab)
        for nb in (order[k - 1], order[k + 1]):
            hm[labels.index(nb)] += 0.35 * heatmap_targets(grid, Centroids({nb: p + 3.0}), (nb,))[0]
    result = select_sequence(heatmap_candidates(hm, grid, labels))
    assert names(result) == visible
    for lab, p in true_pts.items():
        assert np.linalg.norm(result.centroids[lab] - p) < 0.2
        assert result.centroids.confidence_of(lab) > 0.85


# ---------------------------------------------------------------------------------------- one skipped level


def _gap_at_t10(t10=None):
    """T5..L5 every 25 mm with T10's channel answering elsewhere (or not at all)."""
    levels = ["T5", "T6", "T7", "T8", "T9", "T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5"]
    items = [item for item in column(levels, value=0.5) if item[0] != "T10"]
    if t10 is not None:
        items.append(("T10", t10, 0.3))
    return cands(*items)


def test_payers_rules_end_the_chain_at_a_level_whose_channel_has_nothing_there():
    found = select_sequence(_gap_at_t10(t10=(0.0, 0.0, -70.0)))  # 55 mm off: no rule-abiding link
    assert names(found) == ["T11", "T12", "L1", "L2", "L3", "L4", "L5"]  # the longer run wins, T5-T9 lost


def test_with_a_skip_the_chain_jumps_the_level_and_the_level_is_placed_between_its_neighbours():
    found = select_sequence(_gap_at_t10(t10=(0.0, 0.0, -70.0)), skip_penalty=0.25)
    assert names(found) == ["T5", "T6", "T7", "T8", "T9", "T11", "T12", "L1", "L2", "L3", "L4", "L5"]
    assert math.isclose(found.score, 12 * 0.5 - 0.25)
    filled, placed = fill_skipped(found.centroids)
    assert placed == [ID("T10")] and filled.confidence_of(ID("T10")) == 0.0
    np.testing.assert_allclose(filled[ID("T10")], [0.0, 0.0, -125.0])  # halfway between T9 and T11
    assert check_chain(filled) == []


def test_a_skip_is_never_taken_where_the_level_has_a_candidate_or_over_one_step():
    # T10 where it belongs: the chain takes it, the penalty is never paid.
    whole = select_sequence(_gap_at_t10(t10=(0.0, 0.0, -125.0)), skip_penalty=0.25)
    assert ID("T10") in whole.centroids and math.isclose(whole.score, 13 * 0.5 - 0.2)
    # One step (25 mm) between the two sides of the gap is one vertebra, not two: no skip link.
    rules = ChainRules()
    assert not rules.skip_pairs_ok(np.array([[0.0, 0.0, 0.0]]), np.array([[0.0, 0.0, -25.0]]))[0, 0]
    assert rules.skip_pairs_ok(np.array([[0.0, 0.0, 0.0]]), np.array([[0.0, 0.0, -50.0]]))[0, 0]
    # The skipped level is never a transitional one (T13 may be absent anyway): L1 may follow T11, jumping T12.
    assert [rules.labels[p] for p in rules.skip_predecessors(rules.labels.index(ID("L1")))] == [ID("T11")]
    assert fill_skipped(Centroids({ID("T12"): (0, 0, 0), ID("L1"): (0, 0, -25)}))[1] == []
