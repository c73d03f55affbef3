"""The per-vertebra table of one case (terminal, CSV): level, confidence, measurements, flags."""

from __future__ import annotations

import csv
import io
from dataclasses import fields

from .. import labels as L
from ..centroids import Centroids
from ..measurements import Measurements, VertebraMeasurement
from ..plausibility import Review

_COLUMNS = (
    "level",
    "conf",
    "seg p",
    "vol cm3",
    "Ha mm",
    "Hm mm",
    "Hp mm",
    "wedge",
    "Genant",
    "core HU",
    "disc below mm",
)


def _fmt(x, digits: int = 1) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def case_table(centroids: Centroids, measurements: Measurements | None, rev: Review | None) -> str:
    """A plain-text table, one row per vertebra with a centroid or a mask, then the case's flags."""
    by_label = {m.label: m for m in measurements.vertebrae} if measurements else {}
    discs = {d.upper: d for d in measurements.discs} if measurements else {}
    labels = L.anatomical_order(set(centroids.labels) | set(by_label))
    rows = []
    for lab in labels:
        m = by_label.get(lab)
        d = discs.get(lab)
        rows.append(
            (
                L.name_of(lab),
                _fmt(centroids.confidence_of(lab), 2) if lab in centroids else "-",
                _fmt(rev.segmentation_probability.get(lab), 2) if rev else "-",
                _fmt(m.volume_cm3) if m else "-",
                _fmt(m.height_anterior_mm) if m else "-",
                _fmt(m.height_middle_mm) if m else "-",
                _fmt(m.height_posterior_mm) if m else "-",
                _fmt(m.wedge_ratio, 2) if m else "-",
                _fmt(m.genant_grade) if m else "-",
                _fmt(m.core_hu_mean, 0) if m else "-",
                _fmt(d.height_middle_mm) if d else "-",
                "; ".join(rev.flags_of(lab)) if rev else "",
            )
        )
    header = (*_COLUMNS, "flags")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(_COLUMNS))]
    lines = ["  ".join(str(v).rjust(w) for v, w in zip(header, widths)) + "  " + header[-1]]
    lines += ["  ".join(str(v).rjust(w) for v, w in zip(r, widths)) + "  " + r[-1] for r in rows]
    if rev and rev.case:
        lines += [f"REVIEW: {line}" for line in rev.case]
    return "\n".join(line.rstrip() for line in lines)


def measurements_csv(measurements: Measurements, rev: Review | None = None) -> str:
    """The measurements as CSV (one row per vertebra, the disc below it, the vertebra's flags)."""
    rows = measurements.csv_rows()
    for row in rows:
        row["flags"] = "; ".join(rev.flags_of(row["label"])) if rev else ""
        p = rev.segmentation_probability.get(row["label"]) if rev else None
        row["segmentation_probability"] = "" if p is None else f"{p:.3f}"
    names = [f.name for f in fields(VertebraMeasurement)] + [
        "disc_below",
        "disc_below_height_mm",
        "segmentation_probability",
        "flags",
    ]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
