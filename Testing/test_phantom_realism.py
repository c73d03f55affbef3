"""The training-data engine's realism: real-CT appearance of phantoms, CTs painted on real VerSe
label maps, and the appearance randomisation of training crops.

Ranges are those of ../shared/reference/real-ct.md and of the five real CTs measured for
SpineSegLib.phantom.intensities (body interiors 49-111 HU median, rims 244-355 HU median with a
90th percentile of 470-840 HU, soft-tissue noise 29-82 HU).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from SpineSegLib.phantom import PhantomConfig, generate_phantom
from SpineSegLib.phantom.from_labels import paint_ct_on_labels
from SpineSegLib.phantom.intensities import correlated_noise

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from spineseg_training.appearance import AppearanceConfig, random_hu_remap, randomise_appearance

MASKS = Path(__file__).resolve().parent / "data" / "real" / "verse_masks_only_no_ct" / "IndVertSeg_VerSe"


def arr(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(image)


def soft_tissue_noise(img: np.ndarray, bone: np.ndarray) -> float:
    """Noise sigma (HU) from the 3x3x3 high-pass of soft tissue away from bone (white-noise gain 1/1.12)."""
    soft = (img > -50) & (img < 120) & ~ndimage.binary_dilation(bone, iterations=3)
    high = img - ndimage.uniform_filter(img, 3)
    return float(high[soft].std() * 1.12)


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_real_appearance_body_interior_is_dark_textured_and_inside_real_ranges(seed):
    ph = generate_phantom(seed, PhantomConfig(region="lumbar", spacing=(1.0, 1.0, 1.0), appearance="real"))
    img, sub = arr(ph.image).astype(np.float32), arr(ph.subregion_labels)
    body = sub == 49
    core = ndimage.binary_erosion(body, iterations=3)
    shell = body & ~ndimage.binary_erosion(body, iterations=1)
    look = ph.meta["appearance"]
    # Interior: the drawn density class (20-350 HU), textured (a spread well above the noise alone).
    assert -50 <= np.median(img[core]) <= 400
    assert abs(np.median(img[core]) - np.mean(look["cancellous"])) < 40
    assert np.percentile(img[core], 90) - np.percentile(img[core], 10) > 60
    # Shell brighter than the interior, in the real rims' range.
    assert np.median(img[shell]) > np.median(img[core]) + 50
    assert 150 <= np.median(img[shell]) <= 900
    assert 10 <= soft_tissue_noise(img, arr(ph.vertebra_labels) > 0) <= 100


def test_real_appearance_leaves_the_anatomy_and_grid_of_a_seed_unchanged():
    classic = generate_phantom(8, PhantomConfig(region="lumbar", spacing=(2.0, 2.0, 2.0)))
    real = generate_phantom(8, PhantomConfig(region="lumbar", spacing=(2.0, 2.0, 2.0), appearance="real"))
    assert np.array_equal(arr(classic.vertebra_labels), arr(real.vertebra_labels))
    assert classic.image.GetOrigin() == real.image.GetOrigin()
    assert not np.array_equal(arr(classic.image), arr(real.image))


def test_tight_field_of_view_has_no_air_and_keeps_the_spine():
    wide = generate_phantom(9, PhantomConfig(region="lumbar", spacing=(2.0, 2.0, 2.0)))
    tight = generate_phantom(9, PhantomConfig(region="lumbar", spacing=(2.0, 2.0, 2.0), field="tight"))
    img = arr(tight.image)
    # No air around the body; what is left is lung beside T12/L1 (measured 1.7-7.8 % on seeds 9-11, wide 20-35 %).
    assert np.mean(img < -800) < min(0.1, np.mean(arr(wide.image) < -800) / 3)
    assert np.prod(tight.image.GetSize()) < 0.6 * np.prod(wide.image.GetSize())
    assert set(tight.body_centroids.labels) == set(wide.body_centroids.labels)
    assert tight.meta["fov"]["field"] == "tight"


@pytest.mark.parametrize("sigma_vox", [(0.0, 0.0, 0.0), (0.5, 0.5, 0.5), (1.5, 0.7, 0.7)])
def test_correlated_noise_has_unit_variance(sigma_vox):
    noise = correlated_noise(np.random.default_rng(0), (40, 64, 64), np.asarray(sigma_vox))
    assert abs(noise.std() - 1.0) < 0.05
    assert abs(noise.mean()) < 0.05


def test_painted_ct_keeps_the_real_mask_and_has_a_dark_textured_body():
    mask = sitk.ReadImage(str(MASKS / "sub-verse010_seg-vert_msk.nii.gz"))  # L1-L5, 1 mm
    painted = paint_ct_on_labels(mask, seed=1)
    lab, src = arr(painted.labels), np.rint(arr(mask)).astype(np.uint8)
    assert painted.labels.GetSpacing() == mask.GetSpacing()  # 1 mm: kept as it is
    assert np.array_equal(lab, src)
    img = arr(painted.image).astype(np.float32)
    core = ndimage.binary_erosion(lab > 0, iterations=3)
    rim = (lab > 0) & ~ndimage.binary_erosion(lab > 0)
    assert np.median(img[rim]) > np.median(img[core]) + 50
    assert -50 <= np.median(img[core]) <= 400
    assert painted.image.GetOrigin() == mask.GetOrigin()


def test_painted_ct_on_a_fine_mask_coarsens_it_with_ids_and_volumes_kept():
    mask = sitk.ReadImage(str(MASKS / "sub-gl017_seg-vert_msk.nii.gz"))  # C1-T4, 0.32 x 0.32 x 1.25 mm
    painted = paint_ct_on_labels(mask, seed=2, max_spacing_mm=0.8)
    src = np.rint(arr(mask)).astype(np.uint8)
    lab = arr(painted.labels)
    assert np.allclose(painted.labels.GetSpacing(), (0.8, 0.8, 1.25), atol=0.02)
    ids = [int(v) for v in np.unique(src) if v]
    assert [int(v) for v in np.unique(lab) if v] == ids
    v_src = np.bincount(src.ravel(), minlength=256)[ids] * np.prod(mask.GetSpacing())
    v_new = np.bincount(lab.ravel(), minlength=256)[ids] * np.prod(painted.labels.GetSpacing())
    # Tolerance: 5 % per vertebra (a 0.8 mm voxel layer on a C1 ring is about 4 % of its volume).
    assert np.all(np.abs(v_new / v_src - 1.0) < 0.05), v_new / v_src
    # The physical box is kept (first voxel edge and extent), so the painted CT overlays the mask.
    edge_src = np.asarray(mask.TransformContinuousIndexToPhysicalPoint((-0.5, -0.5, -0.5)))
    edge_new = np.asarray(painted.labels.TransformContinuousIndexToPhysicalPoint((-0.5, -0.5, -0.5)))
    assert np.abs(edge_src - edge_new).max() < 0.01


def test_hu_remap_is_monotone_and_keeps_the_ends():
    for seed in range(20):
        x, y = random_hu_remap(np.random.default_rng(seed), scale=2.0)
        assert np.all(np.diff(y) >= 0)
        assert y[0] == -1024.0 and y[-1] == 3071.0


def test_appearance_randomisation_keeps_tissue_order_and_is_off_without_probability():
    rng = np.random.default_rng(0)
    hu = np.repeat(np.array([-1000.0, -100.0, 40.0, 150.0, 600.0], np.float32), 8000).reshape(5, 40, 200)
    same = randomise_appearance(hu, (1.0, 1.0, 1.0), rng, AppearanceConfig(probability=0.0))
    assert same is hu
    changed = 0
    for _ in range(10):
        out = randomise_appearance(hu, (1.0, 1.0, 1.0), rng, AppearanceConfig(probability=1.0, noise_hu=0.0))
        medians = np.median(out.reshape(5, -1), axis=1)
        assert np.all(np.diff(medians) >= 0)
        changed += not np.allclose(medians, [-1000, -100, 40, 150, 600], atol=1.0)
    assert changed >= 8


def test_painted_dataset_is_a_training_set_with_the_real_body_centroids(tmp_path):
    from spineseg_training.data import find_cases
    from spineseg_training.label_data import paint_dataset
    from SpineSegLib.io import read_centroids, read_labelmap

    src = tmp_path / "masks"
    src.mkdir()
    for name in ("sub-verse010_seg-vert_msk.nii.gz", "sub-verse010_seg-subreg_ctd.json"):
        (src / name).write_bytes((MASKS / name).read_bytes())
    written = paint_dataset(src, tmp_path / "data", draws=2, progress=False)
    cases = find_cases(tmp_path / "data")
    assert [c.name for c in cases] == ["sub-verse010paint00", "sub-verse010paint01"]
    mask = read_labelmap(MASKS / "sub-verse010_seg-vert_msk.nii.gz")
    truth = read_centroids(MASKS / "sub-verse010_seg-subreg_ctd.json", reference=mask)
    got = read_centroids(written[0].centroids, reference=read_labelmap(written[0].vertebra_mask))
    assert got.labels == truth.labels
    assert np.abs(got.array() - truth.array()).max() < 1e-3
    a, b = (arr(sitk.ReadImage(str(c.image))) for c in cases)
    assert not np.array_equal(a, b)  # two appearances of one shape


SAMPLE = Path(__file__).resolve().parents[1] / "Resources" / "SampleData"


def test_real_case_import_gives_a_training_case_with_body_centroids(tmp_path):
    """A real CT and its mask become a VerSe-layout case whose centroid file holds the estimated body centres."""
    from spineseg_training.data import find_cases
    from spineseg_training.real_data import import_real_case
    from SpineSegLib.body_centroids import body_centroids
    from SpineSegLib.io import read_centroids, read_labelmap

    ct, msk = SAMPLE / "sub-verse005_ct.nii.gz", SAMPLE / "sub-verse005_seg-vert_msk.nii.gz"
    paths = import_real_case(ct, msk, tmp_path, "verse005")
    (case,) = find_cases(tmp_path)
    assert case.name == "sub-verse005"
    mask = read_labelmap(paths.vertebra_mask)
    assert np.array_equal(arr(mask), arr(read_labelmap(msk)))
    got = read_centroids(paths.centroids, reference=mask)
    want = body_centroids(mask)
    assert got.labels == want.labels == [20, 21, 22, 23, 24]
    assert np.abs(got.array() - want.array()).max() < 1e-2
    # Body centres sit anterior (LPS: smaller y) of the whole-vertebra centres.
    whole = {lab: np.argwhere(arr(mask) == lab).mean(0) for lab in got.labels}
    to_mm = mask.TransformContinuousIndexToPhysicalPoint
    assert all(got[lab][1] < to_mm(whole[lab][::-1].tolist())[1] for lab in whole)


def test_real_case_import_remaps_a_one_vertebra_mask_and_refuses_unknown_values(tmp_path):
    from spineseg_training.real_data import import_real_case, parse_remap
    from SpineSegLib.errors import InputError
    from SpineSegLib.io import read_centroids, read_labelmap

    mask = read_labelmap(SAMPLE / "sub-verse005_seg-vert_msk.nii.gz")
    one = sitk.Cast(mask == 22, sitk.sitkUInt8)  # L3 alone, stored as 1 (a TotalSegmentator single mask)
    sitk.WriteImage(one, str(tmp_path / "one.nii.gz"))
    ct = SAMPLE / "sub-verse005_ct.nii.gz"
    with pytest.raises(InputError, match="not VerSe label ids"):
        import_real_case(ct, tmp_path / "one.nii.gz", tmp_path / "a", "x", remap={1: 99})
    paths = import_real_case(ct, tmp_path / "one.nii.gz", tmp_path / "b", "x", remap=parse_remap(["1:22"]))
    assert read_centroids(paths.centroids, reference=read_labelmap(paths.vertebra_mask)).labels == [22]
    with pytest.raises(InputError, match="FILE_VALUE:VERSE_ID"):
        parse_remap(["1-22"])
