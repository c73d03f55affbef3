"""DICOM SEG output: ``spineseg run DICOM_DIR --dicom-seg`` read back with highdicom, voxel by voxel.

The synthetic lumbar CT of :mod:`slicer_fixtures` is written as a DICOM series (slices in shuffled file
order, an oblique-free LPS geometry) and run with the tiny hand-set models; the SEG must reference that
series, name each vertebra with its SNOMED CT code and the algorithm with the weights' sha256, and equal
the NIfTI label map of the same run on every voxel.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

hd = pytest.importorskip("highdicom", reason="DICOM SEG output needs highdicom")
import pydicom  # noqa: E402
from slicer_fixtures import synthetic_lumbar_ct, write_tiny_resources  # noqa: E402

from SpineSegLib import labels as L  # noqa: E402
from SpineSegLib.cli import main  # noqa: E402
from SpineSegLib.io.dicom_seg import read_dicom_seg_labels  # noqa: E402

STUDY, SERIES = "1.2.826.0.1.3680043.10.1", "1.2.826.0.1.3680043.10.1.2"


def write_series(image: sitk.Image, folder: Path) -> None:
    folder.mkdir(parents=True)
    arr = sitk.GetArrayFromImage(image).astype(np.int16)
    sx, sy, sz = image.GetSpacing()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    order = np.random.default_rng(0).permutation(arr.shape[0])
    for n, k in enumerate(order):
        sl = sitk.GetImageFromArray(arr[k])
        sl.SetSpacing((sx, sy))
        x, y, z = image.TransformIndexToPhysicalPoint((0, 0, int(k)))
        tags = {
            "0008|0016": "1.2.840.10008.5.1.4.1.1.2",
            "0008|0018": f"{SERIES}.{k + 1}",
            "0008|0060": "CT",
            "0010|0010": "Phantom^Lumbar",
            "0010|0020": "SPINESEG-TEST",
            "0020|000d": STUDY,
            "0020|000e": SERIES,
            "0020|0052": f"{STUDY}.9",
            "0020|0011": "3",
            "0020|0013": str(k + 1),
            "0020|0032": f"{x}\\{y}\\{z}",
            "0020|0037": "1\\0\\0\\0\\1\\0",
            "0018|0050": str(sz),
            "0028|1052": "0",
            "0028|1053": "1",
        }
        for tag, value in tags.items():
            sl.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice_{n:03d}.dcm"))
        writer.Execute(sl)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("dicomseg")
    resources = write_tiny_resources(root)
    series = root / "sub-lumbar"
    write_series(synthetic_lumbar_ct().image, series)
    out = root / "out"
    import os

    os.environ["SPINESEG_RESOURCES"] = str(resources)
    try:
        rc = main(["run", str(series), "-o", str(out), "--device", "cpu", "--progress", "none", "--dicom-seg"])
    finally:
        del os.environ["SPINESEG_RESOURCES"]
    return dict(rc=rc, series=series, out=out, resources=resources)


def test_seg_equals_the_nifti_label_map_and_references_the_series(run):
    assert run["rc"] == 0
    seg_path = run["out"] / "sub-lumbar_seg-vert_msk.dcm"
    nifti = sitk.GetArrayFromImage(sitk.ReadImage(str(run["out"] / "sub-lumbar_seg-vert_msk.nii.gz")))
    back = read_dicom_seg_labels(seg_path, run["series"])
    assert set(np.unique(nifti).tolist()) == {0, 20, 21, 22, 23, 24}
    np.testing.assert_array_equal(back, nifti)
    seg = hd.seg.segread(str(seg_path))
    assert seg.Modality == "SEG" and seg.StudyInstanceUID == STUDY
    referenced = {str(s.SeriesInstanceUID) for s in seg.ReferencedSeriesSequence}
    assert referenced == {SERIES}
    timings = json.loads((run["out"] / "sub-lumbar_timings.json").read_text())
    assert "sub-lumbar_seg-vert_msk.dcm" in timings["outputs"]


def test_segments_carry_names_snomed_codes_and_the_weights(run):
    seg = pydicom.dcmread(str(run["out"] / "sub-lumbar_seg-vert_msk.dcm"))
    manifest = json.loads((run["resources"] / "models" / "manifest.json").read_text())
    shas = {s: e["sha256"] for s, e in manifest["pipelines"]["ct-full-spine"]["stages"].items()}
    names = []
    for d in seg.SegmentSequence:
        info = L.get(L.id_of(d.SegmentLabel))
        names.append(d.SegmentLabel)
        code = d.SegmentedPropertyTypeCodeSequence[0]
        assert (code.CodeValue, code.CodingSchemeDesignator) == (info.snomed.value, "SCT")
        assert d.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "123037004"
        assert d.SegmentAlgorithmType == "AUTOMATIC" and d.SegmentAlgorithmName == "SpineSeg"
        params = str(d.SegmentationAlgorithmIdentificationSequence[0].AlgorithmParameters)
        assert all(sha in params for sha in shas.values()) and "ct-full-spine" in params
    assert names == ["L1", "L2", "L3", "L4", "L5"]


def test_a_series_without_frame_of_reference_is_one_clear_error(tmp_path, capsys, monkeypatch):
    from SpineSegLib.io.dicom_seg import write_dicom_seg

    series = tmp_path / "series"
    write_series(synthetic_lumbar_ct().image, series)
    for f in series.iterdir():
        ds = pydicom.dcmread(f)
        del ds.FrameOfReferenceUID
        ds.save_as(f)
    labels = sitk.Image(synthetic_lumbar_ct().image.GetSize(), sitk.sitkUInt8)
    labels[5, 5, 5] = 20
    from SpineSegLib.errors import InputError

    with pytest.raises(InputError, match="cannot be referenced by a DICOM SEG.*Frame Of Reference"):
        write_dicom_seg(labels, series, tmp_path / "x.dcm", pipeline="p", weights_sha256={})
    assert not (tmp_path / "x.dcm").exists()


def test_dicom_seg_is_refused_for_a_file_input(tmp_path, capsys):
    path = tmp_path / "ct.nii.gz"
    sitk.WriteImage(synthetic_lumbar_ct().image, str(path))
    rc = main(["run", str(path), "-o", str(tmp_path / "out"), "--dicom-seg"])
    assert rc == 2 and "--dicom-seg needs DICOM folder inputs" in capsys.readouterr().err


def test_discs_with_a_snomed_code_become_segments_and_endplates_are_left_out_by_name(tmp_path):
    """An MR-style instance map (vertebrae, discs 100+X, endplates 200+X) written as a DICOM SEG."""
    from SpineSegLib.io.dicom_seg import uncoded_labels, write_dicom_seg

    series = tmp_path / "series"
    image = synthetic_lumbar_ct().image
    write_series(image, series)
    arr = np.zeros(sitk.GetArrayViewFromImage(image).shape, np.uint16)
    arr[2:6, 10:20, 10:20] = 20  # L1
    arr[6:8, 10:20, 10:20] = 120  # L1/L2 disc (SNOMED 80064006, DICOM CID 7604)
    arr[8:10, 10:20, 10:20] = 221  # L2 endplate: no code
    arr[10:12, 10:20, 10:20] = 125  # L6/S1 disc: not in CID 7604
    labels = sitk.GetImageFromArray(arr)
    labels.CopyInformation(image)
    assert uncoded_labels(labels) == [125, 221]
    path = write_dicom_seg(labels, series, tmp_path / "x.dcm", pipeline="mr-t2w", weights_sha256={})
    seg = pydicom.dcmread(str(path))
    got = {d.SegmentLabel: d.SegmentedPropertyTypeCodeSequence[0].CodeValue for d in seg.SegmentSequence}
    assert got == {"L1": L.get(20).snomed.value, "L1/L2 disc": "80064006"}
    back = read_dicom_seg_labels(path, series)
    np.testing.assert_array_equal(back, np.where(np.isin(arr, (20, 120)), arr, 0))


def test_the_measurement_report_references_each_segment_with_the_runs_measurements(run):
    """TID 1500: one volumetric group per vertebra, its SEG segment referenced, the values of the JSON."""
    from SpineSegLib.io.dicom_sr import read_measurement_report

    sr_path = run["out"] / "sub-lumbar_measurements.dcm"
    timings = json.loads((run["out"] / "sub-lumbar_timings.json").read_text())
    assert sr_path.name in timings["outputs"]
    sr = hd.sr.srread(str(sr_path))
    assert sr.Modality == "SR" and sr.StudyInstanceUID == STUDY
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    template = sr.ContentTemplateSequence[0]
    assert (template.MappingResource, template.TemplateIdentifier) == ("DCMR", "1500")
    report = read_measurement_report(sr_path)
    measured = json.loads((run["out"] / "sub-lumbar_measurements.json").read_text())["vertebrae"]
    seg = pydicom.dcmread(str(run["out"] / "sub-lumbar_seg-vert_msk.dcm"))
    segment_of = {d.SegmentLabel: int(d.SegmentNumber) for d in seg.SegmentSequence}
    assert sorted(report) == sorted(v["name"] for v in measured) == sorted(segment_of)
    for v in measured:
        got = report[v["name"]]
        assert got["segment_number"] == segment_of[v["name"]]
        for field in ("volume_cm3", "height_anterior_mm", "height_middle_mm", "height_posterior_mm", "core_hu_mean"):
            if v[field] is None:
                assert field not in got
            else:
                assert got[field] == pytest.approx(v[field], rel=1e-6), (v["name"], field)
    # the SR's evidence is the SEG and the CT series it was made on
    evidence = {
        str(i.ReferencedSOPInstanceUID)
        for s in sr.CurrentRequestedProcedureEvidenceSequence
        for r in s.ReferencedSeriesSequence
        for i in r.ReferencedSOPSequence
    }
    assert str(seg.SOPInstanceUID) in evidence and f"{SERIES}.1" in evidence
