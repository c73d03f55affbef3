"""The per-vertebra measurements as a DICOM Structured Report (TID 1500 Measurement Report), with highdicom.

Each vertebra of the DICOM SEG gets one volumetric measurement group (TID 1411) that references its
segment and names the vertebra as finding site (its SNOMED CT code): volume, the anterior, middle and
posterior body heights, the wedge, biconcavity and crush ratios, the height loss with its Genant grade,
and the mean attenuation of the trabecular core (CT in Hounsfield units only). Standard codes where
DICOM/SNOMED CT has one (volume, attenuation coefficient with "mean"); the vertebral body heights, ratios
and the Genant grade have none, so they carry codes of SpineSeg's private scheme ``99SPINESEG`` (DICOM
PS3.16 8.2: designators beginning "99" are private), with their meaning spelt out. The report is an
algorithm's output (observer: the SpineSeg device), not verified by a reader (not final).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from .. import __version__
from .. import labels as L
from ..measurements import Measurements
from .atomic import atomic_path
from .dicom_seg import _highdicom
from .images import _dicom_series

PRIVATE_SCHEME = "99SPINESEG"
#: measurement field -> (code value, scheme, meaning, UCUM unit value, unit meaning)
CODES = {
    "volume_cm3": ("118565006", "SCT", "Volume", "cm3", "cubic centimeter"),
    "height_anterior_mm": ("HA", PRIVATE_SCHEME, "Anterior vertebral body height", "mm", "millimeter"),
    "height_middle_mm": ("HM", PRIVATE_SCHEME, "Middle vertebral body height", "mm", "millimeter"),
    "height_posterior_mm": ("HP", PRIVATE_SCHEME, "Posterior vertebral body height", "mm", "millimeter"),
    "wedge_ratio": ("WEDGE", PRIVATE_SCHEME, "Wedge ratio (anterior / posterior height)", "1", "no units"),
    "biconcavity_ratio": ("BICONC", PRIVATE_SCHEME, "Biconcavity ratio (middle / posterior height)", "1", "no units"),
    "crush_ratio": ("CRUSH", PRIVATE_SCHEME, "Crush ratio (posterior height / neighbours')", "1", "no units"),
    "height_loss": ("HLOSS", PRIVATE_SCHEME, "Vertebral body height loss", "1", "no units"),
    "genant_grade": ("GENANT", PRIVATE_SCHEME, "Genant semi-quantitative fracture grade", "{grade}", "grade"),
    "core_hu_mean": ("112031", "DCM", "Attenuation Coefficient", "[hnsf'U]", "Hounsfield unit"),
}
MEAN = ("373098007", "SCT", "Mean")
TRABECULAR_CORE = ("CORE", PRIVATE_SCHEME, "Trabecular core of the vertebral body")
PROCEDURE = ("363679005", "SCT", "Imaging procedure")


def write_measurement_report(
    seg_path: str | os.PathLike,
    measurements: Measurements,
    series_folder: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    pipeline: str,
    series_uid: str | None = None,
) -> Path | None:
    """Write the TID 1500 report of ``measurements`` for the vertebrae of the SEG at ``seg_path``.

    ``series_folder``/``series_uid``: the series the SEG was made on (its evidence). None when no vertebra
    of ``measurements`` has a segment in the SEG.
    """
    hd, pydicom = _highdicom()
    from highdicom.sr import CodedConcept

    seg = hd.seg.segread(str(seg_path))
    numbers = {str(d.SegmentLabel): int(d.SegmentNumber) for d in seg.SegmentSequence}
    sources = [pydicom.dcmread(n, stop_before_pixels=True) for n in _dicom_series(Path(series_folder), series_uid)]

    def code(value, scheme, meaning):
        return CodedConcept(value, scheme, meaning)

    groups = []
    for v in measurements.vertebrae:
        number = numbers.get(v.name)
        row = L.row_of(v.label)
        if number is None or row is None or row.snomed is None:
            continue
        site = hd.sr.FindingSite(code(row.snomed.value, "SCT", row.snomed.meaning))
        items = []
        for field, (value, scheme, meaning, unit, unit_meaning) in CODES.items():
            x = getattr(v, field)
            if x is None or (isinstance(x, float) and not math.isfinite(x)):
                continue
            core = field == "core_hu_mean"
            items.append(
                hd.sr.Measurement(
                    name=code(value, scheme, meaning),
                    value=float(x),
                    unit=code(unit, "UCUM", unit_meaning),
                    derivation=code(*MEAN) if core else None,
                    finding_sites=[hd.sr.FindingSite(code(*TRABECULAR_CORE))] if core else None,
                )
            )
        groups.append(
            hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"vertebra {v.name}"),
                referenced_segment=hd.sr.ReferencedSegment.from_segmentation(seg, number),
                finding_type=code(row.snomed.value, "SCT", row.snomed.meaning),
                finding_sites=[site],
                measurements=items,
            )
        )
    if not groups:
        return None
    observer = hd.sr.ObserverContext(
        observer_type=code("121007", "DCM", "Device"),
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name="SpineSeg", manufacturer_name="SpineSeg", model_name=f"SpineSeg {pipeline}"
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=code(*PROCEDURE),
        imaging_measurements=groups,
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=[seg, *sources],
        content=report,
        series_instance_uid=hd.UID(),
        series_number=int(getattr(seg, "SeriesNumber", 0) or 0) + 1,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="SpineSeg",
        series_description=f"SpineSeg vertebral measurements ({pipeline}, {__version__})",
    )
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        sr.save_as(str(tmp))
    return out_path


def read_measurement_report(sr_path: str | os.PathLike) -> dict[str, dict[str, float]]:
    """vertebra name -> {measurement field: value} of a report written by :func:`write_measurement_report`."""
    hd, _ = _highdicom()
    sr = hd.sr.srread(str(sr_path))
    by_code = {(c[0], c[1]): field for field, c in CODES.items()}
    out: dict[str, dict[str, float]] = {}
    for group in sr.content.get_volumetric_roi_measurement_groups():
        name = str(group.tracking_identifier).removeprefix("vertebra ")
        values = {}
        for m in group.get_measurements():
            field = by_code.get((m.name.value, m.name.scheme_designator))
            if field is not None:
                values[field] = float(m.value)
        values["segment_number"] = float(group.referenced_segment.referenced_segment_numbers[0])
        out[name] = values
    return out
