"""Landmark sequence selection (Payer et al.): one anatomically plausible chain of vertebrae from heatmap maxima.

Each heatmap channel gives several candidates (:class:`SpineSegLib.heatmaps.Candidate`, LPS mm). A *chain* takes
at most one candidate per channel over a run of channels in anatomical order C1..C7, T1..T12, T13, L1..L5, L6.
The rules (Payer et al. 2019/2020, VISAPP 2020 section 2.2), all in :class:`ChainRules`:

* no channel inside a chain is skipped, except the transitional T13 and L6 (a normal spine has neither, so
  T12 -> L1 is allowed as well as T12 -> T13 -> L1); SpineSeg's option ``skip_penalty`` of
  :func:`select_sequence` lets a chain jump one other level, two steps apart, at a cost (a vertebra whose
  channel has no maximum near it no longer ends the chain);
* consecutive chosen landmarks are more than 12.5 mm and less than 50 mm apart, so one vertebra detected by two
  channels (e.g. T7 and T8 on the same spot) cannot be taken twice, and a far outlier cannot be chained;
* the chain goes strictly cranial to caudal: each landmark lies strictly lower along the cranial direction
  (default +z of LPS = superior) than the one before it.

Objective (:func:`select_sequence`). Payer 2019 first fixes the first and last visible vertebra from the heatmaps
(the longest run of channels with a confident maximum, > 0.25) and then takes, among the chains over that range
that obey the rules, the one with the highest summed response. We solve both steps as one exact optimisation:

    maximise  sum of the values of the chosen candidates
    over      chains that obey the rules, contain at least ``min_length`` landmarks, use only candidates with
              value >= ``min_value``, and start and end at a candidate with value >= ``end_min_value``.

Every value is positive, so a chain that can be extended by one more rule-abiding candidate always gains: the
optimum runs as far cranially and caudally as confident landmarks (>= ``end_min_value``, Payer's 0.25) can be
connected to the rest, which is the "first and last visible vertebra from the heatmaps"; inside these ends the
choice is exactly the highest-response chain that obeys the rules. Unlike the two-step version, one weak interior
vertebra (fracture, metal) does not cut the range, and the range never depends on a single channel's top maximum
that the rules would then reject. The optimum is found by dynamic programming over channels in anatomical order
(Viterbi-like): a state is (channel, candidate, chain length capped at ``min_length``), a transition links a
candidate to one of the previous channel (or of the channel before a skipped transitional one) when the pair obeys
the rules. Cost O(channels x candidates^2 x min_length), exact, deterministic (ties keep the first chain found in
anatomical order, candidates best first).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from . import labels as L
from .centroids import Centroids
from .heatmaps import Candidate

__all__ = ["ChainRules", "Rejected", "SequenceResult", "check_chain", "fill_skipped", "select_sequence"]

#: A skip spans two vertebral steps: at least this far (two of the shortest thoracolumbar steps of a small
#: adult, 2 x 17.5 mm), so one step is never read as a skip.
SKIP_MIN_MM = 35.0


@dataclass(frozen=True)
class ChainRules:
    """Anatomical rules of a landmark chain (distances in mm, ``cranial`` a direction in LPS)."""

    min_distance_mm: float = 12.5
    max_distance_mm: float = 50.0
    cranial: tuple[float, float, float] = (0.0, 0.0, 1.0)
    labels: tuple[int, ...] = L.HEATMAP_LABELS
    transitional: frozenset[int] = L.TRANSITIONAL_LABELS

    def __post_init__(self) -> None:
        if not (0 <= self.min_distance_mm < self.max_distance_mm):
            raise ValueError(
                f"need 0 <= min_distance_mm < max_distance_mm, got {self.min_distance_mm}, {self.max_distance_mm}"
            )
        u = np.asarray(self.cranial, dtype=np.float64).reshape(-1)
        norm = float(np.linalg.norm(u)) if u.shape == (3,) else 0.0
        if not np.isfinite(norm) or norm == 0:
            raise ValueError(f"cranial must be a non-zero 3-D direction, got {self.cranial}")
        object.__setattr__(self, "cranial", tuple((u / norm).tolist()))
        object.__setattr__(self, "labels", tuple(L.anatomical_order(self.labels)))
        object.__setattr__(self, "transitional", frozenset(int(t) for t in self.transitional))

    def pair_ok(self, upper: np.ndarray, lower: np.ndarray) -> bool:
        """Whether ``lower`` may follow ``upper`` directly in a chain (distance and order rules)."""
        return bool(self.pairs_ok(np.reshape(upper, (1, 3)), np.reshape(lower, (1, 3)))[0, 0])

    def pairs_ok(self, upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
        """(A, B) bool: whether ``lower[b]`` may follow ``upper[a]`` directly, for (A, 3) and (B, 3) points."""
        return self._pairs_between(upper, lower, self.min_distance_mm, self.max_distance_mm)

    def _pairs_between(self, upper: np.ndarray, lower: np.ndarray, lo: float, hi: float) -> np.ndarray:
        """(A, B) bool: ``lower[b]`` strictly between ``lo`` and ``hi`` mm from ``upper[a]`` and below it."""
        diff = np.asarray(upper, dtype=np.float64)[:, None, :] - np.asarray(lower, dtype=np.float64)[None, :, :]
        dist = np.linalg.norm(diff, axis=-1)
        drop = diff @ np.asarray(self.cranial, dtype=np.float64)
        return (dist > lo) & (dist < hi) & (drop > 0)

    def skip_predecessors(self, n: int) -> list[int]:
        """Positions that may come before ``n`` when the one non-transitional channel right before it is
        skipped (see ``skip_penalty`` of :func:`select_sequence`)."""
        direct = self.predecessors(n)
        if not direct or self.labels[direct[-1]] in self.transitional:
            return []
        return self.predecessors(direct[-1])

    def skip_pairs_ok(self, upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
        """(A, B) bool: whether ``lower[b]`` may follow ``upper[a]`` with one vertebra between them (two steps:
        more than twice the largest spacing of one step would allow it is not, nor less than one step can be)."""
        return self._pairs_between(upper, lower, SKIP_MIN_MM, 2.0 * self.max_distance_mm)

    def predecessors(self, n: int) -> list[int]:
        """Positions in ``labels`` that may come right before position ``n`` (skipping transitional ones)."""
        out = []
        p = n - 1
        while p >= 0:
            out.append(p)
            if self.labels[p] not in self.transitional:
                break
            p -= 1
        return out


def _distance_and_drop(upper: np.ndarray, lower: np.ndarray, cranial: Sequence[float]) -> tuple[float, float]:
    """Distance (mm) and how far ``lower`` lies below ``upper`` along ``cranial`` (positive = below)."""
    diff = np.asarray(upper, dtype=np.float64) - np.asarray(lower, dtype=np.float64)
    return float(np.linalg.norm(diff)), float(diff @ np.asarray(cranial, dtype=np.float64))


@dataclass(frozen=True, eq=False)
class Rejected:
    """A candidate that is not on the selected chain, and why."""

    candidate: Candidate
    reason: str


@dataclass(frozen=True, eq=False)
class SequenceResult:
    """The selected chain (cranial to caudal) as centroids with confidence = heatmap value, plus diagnostics."""

    centroids: Centroids
    chain: tuple[Candidate, ...]
    score: float
    rejected: tuple[Rejected, ...] = field(default=())


def select_sequence(
    candidates: Mapping[int, Iterable[Candidate]],
    rules: ChainRules | None = None,
    *,
    min_value: float = 0.05,
    end_min_value: float = 0.25,
    min_length: int = 2,
    skip_penalty: float | None = None,
) -> SequenceResult:
    """The highest-response chain of candidates that obeys ``rules`` (see the module docstring).

    ``skip_penalty`` (SpineSeg's option, off by default as in Payer et al.): a chain may also jump over one
    non-transitional channel (two vertebral steps, :meth:`ChainRules.skip_pairs_ok`), at this cost to its
    score, so that a vertebra whose channel has no candidate near it does not end the chain there. The
    skipped level is then missing from the chain (:func:`fill_skipped` places it).

    ``candidates`` maps a label to its candidates (each candidate's label must equal the key). Candidates with a
    value below ``min_value`` never enter; a chain starts and ends at values >= ``end_min_value`` and holds at least
    ``min_length`` landmarks. When no chain qualifies the result is empty and every candidate is rejected.
    """
    rules = rules or ChainRules()
    m = max(1, int(min_length))
    position = {label: n for n, label in enumerate(rules.labels)}
    nodes: list[list[Candidate]] = [[] for _ in rules.labels]
    rejected: list[Rejected] = []
    for key, cands in candidates.items():
        if not L.is_known(key):
            raise ValueError(f"unknown vertebra label id {key!r} in the candidates")
        key = int(key)
        for cand in cands:
            if cand.label != key:
                raise ValueError(f"a candidate of label {cand.label} is listed under label {key}")
            if key not in position:
                rejected.append(Rejected(cand, f"{L.name_of(key)} is not a channel of the sequence"))
            elif not np.isfinite(cand.value) or cand.value < min_value:
                rejected.append(Rejected(cand, f"value {cand.value:.3f} below min_value {min_value:g}"))
            else:
                nodes[position[key]].append(cand)
    for channel in nodes:
        channel.sort(key=lambda c: -c.value)  # stable: equal values keep input order

    points = [np.array([c.point_lps for c in channel]).reshape(-1, 3) for channel in nodes]
    links = {(p, n): rules.pairs_ok(points[p], points[n]) for n in range(len(nodes)) for p in rules.predecessors(n)}
    skips: dict[int, list[int]] = {}
    if skip_penalty is not None:
        skips = {n: rules.skip_predecessors(n) for n in range(len(nodes))}
        for n, before in skips.items():
            for p in before:
                links[(p, n, "skip")] = rules.skip_pairs_ok(points[p], points[n])

    # score[n][c][l]: best sum of a chain ending at candidate c of channel n with length min(l, m) (l = 1..m).
    neg = -np.inf
    score: list[list[list[float]]] = []
    back: list[list[list[tuple[int, int, int] | None]]] = []
    for n, channel in enumerate(nodes):
        score.append([])
        back.append([])
        for c, cand in enumerate(channel):
            sc = [neg] * (m + 1)
            bk: list[tuple[int, int, int] | None] = [None] * (m + 1)
            if cand.value >= end_min_value:
                sc[1] = cand.value
            steps = [(p, links[(p, n)], 0.0) for p in rules.predecessors(n)]
            steps += [(p, links[(p, n, "skip")], float(skip_penalty)) for p in skips.get(n, [])]
            for p, ok, cost in steps:
                for c2 in np.flatnonzero(ok[:, c]).tolist():
                    for l2 in range(1, m + 1):
                        s = score[p][c2][l2]
                        if s == neg:
                            continue
                        length = min(l2 + 1, m)
                        if s + cand.value - cost > sc[length]:
                            sc[length] = s + cand.value - cost
                            bk[length] = (p, c2, l2)
            score[n].append(sc)
            back[n].append(bk)

    best, end = neg, None
    for n, channel in enumerate(nodes):
        for c, cand in enumerate(channel):
            if cand.value >= end_min_value and score[n][c][m] > best:
                best, end = score[n][c][m], (n, c, m)

    chain_keys: list[tuple[int, int]] = []
    state = end
    while state is not None:
        n, c, length = state
        chain_keys.append((n, c))
        state = back[n][c][length]
    chain_keys.reverse()
    chain = tuple(nodes[n][c] for n, c in chain_keys)

    chosen = set(chain_keys)
    used_channels = {n for n, _ in chain_keys}
    first, last = (chain_keys[0][0], chain_keys[-1][0]) if chain_keys else (None, None)
    for n, channel in enumerate(nodes):
        for c, cand in enumerate(channel):
            if (n, c) in chosen:
                continue
            name = L.name_of(rules.labels[n])
            if first is None:
                reason = f"no chain of at least {m} landmarks obeys the rules"
            elif n in used_channels:
                reason = f"{name}: another candidate is on the selected chain"
            elif first < n < last:
                reason = f"the selected chain skips {name}"
            else:
                span = f"{L.name_of(rules.labels[first])}..{L.name_of(rules.labels[last])}"
                reason = f"outside the selected chain {span}"
            rejected.append(Rejected(cand, reason))

    centroids = Centroids({c.label: c.point_lps for c in chain}, {c.label: c.value for c in chain})
    return SequenceResult(centroids, chain, float(best) if chain else 0.0, tuple(rejected))


def fill_skipped(centroids: Centroids, rules: ChainRules | None = None) -> tuple[Centroids, list[int]]:
    """The chain with each level it skipped (one non-transitional label between two chosen ones) placed
    halfway between its neighbours, with confidence 0 (no heatmap vouches for it); and the labels placed."""
    rules = rules or ChainRules()
    order = [lab for lab in rules.labels if lab in centroids]
    points = {lab: np.asarray(centroids[lab], dtype=np.float64) for lab in centroids.labels}
    confidence = {lab: centroids.confidence_of(lab) for lab in centroids.labels}
    placed = []
    for a, b in itertools.pairwise(order):
        between = rules.labels[rules.labels.index(a) + 1 : rules.labels.index(b)]
        missing = [lab for lab in between if lab not in rules.transitional]
        if len(missing) == 1:
            points[missing[0]] = (points[a] + points[b]) / 2.0
            confidence[missing[0]] = 0.0
            placed.append(missing[0])
    if not placed:
        return centroids, []
    conf = {k: v for k, v in confidence.items() if v is not None}
    return Centroids(points, conf), placed


def check_chain(centroids: Centroids, rules: ChainRules | None = None) -> list[str]:
    """Human-readable violations of the chain rules by ``centroids`` (empty when it is plausible).

    Consecutive present labels (anatomical order; labels that are no sequence channel, e.g. the sacrum, are
    ignored) are checked for: a gap (a missing non-transitional label between them), spacing (more than
    ``min_distance_mm`` apart always, less than ``max_distance_mm`` only when no label is missing between them)
    and order (the second strictly lower along the cranial direction).
    """
    rules = rules or ChainRules()
    position = {label: n for n, label in enumerate(rules.labels)}
    present = [label for label in rules.labels if label in centroids]
    problems: list[str] = []
    for a, b in itertools.pairwise(present):
        na, nb = L.name_of(a), L.name_of(b)
        between = rules.labels[position[a] + 1 : position[b]]
        gap = any(label not in rules.transitional for label in between)
        if gap:
            problems.append(f"gap: {na} is followed by {nb}")
        dist, drop = _distance_and_drop(centroids[a], centroids[b], rules.cranial)
        if dist <= rules.min_distance_mm:
            problems.append(f"{na}-{nb}: {dist:.1f} mm apart (< {rules.min_distance_mm:g} mm)")
        elif not gap and dist >= rules.max_distance_mm:
            problems.append(f"{na}-{nb}: {dist:.1f} mm apart (> {rules.max_distance_mm:g} mm)")
        if drop < 0:
            problems.append(f"{nb} is above {na}")
        elif drop == 0:
            problems.append(f"{nb} is level with {na}")
    return problems
