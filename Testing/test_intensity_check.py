"""The CT intensity check on real images: CT in Hounsfield units passes, MR and CT in other units get the warning.

The check judges CT by its tissues (a soft-tissue peak, fat or air below 0, a bone tail), not by air:
the VerSe 2019 case 005 crop holds almost no air and is CT all the same.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from SpineSegLib.demo import sample_dir
from SpineSegLib.pipeline.checks import ct_intensity_warning

REPO = Path(__file__).resolve().parent.parent
NOT_CT = "do not look like CT"


@pytest.fixture(scope="module")
def verse005() -> sitk.Image:
    return sitk.ReadImage(str(sample_dir() / "sub-verse005_ct.nii.gz"))


def stat(message: str, name: str) -> float:
    """A statistic the warning names, e.g. ``stat(msg, "tissue peak")``."""
    match = re.search(rf"{name} (-?\d+)", message)
    assert match, message
    return float(match.group(1))


def as_uint8(image: sitk.Image) -> sitk.Image:
    """An MR as many archives store it: rescaled to 0..255, 8 bits."""
    return sitk.Cast(sitk.RescaleIntensity(image, 0, 255), sitk.sitkUInt8)


def test_a_tight_ct_crop_without_air_is_ct(verse005):
    arr = sitk.GetArrayViewFromImage(verse005)
    assert np.percentile(arr, 1) > -500  # the old rule's air test would have warned
    assert ct_intensity_warning(verse005) is None


@pytest.mark.parametrize(
    "path",
    [
        "tptbox_spine_crops/sample_ct/sub-ct_label-22_ct.nii.gz",  # a crop around L3, little air
        "totalseg_example_abdomen_ct/example_ct.nii.gz",  # a wide field of view, one third air, a fat peak
    ],
)
def test_other_real_cts_are_ct(real_data, path):
    assert ct_intensity_warning(sitk.ReadImage(str(real_data / path))) is None


def test_the_bundled_sample_ct_is_ct():
    assert ct_intensity_warning(sitk.ReadImage(str(REPO / "Resources" / "SampleData" / "sub-demo_ct.nii.gz"))) is None


def test_padding_outside_the_field_of_view_is_not_tissue(verse005):
    arr = sitk.GetArrayFromImage(verse005)
    arr[:, :, :20] = -3024  # a scanner's fill value outside the reconstructed circle
    padded = sitk.GetImageFromArray(arr)
    padded.CopyInformation(verse005)
    assert ct_intensity_warning(padded) is None


@pytest.mark.parametrize(
    "path", ["tptbox_spine_crops/sample_mri/sub-mri_label-6_T2w.nii.gz", "sct_t2_cervical_mr/t2.nii.gz"]
)
def test_an_8_bit_mr_gets_the_warning(real_data, path):
    mr = sitk.ReadImage(str(real_data / path))
    for image in (mr, as_uint8(mr)):
        msg = ct_intensity_warning(image)
        assert msg is not None and NOT_CT in msg
        assert "no fat" in msg  # no negative tail at all
        assert stat(msg, "1st percentile") >= 0 and stat(msg, "99.5th") <= np.max(sitk.GetArrayViewFromImage(image))


def test_an_8_bit_image_never_reaches_the_bone_range(real_data):
    """Even with a negative tail, 8-bit data stays below the bone threshold (two rules reject it)."""
    mr = as_uint8(sitk.ReadImage(str(real_data / "sct_t2_cervical_mr" / "t2.nii.gz")))
    arr = sitk.GetArrayFromImage(mr).astype(np.int16)
    arr[:, :, :3] = -100  # a fat-like band
    msg = ct_intensity_warning(sitk.GetImageFromArray(arr))
    assert msg is not None and "bone range" in msg and stat(msg, "body 99.5th") <= 255


def test_ct_without_its_rescale_intercept_gets_the_warning(verse005):
    """Stored values of a CT whose intercept -1024 was lost: air at 0, water at +1024."""
    raw = sitk.Cast(verse005, sitk.sitkInt32) + 1024
    msg = ct_intensity_warning(raw)
    assert msg is not None and NOT_CT in msg and "tissue peak is not in" in msg
    assert 1024 - 200 <= stat(msg, "tissue peak") <= 1024 + 200  # the soft-tissue peak, shifted by the intercept
    # Negative padding does not rescue it.
    arr = sitk.GetArrayFromImage(raw)
    arr[:, :, :20] = -1000
    assert ct_intensity_warning(sitk.GetImageFromArray(arr)) is not None


def test_ct_scaled_to_the_unit_range_gets_the_warning(verse005):
    unit = sitk.RescaleIntensity(sitk.Cast(verse005, sitk.sitkFloat32), 0.0, 1.0)
    msg = ct_intensity_warning(unit)
    assert msg is not None and NOT_CT in msg
    assert stat(msg, "1st percentile") == 0 and stat(msg, "99.5th") <= 1


def test_an_image_of_air_only_has_no_body():
    air = sitk.Image(32, 32, 32, sitk.sitkInt16) - 1000
    msg = ct_intensity_warning(air)
    assert msg is not None and "no body" in msg and "nan" not in msg
