"""An :class:`~SpineSegLib.metrics.evaluate.Evaluation` as JSON, CSV and a text table.

Undefined values (distances of a vertebra missing on one side, means over nothing) are
``None`` in JSON, empty fields in CSV and "-" in the table.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from pathlib import Path
from typing import IO, TYPE_CHECKING

from .. import labels as L
from ..io.atomic import write_text_atomic

if TYPE_CHECKING:
    from .evaluate import Evaluation

CSV_COLUMNS = (
    "label",
    "name",
    "in_gt",
    "in_pred",
    "dice",
    "fnd",
    "fpd",
    "hd",
    "hd95",
    "assd",
    "pe_mm",
    "identified",
    "gt_voxels",
    "pred_voxels",
)

DEFINITIONS = {
    "dice": "2TP/(2TP+FP+FN) per label; a missed ground-truth vertebra has dice 0",
    "fnd": "false negative Dice 2FN/(2TP+FP+FN) (seed paper); dice + (fnd+fpd)/2 = 1",
    "fpd": "false positive Dice 2FP/(2TP+FP+FN)",
    "surface": "mask minus its binary erosion (6-neighbour cross, outside the volume = background), as MONAI",
    "hd": "max of the two directed maximum surface distances (mm)",
    "hd95": "max of the two directed 95th percentiles, linear interpolation (MONAI HausdorffDistanceMetric)",
    "assd": "(sum a->B + sum b->A)/(|dA|+|dB|) (mm), MONAI SurfaceDistanceMetric(symmetric=True)",
    "pe_mm": "distance between predicted and ground-truth centroid of the same label (LPS mm)",
    "identified": "pe <= id_threshold_mm and no other ground-truth centroid closer to the predicted one",
    "means": "dice/fnd/fpd over ground-truth vertebrae; hd/hd95/assd over vertebrae in both masks; "
    "pe over ground-truth vertebrae with a predicted centroid; missed vertebrae are excluded from distance means",
    "pq": "instances = labels matched by IoU > 0.5 regardless of label id; "
    "RQ=TP/(TP+FP/2+FN/2), SQ=sum IoU/TP, PQ=SQ*RQ",
    "dice_global": "binary Dice of the whole vertebra foreground (VerSe evaluation notebook)",
}


def to_json(ev: Evaluation) -> dict:
    rows = {}
    for m in ev.per_vertebra.values():
        d = asdict(m)
        name = d.pop("name")
        rows[name] = d
    return {
        "per_vertebra": rows,
        "summary": asdict(ev.summary),
        "settings": {
            "id_threshold_mm": ev.id_threshold_mm,
            "spacing_mm": list(ev.spacing_mm),
            "definitions": DEFINITIONS,
        },
        "ignored_labels": {k: list(v) for k, v in ev.ignored_labels.items()},
        "not_scored": [L.name_of(v) for v in ev.not_scored],
    }


def _csv_value(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return f"{v:.6f}"
    return str(v)


def to_csv(ev: Evaluation, path_or_file: str | Path | IO[str] | None = None) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for m in ev.per_vertebra.values():
        d = asdict(m)
        w.writerow([_csv_value(d[c]) for c in CSV_COLUMNS])
    text = buf.getvalue()
    if path_or_file is None:
        return text
    if hasattr(path_or_file, "write"):
        path_or_file.write(text)  # type: ignore[union-attr]
    else:
        write_text_atomic(text, Path(path_or_file))  # type: ignore[arg-type]
    return text


def _num(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def table(ev: Evaluation) -> str:
    header = f"{'vertebra':<9}{'dice':>8}{'FND':>8}{'FPD':>8}{'HD mm':>9}{'HD95 mm':>9}{'ASSD mm':>9}{'PE mm':>8}"
    lines = [header + "  identified"]
    only_pred = False
    for m in ev.per_vertebra.values():
        name = m.name
        if not m.in_gt:
            name += "*"
            only_pred = True
        ident = "yes" if m.identified else ("no" if m.in_gt else "-")
        if m.in_gt and not m.in_pred:
            ident = "no (missed)"
        lines.append(
            f"{name:<9}{m.dice:>8.4f}{m.fnd:>8.4f}{m.fpd:>8.4f}{_num(m.hd, '.2f'):>9}{_num(m.hd95, '.2f'):>9}"
            f"{_num(m.assd, '.3f'):>9}{_num(m.pe_mm, '.2f'):>8}  {ident}"
        )
    s = ev.summary
    if only_pred:
        lines.append("* only in the prediction: not a ground-truth vertebra, not in the means")
    lines += [
        "",
        f"ground-truth vertebrae {s.n_gt}, predicted {s.n_pred}, missed {s.n_missed}, extra {s.n_extra}",
        f"mean Dice {s.dice_mean:.4f} (FND {s.fnd_mean:.4f}, FPD {s.fpd_mean:.4f}) over {s.n_gt} ground-truth "
        "vertebrae, missed ones count as 0",
        f"mean HD {_num(s.hd_mean, '.2f')} mm, HD95 {_num(s.hd95_mean, '.2f')} mm, ASSD {_num(s.assd_mean, '.3f')} mm "
        f"over {s.n_surface} vertebrae present in both (missed vertebrae excluded)",
        f"mean point error {_num(s.pe_mean_mm, '.2f')} mm over {s.n_pe} vertebrae with both centroids",
        f"identification rate {s.n_identified}/{s.n_gt} = {100 * s.id_rate:.1f} % "
        f"(<= {ev.id_threshold_mm:g} mm and closest ground truth)",
        f"PQ {s.pq:.4f} = SQ {s.sq:.4f} x RQ {s.rq:.4f} (TP {s.panoptic_tp}, FP {s.panoptic_fp}, FN {s.panoptic_fn}; "
        "IoU > 0.5, label ids not compared)",
        f"global (binary) Dice of the vertebra foreground {s.dice_global:.4f}",
    ]
    ignored = [f"{k} {v}" for k, v in ev.ignored_labels.items() if v]
    if ignored:
        lines.append("ignored non-vertebra label ids: " + "; ".join(ignored))
    if ev.not_scored:
        lines.append(f"not scored: {', '.join(L.name_of(v) for v in ev.not_scored)}")
    return "\n".join(lines)
