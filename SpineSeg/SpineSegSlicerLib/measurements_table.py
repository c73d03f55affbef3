"""The per-vertebra measurements as a table node: what ``spineseg run`` writes, kept current after edits.

A full run's ``<case>_measurements.csv`` (volume, body heights, Genant ratios and grade, core HU, the
disc below, segmentation probability, review flags) becomes the table "<volume> measurements". After
"Update segmentation" the numbers are measured again in Slicer from the current segments (the same
SpineSegLib code), so the table never shows a vertebra's old shape; the flags and probabilities of the
last run are kept for the vertebrae that were not re-segmented and cleared for those that were.
"""

from __future__ import annotations

import csv
import io
import math

import vtk

from SpineSegLib import labels as L

from . import nodes as N
from . import results

#: Table attribute: whether core HU were measured (the run's input was CT in Hounsfield units).
HOUNSFIELD_ATTRIBUTE = "SpineSeg.Hounsfield"
#: Columns that stay text; every other column is numeric (empty cells are NaN).
TEXT_COLUMNS = ("name", "axis", "note", "disc_below", "flags")


def _number(text: str) -> float:
    try:
        return float(text) if text.strip() else math.nan
    except ValueError:
        return math.nan


def read_rows(csv_text: str) -> tuple[list[str], list[dict[str, str]]]:
    """(column names, rows) of a measurements CSV."""
    reader = csv.DictReader(io.StringIO(csv_text))
    return list(reader.fieldnames or []), list(reader)


def fill_table(table_node, columns: list[str], rows: list[dict[str, str]]) -> None:
    """Replace the table's content: text columns as strings, the others as doubles (NaN where empty)."""
    table = vtk.vtkTable()
    for name in columns:
        array = vtk.vtkStringArray() if name in TEXT_COLUMNS else vtk.vtkDoubleArray()
        array.SetName(name)
        for row in rows:
            value = row.get(name) or ""
            if name in TEXT_COLUMNS:
                array.InsertNextValue(value)
            else:
                array.InsertNextValue(_number(value))
        table.AddColumn(array)
    table_node.SetAndObserveTable(table)
    table_node.SetUseColumnNameAsColumnHeader(True)
    table_node.Modified()


def table_rows(table_node) -> tuple[list[str], list[dict[str, str]]]:
    """(column names, rows as text) of a measurements table (the inverse of :func:`fill_table`)."""
    table = table_node.GetTable()
    columns = [table.GetColumn(c).GetName() for c in range(table.GetNumberOfColumns())]
    rows = []
    for r in range(table.GetNumberOfRows()):
        row = {}
        for c, name in enumerate(columns):
            value = table.GetColumn(c).GetValue(r)
            if name in TEXT_COLUMNS:
                row[name] = str(value)
            else:
                row[name] = "" if math.isnan(float(value)) else repr(float(value))
        rows.append(row)
    return columns, rows


def import_measurements(volume, csv_text: str, node=None):
    """The table "<volume> measurements" from a run's measurements CSV (returns the table node)."""
    columns, rows = read_rows(csv_text)
    table = results.output_node(volume, results.ROLE_MEASUREMENTS, node)
    fill_table(table, columns, rows)
    measured_hu = any(row.get("core_hu_mean", "").strip() for row in rows)
    table.SetAttribute(HOUNSFIELD_ATTRIBUTE, "1" if measured_hu else "0")
    return table


def remeasure(volume, segmentation_node, resegmented: list[int]):
    """Measure the current segments again into the volume's measurements table (None when it has none).

    ``resegmented``: the vertebrae the update re-segmented; their run flags and probability are cleared.
    """
    from SpineSegLib.measurements import measure_vertebrae
    from SpineSegLib.report.case_table import measurements_csv

    table = results.find_output(volume, results.ROLE_MEASUREMENTS)
    if table is None:
        return None
    _, old_rows = table_rows(table)
    by_label = {_label(r): r for r in old_rows if r.get("label")}
    kept = {lab: r for lab, r in by_label.items() if lab not in resegmented}
    labelmap = N.labelmap_from_segmentation(segmentation_node, volume)
    hounsfield = table.GetAttribute(HOUNSFIELD_ATTRIBUTE) == "1"
    measured = measure_vertebrae(labelmap, N.sitk_from_volume(volume), hounsfield=hounsfield)
    columns, rows = read_rows(measurements_csv(measured))
    for row in rows:
        old = kept.get(int(row["label"]))
        row["flags"] = old.get("flags", "") if old else ""
        row["segmentation_probability"] = old.get("segmentation_probability", "") if old else ""
    fill_table(table, columns, rows)
    return table


def level_names(table_node) -> list[str]:
    """The vertebra names of the table's rows, in order (for messages and tests)."""
    _, rows = table_rows(table_node)
    return [L.name_of(_label(r)) for r in rows]


def _label(row: dict[str, str]) -> int:
    """The VerSe id of a table row (the label column is numeric, read back as text like "20.0")."""
    return int(float(row["label"]))
