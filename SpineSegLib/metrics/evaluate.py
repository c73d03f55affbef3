"""Per-vertebra evaluation of a vertebra label map (and centroids) against a ground truth.

For every VerSe label in the ground truth or the prediction (masks on the same grid,
distances in mm with the image spacing):

- Dice, FND, FPD (:mod:`.overlap`), HD, HD95, ASSD (:mod:`.surface`, MONAI's
  definitions), point error and identification (:mod:`.points`);
- a ground-truth vertebra missing from the prediction has Dice 0, FND 2, FPD 0 and is not
  identified; its HD/HD95/ASSD/PE are undefined (None in JSON) and are left out of the
  means, which are therefore over the vertebrae present in both (the text table says so);
- a label only in the prediction is listed (Dice 0, FND 0, FPD 2, in_gt False) but does
  not enter the means, which are over the ground-truth vertebrae; it counts as a false
  positive instance in PQ;
- PQ/SQ/RQ over all instances (:mod:`.panoptic`), and ``dice_global``, the binary Dice of
  the whole vertebra foreground (what the VerSe evaluation notebook calls Dice).

Everything is computed inside per-label boxes found in one pass over each volume.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .. import labels as L
from ..centroids import Centroids
from ..errors import SpineSegError
from ..geometry import Grid
from ..labelmap import label_ids, without_labels
from . import report
from .overlap import overlap_counts
from .panoptic import PanopticResult, add_intersections, panoptic_from_counts
from .points import DEFAULT_ID_THRESHOLD_MM, identified, point_errors
from .surface import surface_metrics
from .volumes import LabelVolume, check_same_grid, label_volume, union_box


@dataclass(frozen=True)
class VertebraMetrics:
    """Metrics of one label. Distances in mm; None where undefined (label missing on one side)."""

    label: int
    name: str
    dice: float
    fnd: float
    fpd: float
    hd: float | None
    hd95: float | None
    assd: float | None
    pe_mm: float | None
    identified: bool
    in_gt: bool
    in_pred: bool
    gt_voxels: int = 0
    pred_voxels: int = 0


@dataclass(frozen=True)
class Summary:
    """Means over ground-truth vertebrae (Dice family) or over those present in both (distances).

    A mean is None when no vertebra has the value (e.g. no vertebra found at all).
    """

    n_gt: int
    n_pred: int
    n_missed: int  # ground-truth vertebrae absent from the prediction
    n_extra: int  # predicted labels absent from the ground truth
    n_identified: int
    dice_mean: float
    fnd_mean: float
    fpd_mean: float
    hd_mean: float | None
    hd95_mean: float | None
    assd_mean: float | None
    pe_mean_mm: float | None
    id_rate: float
    pq: float
    sq: float
    rq: float
    panoptic_tp: int
    panoptic_fp: int
    panoptic_fn: int
    dice_global: float
    n_surface: int  # vertebrae in hd/hd95/assd means
    n_pe: int  # vertebrae in pe_mean_mm


@dataclass
class Evaluation:
    """Result of :func:`evaluate`: per-vertebra rows in anatomical order and a summary."""

    per_vertebra: dict[int, VertebraMetrics]
    summary: Summary
    id_threshold_mm: float = DEFAULT_ID_THRESHOLD_MM
    spacing_mm: tuple[float, float, float] = (1.0, 1.0, 1.0)
    ignored_labels: dict[str, list[int]] = field(default_factory=dict)
    not_scored: list[int] = field(default_factory=list)  # levels left out on request (``ignore``)

    def to_json(self) -> dict:
        """JSON-ready dict: {"per_vertebra": {name: {...}}, "summary": {...}, "settings": {...}}."""
        return report.to_json(self)

    def to_csv(self, path_or_file: str | Path | IO[str] | None = None) -> str:
        """The per-vertebra table as CSV text; also written to ``path_or_file`` when given."""
        return report.to_csv(self, path_or_file)

    def table(self) -> str:
        """Human-readable table (one row per vertebra, then summary lines)."""
        return report.table(self)


def evaluate(
    pred: sitk.Image,
    gt: sitk.Image,
    pred_centroids: Centroids | None = None,
    gt_centroids: Centroids | None = None,
    *,
    id_threshold_mm: float = DEFAULT_ID_THRESHOLD_MM,
    surface_method: str = "kdtree",
    pred_name: str = "prediction mask",
    gt_name: str = "ground truth mask",
    ignore: Iterable[int] = (),
) -> Evaluation:
    """Evaluate a predicted vertebra label map against the ground truth on the same grid.

    Centroids are LPS mm. When ``gt_centroids``/``pred_centroids`` is None they are the
    centres of mass of the labels in the masks (the same points as
    :func:`SpineSegLib.labelmap.label_centroids`, taken from the boxes already found), so a
    vertebra missing from the prediction mask has no PE and is not identified. Given
    ``pred_centroids`` are used as they are: localisation is judged on them, so a label
    without one is not identified, and one with a centroid but no voxels still gets a PE
    and may be identified. Given ``gt_centroids`` lacking a ground-truth mask label fall
    back to that label's mask centroid, with a warning; ground-truth centroids of labels
    absent from the ground-truth mask are not used (the ground-truth vertebrae are the
    VerSe labels of the ground-truth mask).

    Raises :class:`SpineSegError` when the grids differ (see
    :func:`~SpineSegLib.metrics.volumes.resample_prediction`) or the ground truth has no
    vertebra label. Label ids that are not VerSe vertebrae are ignored with a warning.
    ``pred_name``/``gt_name`` name the masks in messages (the CLI passes the file names).
    ``ignore``: levels left out of both masks and both centroid sets (e.g. the sacrum, which the
    CT pipeline has no channel for); those found on either side are listed in ``not_scored``.
    """
    check_same_grid(pred, gt)
    ignore = set(int(v) for v in ignore)
    not_scored: list[int] = []
    if ignore:
        present = set(label_ids(sitk.GetArrayViewFromImage(gt))) | set(label_ids(sitk.GetArrayViewFromImage(pred)))
        for ctd in (gt_centroids, pred_centroids):
            present |= set(ctd.labels) if ctd is not None else set()
        not_scored = L.anatomical_order(ignore & present)
        gt, pred = without_labels(gt, ignore), without_labels(pred, ignore)
        gt_centroids, pred_centroids = (
            c.subset([lab for lab in c.labels if lab not in ignore]) if c is not None else None
            for c in (gt_centroids, pred_centroids)
        )
    gt_vol = label_volume(gt, gt_name)
    if not gt_vol.boxes:
        extra = f" (only ids {list(gt_vol.ignored)}, which are not VerSe vertebra labels)" if gt_vol.ignored else ""
        raise SpineSegError(f"{gt_name} has no labels{extra}: nothing to evaluate against")
    pred_vol = label_volume(pred, pred_name)
    grid = Grid.of(gt)
    sampling = tuple(reversed(grid.spacing))  # array axes are [k, j, i]

    rows: dict[int, dict] = {}
    mask_centroids_gt: dict[int, np.ndarray] = {}
    mask_centroids_pred: dict[int, np.ndarray] = {}
    intersections: dict[tuple[int, int], int] = {}
    for lab in L.anatomical_order(set(gt_vol.boxes) | set(pred_vol.boxes)):
        rows[lab] = _label_row(
            lab, gt_vol, pred_vol, grid, sampling, surface_method, mask_centroids_gt, mask_centroids_pred, intersections
        )

    gt_ctd = _gt_centroids(gt_vol.labels, gt_centroids, mask_centroids_gt)
    pred_ctd = Centroids(mask_centroids_pred) if pred_centroids is None else pred_centroids
    pe = point_errors(pred_ctd, gt_ctd)
    ids = identified(pred_ctd, gt_ctd, id_threshold_mm)

    gt_sizes = {lab: rows[lab]["gt_voxels"] for lab in gt_vol.boxes}
    pred_sizes = {lab: rows[lab]["pred_voxels"] for lab in pred_vol.boxes}
    pan = panoptic_from_counts(intersections, gt_sizes, pred_sizes)

    per_vertebra = {
        lab: VertebraMetrics(
            label=lab,
            name=L.name_of(lab),
            pe_mm=pe.get(lab),
            identified=ids.get(lab, False),
            **row,
        )
        for lab, row in rows.items()
    }
    binary_tp = sum(n for (_, p), n in intersections.items() if p in pred_sizes)
    summary = _summary(per_vertebra, pan, binary_tp, sum(gt_sizes.values()), sum(pred_sizes.values()))
    return Evaluation(
        per_vertebra=per_vertebra,
        summary=summary,
        id_threshold_mm=float(id_threshold_mm),
        spacing_mm=grid.spacing,
        ignored_labels={"gt": list(gt_vol.ignored), "pred": list(pred_vol.ignored)},
        not_scored=not_scored,
    )


def _label_row(
    lab: int,
    gt_vol: LabelVolume,
    pred_vol: LabelVolume,
    grid: Grid,
    sampling: Sequence[float],
    surface_method: str,
    mask_centroids_gt: dict[int, np.ndarray],
    mask_centroids_pred: dict[int, np.ndarray],
    intersections: dict[tuple[int, int], int],
) -> dict:
    """Overlap and surface metrics of one label inside the union of its boxes; collects centroids and PQ overlaps."""
    gbox, pbox = gt_vol.boxes.get(lab), pred_vol.boxes.get(lab)
    box = union_box(gbox, pbox)
    offset = np.array([s.start for s in box], dtype=float)
    g = gt_vol.array[box] == lab if gbox is not None else None
    p = pred_vol.array[box] == lab if pbox is not None else None
    counts = overlap_counts(g, p)
    if g is not None:
        mask_centroids_gt[lab] = grid.index_to_physical((np.asarray(ndimage.center_of_mass(g)) + offset)[::-1])[0]
        # PQ overlaps of this ground-truth instance with every predicted label: the box holds them all.
        add_intersections(intersections, lab, pred_vol.array[box][g])
    if p is not None:
        mask_centroids_pred[lab] = grid.index_to_physical((np.asarray(ndimage.center_of_mass(p)) + offset)[::-1])[0]
    hd = hd95 = assd = None
    if g is not None and p is not None:
        s = surface_metrics(g, p, sampling, method=surface_method)
        hd, hd95, assd = s.hd, s.hd95, s.assd
    return {
        "dice": counts.dice,
        "fnd": counts.fnd,
        "fpd": counts.fpd,
        "hd": hd,
        "hd95": hd95,
        "assd": assd,
        "in_gt": g is not None,
        "in_pred": p is not None,
        "gt_voxels": counts.n_gt,
        "pred_voxels": counts.n_pred,
    }


def _gt_centroids(gt_labels: list[int], given: Centroids | None, from_masks: dict[int, np.ndarray]) -> Centroids:
    """Ground-truth centroids of the mask labels: the given ones, else (with a warning) the mask's."""
    if given is None:
        return Centroids({lab: from_masks[lab] for lab in gt_labels})
    lacking = [lab for lab in gt_labels if lab not in given]
    if lacking:
        warnings.warn(
            f"ground-truth centroids lack {[L.name_of(v) for v in lacking]}, which are in the ground-truth mask; "
            "their mask centroids are used instead",
            UserWarning,
            stacklevel=3,
        )
    return Centroids({lab: given[lab] if lab in given else from_masks[lab] for lab in gt_labels})


