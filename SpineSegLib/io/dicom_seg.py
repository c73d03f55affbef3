"""DICOM Segmentation (SEG) output that references the source CT series, written with highdicom.

One segment per vertebra: its name, SNOMED CT type (T13 and L6: the generic vertebra code with their
region as anatomic region), the category "Anatomical Structure", and the algorithm (SpineSeg, its
version, the pipeline and the sha256 of the weights that made it). Frames follow the source series as
SpineSeg read it (the same series, sorted by position), so the SEG lines up with the CT in any viewer
and PACS. highdicom (and pydicom) load on first use: a plain NIfTI run does not need them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .. import __version__
from .. import labels as L
from ..errors import InputError, SpineSegError
from .atomic import atomic_path
from .images import _dicom_series

CATEGORY = ("123037004", "SCT", "Anatomical Structure")


def _highdicom():
    try:
        import highdicom
        import pydicom
    except ImportError:
        raise SpineSegError(
            "DICOM SEG output needs highdicom (pip install highdicom, or pip install 'spineseg[dicom]')"
        ) from None
    return highdicom, pydicom


def write_dicom_seg(
    labelmap: sitk.Image,
    series_folder: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    pipeline: str,
    weights_sha256: Mapping[str, str],
    series_description: str = "SpineSeg vertebrae",
    series_uid: str | None = None,
) -> Path | None:
    """Write ``labelmap`` (on the grid of the series in ``series_folder``) as a DICOM SEG; None if it is empty.

    The series is the one the run read (``series_uid``, else the folder's choice, as :func:`.images.read_image`).
    """
    hd, pydicom = _highdicom()
    from highdicom.sr import CodedConcept

    folder = Path(series_folder)
    names = _dicom_series(folder, series_uid)
    sources = [pydicom.dcmread(n) for n in names]
    arr = sitk.GetArrayFromImage(labelmap)
    rows, cols = int(sources[0].Rows), int(sources[0].Columns)
    if arr.shape != (len(sources), rows, cols):
        raise InputError(
            folder, f"its series ({len(sources)} x {rows} x {cols}) is not the label map's grid {arr.shape}"
        )
    coded = [int(v) for v in np.unique(arr) if v and _coded(int(v))]
    # Vertebrae, then the discs that have a SNOMED CT code (DICOM CID 7604); endplates and uncoded
    # discs have no code to write and are left out (the caller says so: ``uncoded_labels``).
    present = L.anatomical_order(v for v in coded if L.is_known(v)) + sorted(v for v in coded if not L.is_known(v))
    if not present:
        return None
    frames = np.zeros(arr.shape, dtype=np.uint8)
    algorithm = hd.AlgorithmIdentificationSequence(
        name="SpineSeg",
        version=__version__,
        family=CodedConcept("123109", "DCM", "Artificial Intelligence"),
        parameters={"pipeline": pipeline, **{f"{stage} weights sha256": sha for stage, sha in weights_sha256.items()}},
    )
    descriptions = []
    for number, label in enumerate(present, 1):
        frames[arr == label] = number
        info = L.row_of(label)
        region_code = getattr(info, "region_snomed", None)
        regions = [CodedConcept(region_code.value, "SCT", region_code.meaning)] if region_code else None
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=info.name,
                segmented_property_category=CodedConcept(*CATEGORY),
                segmented_property_type=CodedConcept(info.snomed.value, "SCT", info.snomed.meaning),
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                algorithm_identification=algorithm,
                tracking_uid=hd.UID(),
                tracking_id=f"{getattr(info, 'kind', 'vertebra')} {info.name}",
                anatomic_regions=regions,
            )
        )
    try:
        seg = _segmentation(hd, sources, frames, descriptions, pipeline, series_description)
    except ValueError as exc:  # highdicom's checks of the source series (e.g. no Frame of Reference UID)
        raise InputError(folder, f"its series cannot be referenced by a DICOM SEG: {exc}") from None
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        seg.save_as(str(tmp))
    return out_path


def uncoded_labels(labelmap: sitk.Image) -> list[int]:
    """Ids of ``labelmap`` a DICOM SEG leaves out: endplates, discs without a SNOMED CT code, unknown ids."""
    return [int(v) for v in np.unique(sitk.GetArrayViewFromImage(labelmap)) if v and not _coded(int(v))]


def _coded(label: int) -> bool:
    """Whether a DICOM SEG segment can be written for ``label``: a table row with a SNOMED CT code."""
    row = L.row_of(label)
    return row is not None and row.snomed is not None


def _segmentation(hd, sources, frames, descriptions, pipeline: str, series_description: str):
    return hd.seg.Segmentation(
        source_images=sources,
        pixel_array=frames,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=int(getattr(sources[0], "SeriesNumber", 0) or 0) + 1000,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="SpineSeg",
        manufacturer_model_name=f"SpineSeg {pipeline}",
        software_versions=__version__,
        device_serial_number="none",
        series_description=series_description,
    )


def read_dicom_seg_labels(
    seg_path: str | os.PathLike, series_folder: str | os.PathLike, series_uid: str | None = None
) -> np.ndarray:
    """The SEG as a label array (VerSe ids, discs 100+X) [k, j, i] on the series' grid (frames by source SOP UID)."""
    hd, pydicom = _highdicom()
    seg = hd.seg.segread(str(seg_path))
    names = _dicom_series(Path(series_folder), series_uid)
    uids = [str(pydicom.dcmread(n, stop_before_pixels=True).SOPInstanceUID) for n in names]
    numbers = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, combine_segments=True)
    lut = np.zeros(int(numbers.max()) + 1 if numbers.size else 1, dtype=np.uint16)
    for d in seg.SegmentSequence:
        lut[int(d.SegmentNumber)] = L.any_id_of(str(d.SegmentLabel))
    return lut[numbers]
