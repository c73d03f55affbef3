"""Review and correction: what the user changed in the vertebra points, and applying it to the segments.

* :func:`detect_edits` compares the point list with the centroids of the last run (stored on the node)
  and says which vertebrae were moved, added, removed or renamed.
* :func:`merge_segments` puts a re-segmentation of some vertebrae into the segmentation: only those
  segments change, and segments the user edited by hand (their mask no longer matches the fingerprint
  SpineSeg stored) are kept unless the caller asks to overwrite them.
* :func:`shift_labels` renames every point and segment one position up or down the spine (the fix for
  a chain identified one vertebra off), handling the transitional T13/L6.
* :func:`chain_problems` flags chains that break the anatomical spacing/order rules
  (:func:`SpineSegLib.sequence.check_chain`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from SpineSegLib import labels as L
from SpineSegLib.centroids import Centroids

from . import nodes as N
from .results import FINGERPRINT_TAG, mask_fingerprint, order_segments, run_centroids, store_run_centroids
from .terminology import apply_vertebra_look, get_tag

#: A point that moved less than this (mm) has not been moved.
MOVE_TOLERANCE_MM = 0.5


@dataclass
class ChainEdit:
    """Differences between the current points and the last run's centroids (VerSe ids)."""

    moved: list[int] = field(default_factory=list)
    added: list[int] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)
    renamed: dict[int, int] = field(default_factory=dict)  # old label -> new label, same position

    @property
    def to_segment(self) -> list[int]:
        """Vertebrae whose segment must be computed again."""
        return L.anatomical_order(set(self.moved) | set(self.added))

    @property
    def any(self) -> bool:
        return bool(self.moved or self.added or self.removed or self.renamed)

    def describe(self) -> str:
        parts = []
        for title, labels in (("moved", self.moved), ("added", self.added), ("removed", self.removed)):
            if labels:
                parts.append(f"{title} {', '.join(L.name_of(x) for x in labels)}")
        if self.renamed:
            parts.append("renamed " + ", ".join(f"{L.name_of(a)}->{L.name_of(b)}" for a, b in self.renamed.items()))
        return "; ".join(parts) if parts else "no change"


def diff_centroids(previous: Centroids, current: Centroids, tolerance_mm: float = MOVE_TOLERANCE_MM) -> ChainEdit:
    """What changed from ``previous`` to ``current``: a label missing on one side whose point is where a
    label of the other side is (within the tolerance) was renamed, not removed and added."""
    edit = ChainEdit()
    gone = [k for k in previous if k not in current]
    new = [k for k in current if k not in previous]
    for old in list(gone):
        for candidate in new:
            if np.linalg.norm(previous[old] - current[candidate]) <= tolerance_mm:
                edit.renamed[old] = candidate
                gone.remove(old)
                new.remove(candidate)
                break
    edit.removed = L.anatomical_order(gone)
    edit.added = L.anatomical_order(new)
    edit.moved = [k for k in current if k in previous and np.linalg.norm(previous[k] - current[k]) > tolerance_mm]
    return edit


def detect_edits(markups_node) -> tuple[Centroids, ChainEdit, list[str]]:
    """(current centroids, edits since the last run, problems with the point labels)."""
    current, problems = N.centroids_from_markups(markups_node)
    previous = run_centroids(markups_node)
    if previous is None:
        return current, ChainEdit(added=current.labels), problems
    return current, diff_centroids(previous, current), problems


def chain_problems(centroids: Centroids) -> list[str]:
    """Human-readable violations of the anatomical spacing and order rules (empty: plausible)."""
    from SpineSegLib.sequence import check_chain

    return check_chain(centroids)


# ----------------------------------------------------------------------------------------------
# Segments


def is_hand_edited(segmentation_node, segment_id: str, reference) -> bool:
    """Whether a SpineSeg segment's mask differs from what SpineSeg wrote (no fingerprint: not ours, edited)."""
    segment = segmentation_node.GetSegmentation().GetSegment(segment_id)
    stored = get_tag(segment, FINGERPRINT_TAG)
    if not stored:
        return True
    return mask_fingerprint(N.segment_mask(segmentation_node, segment_id, reference)) != stored


@dataclass
class MergeReport:
    replaced: list[int] = field(default_factory=list)
    added: list[int] = field(default_factory=list)
    kept_edited: list[int] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)
    renamed: dict[int, int] = field(default_factory=dict)
    empty: list[int] = field(default_factory=list)  # re-segmented but nothing found

    def describe(self) -> str:
        parts = []
        for title, labels in (
            ("replaced", self.replaced),
            ("added", self.added),
            ("removed", self.removed),
            ("kept (edited by hand)", self.kept_edited),
            ("nothing found for", self.empty),
        ):
            if labels:
                parts.append(f"{title} {', '.join(L.name_of(x) for x in labels)}")
        if self.renamed:
            parts.append("renamed " + ", ".join(f"{L.name_of(a)}->{L.name_of(b)}" for a, b in self.renamed.items()))
        return "; ".join(parts) if parts else "no segment changed"


def rename_segments(segmentation_node, mapping: dict[int, int]) -> dict[int, int]:
    """Rename segments (VerSe id -> VerSe id) at once, so that swaps and shifts cannot collide."""
    segmentation = segmentation_node.GetSegmentation()
    targets = {}
    for old, new in mapping.items():
        sid = N.segment_id_by_name(segmentation_node, L.name_of(old))
        if sid is not None and old != new:
            targets[sid] = new
    for sid, new in targets.items():
        apply_vertebra_look(segmentation.GetSegment(sid), new)
    done = {}
    for old, new in mapping.items():
        if old != new and N.segment_id_by_name(segmentation_node, L.name_of(new)) is not None:
            done[old] = new
    order_segments(segmentation_node)
    return done


