"""The measurements table in Slicer: a run's CSV imported cell by cell, and measured again after an edit.

Real MRML nodes (Slicer core libraries); the numbers are cross-checked against SpineSegLib's
measure_vertebrae on the same label map, before and after one vertebra is cut in half.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk

pytest.importorskip("slicer", reason="the Slicer core libraries (pip install slicer-core vtk==9.6.2) are needed")

import slicer_headless as H
from slicer_fixtures import synthetic_lumbar_ct

from SpineSegLib import labels as L
from SpineSegLib.measurements import measure_vertebrae
from SpineSegLib.report.case_table import measurements_csv


@pytest.fixture
def case():
    scene = H.init()
    from SpineSegSlicerLib import nodes as N
    from SpineSegSlicerLib import results

    spine = synthetic_lumbar_ct()
    volume = N.volume_from_sitk(scene, spine.image, "ct")
    segmentation, _ = results.import_segmentation(volume, spine.labels)
    return spine, volume, segmentation


def _as_float(text: str) -> float:
    return float(text) if text.strip() else math.nan


def assert_rows_equal(table_node, csv_text: str, skip=()):
    from SpineSegSlicerLib import measurements_table as MT

    columns, rows = MT.table_rows(table_node)
    want_columns, want = MT.read_rows(csv_text)
    assert columns == want_columns and len(rows) == len(want)
    for got, exp in zip(rows, want):
        for name in columns:
            if name in skip:
                continue
            if name in MT.TEXT_COLUMNS:
                assert got[name] == exp[name], (name, got, exp)
            else:
                np.testing.assert_allclose(_as_float(got[name]), _as_float(exp[name]), rtol=1e-9, err_msg=name)


def test_a_runs_csv_becomes_the_volumes_measurements_table(case):
    from SpineSegSlicerLib import measurements_table as MT
    from SpineSegSlicerLib import results

    spine, volume, _ = case
    text = measurements_csv(measure_vertebrae(spine.labels, spine.image, hounsfield=True))
    table = MT.import_measurements(volume, text)
    assert results.find_output(volume, results.ROLE_MEASUREMENTS) is table
    assert table.GetName() == "ct measurements"
    assert MT.level_names(table) == ["L1", "L2", "L3", "L4", "L5"]
    assert table.GetAttribute(MT.HOUNSFIELD_ATTRIBUTE) == "1"
    assert_rows_equal(table, text)
    # a second import fills the same table, not a new one
    assert MT.import_measurements(volume, text) is table


def test_an_edited_vertebra_is_measured_again_and_keeps_no_stale_flags(case):
    from SpineSegSlicerLib import measurements_table as MT
    from SpineSegSlicerLib import nodes as N

    spine, volume, segmentation = case
    columns, rows = MT.read_rows(measurements_csv(measure_vertebrae(spine.labels, spine.image, hounsfield=True)))
    for row in rows:  # the flags and probabilities a run would have written
        row["flags"], row["segmentation_probability"] = f"flag of {row['name']}", "0.9"
    table = MT.import_measurements(volume, "")
    MT.fill_table(table, columns, rows)
    table.SetAttribute(MT.HOUNSFIELD_ATTRIBUTE, "1")

    l3 = L.id_of("L3")
    sid = N.segment_id_by_name(segmentation, "L3")
    mask = N.segment_mask(segmentation, sid, volume)
    k = np.nonzero(mask.any(axis=(1, 2)))[0]
    mask[k.min() : (k.min() + k.max()) // 2 + 1] = False  # the lower half of L3 removed (k: LPS +z, superior)
    N.set_segment_mask(segmentation, sid, mask, volume)

    MT.remeasure(volume, segmentation, resegmented=[l3])
    edited = sitk.GetArrayFromImage(spine.labels)
    edited[(edited == l3) & ~mask] = 0
    edited_img = sitk.GetImageFromArray(edited)
    edited_img.CopyInformation(spine.labels)
    expected = measure_vertebrae(edited_img, spine.image, hounsfield=True)
    _, got = MT.table_rows(table)
    by_name = {r["name"]: r for r in got}
    want = {v.name: v for v in expected.vertebrae}
    for name in ("L1", "L2", "L3", "L4", "L5"):
        np.testing.assert_allclose(float(by_name[name]["volume_cm3"]), want[name].volume_cm3, rtol=1e-3, atol=1e-3)
    assert float(by_name["L3"]["volume_cm3"]) < 0.7 * float(next(r for r in rows if r["name"] == "L3")["volume_cm3"])
    assert by_name["L3"]["flags"] == "" and by_name["L3"]["segmentation_probability"] == ""
    assert by_name["L2"]["flags"] == "flag of L2" and float(by_name["L2"]["segmentation_probability"]) == 0.9


def test_a_volume_without_a_table_is_not_measured_again(case):
    from SpineSegSlicerLib import measurements_table as MT

    _, volume, segmentation = case
    assert MT.remeasure(volume, segmentation, resegmented=[]) is None