def _mean(values: list[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def _summary(
    rows: dict[int, VertebraMetrics], pan: PanopticResult, binary_tp: int, n_gt_vox: int, n_pred_vox: int
) -> Summary:
    gt_rows = [r for r in rows.values() if r.in_gt]
    both = [r for r in gt_rows if r.in_pred]
    with_pe = [r for r in gt_rows if r.pe_mm is not None]
    n_identified = sum(r.identified for r in gt_rows)
    return Summary(
        n_gt=len(gt_rows),
        n_pred=sum(r.in_pred for r in rows.values()),
        n_missed=len(gt_rows) - len(both),
        n_extra=sum(r.in_pred and not r.in_gt for r in rows.values()),
        n_identified=n_identified,
        dice_mean=_mean([r.dice for r in gt_rows]),  # type: ignore[arg-type]
        fnd_mean=_mean([r.fnd for r in gt_rows]),  # type: ignore[arg-type]
        fpd_mean=_mean([r.fpd for r in gt_rows]),  # type: ignore[arg-type]
        hd_mean=_mean([r.hd for r in both]),  # type: ignore[misc]
        hd95_mean=_mean([r.hd95 for r in both]),  # type: ignore[misc]
        assd_mean=_mean([r.assd for r in both]),  # type: ignore[misc]
        pe_mean_mm=_mean([r.pe_mm for r in with_pe]),  # type: ignore[misc]
        id_rate=n_identified / len(gt_rows),
        pq=pan.pq,
        sq=pan.sq,
        rq=pan.rq,
        panoptic_tp=pan.tp,
        panoptic_fp=pan.fp,
        panoptic_fn=pan.fn,
        dice_global=2 * binary_tp / (n_gt_vox + n_pred_vox),
        n_surface=len(both),
        n_pe=len(with_pe),
    )