def remove_segments(segmentation_node, labels) -> list[int]:
    removed = []
    for label in labels:
        sid = N.segment_id_by_name(segmentation_node, L.name_of(label))
        if sid is not None:
            segmentation_node.GetSegmentation().RemoveSegment(sid)
            removed.append(label)
    return removed


def merge_segments(
    segmentation_node, reference, new_labels: np.ndarray, labels, overwrite_edited: bool = False
) -> MergeReport:
    """Replace the segments of ``labels`` by their voxels in ``new_labels`` ([k, j, i] VerSe ids).

    A re-segmented vertebra takes only voxels that are background or were its own (the other segments
    are never changed, as :func:`SpineSegLib.pipeline.segmentation.merge_into` does for label maps).
    Segments edited by hand since SpineSeg wrote them are kept unless ``overwrite_edited``.
    """
    report = MergeReport()
    segmentation = segmentation_node.GetSegmentation()
    todo = []
    for label in L.anatomical_order(labels):
        sid = N.segment_id_by_name(segmentation_node, L.name_of(label))
        if sid is not None and not overwrite_edited and is_hand_edited(segmentation_node, sid, reference):
            report.kept_edited.append(label)
            continue
        todo.append((label, sid))
    if not todo:
        return report
    current = N.labelmap_array_from_segmentation(segmentation_node, reference)
    for label, sid in todo:
        mask = (new_labels == label) & ((current == 0) | (current == label))
        if sid is None:
            if not mask.any():
                report.empty.append(label)
                continue
            sid = segmentation.AddEmptySegment("", L.name_of(label))
            report.added.append(label)
        else:
            report.replaced.append(label)
            if not mask.any():
                report.empty.append(label)
        apply_vertebra_look(segmentation.GetSegment(sid), label)
        N.set_segment_mask(segmentation_node, sid, mask, reference)
        segmentation.GetSegment(sid).SetTag(FINGERPRINT_TAG, mask_fingerprint(mask))
    order_segments(segmentation_node)
    return report


# ----------------------------------------------------------------------------------------------
# Label shift


def shift_order(labels) -> list[int]:
    """The sequence a shift moves along: C1..T12, T13 (only if present), L1..L5, L6."""
    present = set(labels)
    return [lab for lab in L.anatomical_order(L.HEATMAP_LABELS) if lab != 28 or 28 in present]


def shift_mapping(labels, steps: int) -> dict[int, int]:
    """VerSe id -> VerSe id moving every vertebra ``steps`` positions caudally (negative: cranially).

    The sacrum and coccyx keep their names. T13 takes part only when the chain has one (it becomes
    T12/L1 by shifting like any other vertebra); L5 shifted down becomes L6, and L6 shifted up L5.
    Raises ValueError when a vertebra would leave the spine (C1 up, L6 down).
    """
    labels = [int(x) for x in labels]
    order = shift_order(labels)
    mapping = {}
    for label in labels:
        if label not in order:
            mapping[label] = label  # sacrum, coccyx
            continue
        k = order.index(label) + steps
        if not 0 <= k < len(order):
            raise ValueError(
                f"cannot shift {L.name_of(label)} {'down' if steps > 0 else 'up'} by {abs(steps)}: "
                "it would leave the spine"
            )
        mapping[label] = order[k]
    if len(set(mapping.values())) != len(mapping):
        raise ValueError("the shift would give two vertebrae the same name")
    return mapping


@dataclass
class ShiftReport:
    mapping: dict[int, int]
    problems: list[str]

    def describe(self) -> str:
        moved = [f"{L.name_of(a)}->{L.name_of(b)}" for a, b in self.mapping.items() if a != b]
        return ", ".join(moved) if moved else "no label changed"


def shift_labels(markups_node, segmentation_node, steps: int) -> ShiftReport:
    """Rename all points and segments ``steps`` positions down (positive) or up (negative) the spine.

    Points, segments (names, colours, terminology) and the stored last-run centroids are renamed with the
    same mapping, so a later "update" sees no edit. Nothing changes when the shift is impossible.
    """
    current, problems = N.centroids_from_markups(markups_node)
    if problems:
        raise ValueError("; ".join(problems))
    names = set(current.labels)
    previous = run_centroids(markups_node)
    if previous is not None:
        names |= set(previous.labels)
    if segmentation_node is not None:
        for name in N.segment_names(segmentation_node):
            try:
                names.add(L.id_of(name))
            except KeyError:
                continue
    mapping = shift_mapping(L.anatomical_order(names), steps)
    for i in range(markups_node.GetNumberOfControlPoints()):
        label = L.id_of(markups_node.GetNthControlPointLabel(i).strip())
        markups_node.SetNthControlPointLabel(i, L.name_of(mapping[label]))
    if previous is not None:
        store_run_centroids(markups_node, previous.relabelled({k: mapping.get(k, k) for k in previous}))
    if segmentation_node is not None:
        rename_segments(segmentation_node, mapping)
    shifted = current.relabelled({k: mapping[k] for k in current})
    return ShiftReport(mapping, chain_problems(shifted))
