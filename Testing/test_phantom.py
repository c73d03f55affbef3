"""Synthetic spine phantoms: determinism, label/centroid consistency, anatomy, contrast, grids.

Every check measures the generated images (labels, HU, MR values, geometry) against an
anatomical or geometric fact. The vertebra frames in ``meta`` are used only to express
measurements in a vertebra's own axes (left, posterior, cranial); what is checked is
measured in the images.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from SpineSegLib import labels as L
from SpineSegLib.geometry import Grid, orientation_code
from SpineSegLib.labelmap import label_centroids, label_ids
from SpineSegLib.phantom import PhantomConfig, PhantomConfigError, generate_phantom

CERVICAL = list(range(1, 8))
THORACIC = list(range(8, 20))
LUMBAR = list(range(20, 25))


def arr(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(image)


def local(ph, name: str, points: np.ndarray) -> np.ndarray:
    """LPS points in the level's own frame (x left, y posterior, z cranial), from the phantom's meta."""
    fr = ph.meta["frames"][name]
    axes = np.asarray(fr["axes"]).T  # columns = local axes in LPS
    return (np.atleast_2d(points) - np.asarray(fr["origin"])) @ axes


def voxel_points(ph, mask: np.ndarray) -> np.ndarray:
    """LPS centres of the voxels of a [k, j, i] mask."""
    kji = np.argwhere(mask)
    return Grid.of(ph.image).index_to_physical(kji[:, ::-1].astype(float))


def label_at(image: sitk.Image, point) -> int:
    idx = np.rint(Grid.of(image).physical_to_index(point)[0]).astype(int)
    return int(arr(image)[idx[2], idx[1], idx[0]])


@pytest.fixture(scope="module")
def full_ct():
    return generate_phantom(11, PhantomConfig(region="full", spacing=(1.5, 1.5, 1.5)))


@pytest.fixture(scope="module")
def lumbar_ct():
    return generate_phantom(5, PhantomConfig(region="lumbar"))


@pytest.fixture(scope="module")
def lumbar_mr():
    return generate_phantom(
        5, PhantomConfig(region="lumbar", modality="mr", spacing=(0.8, 0.8, 3.0), orientation="PIR")
    )


# ----------------------------------------------------------------------------------------
# Determinism and the public contract


def test_same_seed_gives_identical_arrays_and_other_seed_differs():
    cfg = PhantomConfig(region="random", spacing=(3.0, 3.0, 3.0), orientation="random", max_rotation_deg=20)
    a, b = generate_phantom(3, cfg), generate_phantom(3, cfg)
    c = generate_phantom(4, cfg)
    for name in ("image", "vertebra_labels", "subregion_labels"):
        assert np.array_equal(arr(getattr(a, name)), arr(getattr(b, name)))
        assert Grid.of(getattr(a, name)) == Grid.of(getattr(b, name))
    assert a.body_centroids == b.body_centroids and a.meta == b.meta
    assert a.image.GetSize() != c.image.GetSize() or not np.array_equal(arr(a.image), arr(c.image))
    assert a.body_centroids != c.body_centroids


def test_images_share_one_grid_and_have_the_documented_types(full_ct, lumbar_mr):
    for ph, pixel in ((full_ct, sitk.sitkInt16), (lumbar_mr, sitk.sitkUInt16)):
        g = Grid.of(ph.image)
        assert g.same_as(Grid.of(ph.vertebra_labels), tol=0) and g.same_as(Grid.of(ph.subregion_labels), tol=0)
        assert ph.image.GetPixelID() == pixel
        assert ph.vertebra_labels.GetPixelID() == sitk.sitkUInt8 == ph.subregion_labels.GetPixelID()
    assert orientation_code(lumbar_mr.image) == "PIR"
    assert np.allclose(lumbar_mr.image.GetSpacing(), (0.8, 0.8, 3.0))


def test_meta_is_json_and_subregions_use_the_documented_ids(full_ct, lumbar_ct):
    json.loads(json.dumps(full_ct.meta))
    assert full_ct.meta["labelled"] == full_ct.body_centroids.labels
    documented = {0, 26, 41, 42, 43, 44, 45, 46, 47, 48, 49, 51, 60, 61, 100}
    sub = arr(full_ct.subregion_labels)
    present = set(np.unique(sub).tolist())
    assert present <= documented
    assert {26, 41, 42, 43, 44, 45, 46, 47, 48, 49, 51, 60, 61, 100} <= present
    # Subregions live on vertebrae (and discs/canal/cord between them), never on unlabelled bone.
    lab = arr(full_ct.vertebra_labels)
    bone_sub = np.isin(sub, [26, 41, 42, 43, 44, 45, 46, 47, 48, 49, 51])
    assert np.array_equal(bone_sub, lab > 0)
    assert not np.any(np.isin(arr(lumbar_ct.subregion_labels)[arr(lumbar_ct.vertebra_labels) > 0], [60, 61, 100]))


def test_bad_options_are_one_clear_error():
    with pytest.raises(PhantomConfigError, match="modality"):
        PhantomConfig(modality="pet")
    with pytest.raises(PhantomConfigError, match="orientation"):
        PhantomConfig(orientation="LPX")
    with pytest.raises(PhantomConfigError, match="orientation"):
        PhantomConfig(orientation="LLS")
    with pytest.raises(PhantomConfigError, match="spacing"):
        PhantomConfig(spacing=(1.0, -1.0, 1.0))
    with pytest.raises(PhantomConfigError, match="seed"):
        generate_phantom(-1)


# ----------------------------------------------------------------------------------------
# Labels and centroids


@pytest.mark.parametrize("fixture", ["full_ct", "lumbar_ct", "lumbar_mr"])
def test_labels_and_centroid_sets_agree_and_run_in_anatomical_order(fixture, request):
    ph = request.getfixturevalue(fixture)
    present = label_ids(arr(ph.vertebra_labels))
    assert sorted(ph.body_centroids.labels) == present == sorted(ph.vertebra_centroids.labels)
    order = L.anatomical_order(present)
    sequence = ph.meta["labels"]  # this subject's levels, C1 to sacrum
    start = sequence.index(order[0])
    assert order == sequence[start : start + len(order)]
    # Cranial to caudal: body centres go down.
    z = ph.body_centroids.array(order)[:, 2]
    assert np.all(np.diff(z) < 0)


def test_a_level_is_labelled_exactly_when_its_body_centre_is_in_the_image():
    for seed in range(4):
        ph = generate_phantom(seed, PhantomConfig(region="random", spacing=(2.5, 2.5, 2.5), max_rotation_deg=15))
        grid = Grid.of(ph.image)
        present = set(label_ids(arr(ph.vertebra_labels)))
        assert len(present) >= 3
        for fr in ph.meta["frames"].values():
            inside = bool(grid.contains(fr["body_centre"])[0])
            assert inside == (fr["label"] in present), (seed, fr["label"])


@pytest.mark.parametrize("fixture", ["full_ct", "lumbar_ct"])
def test_body_centroid_lies_in_its_own_body(fixture, request):
    ph = request.getfixturevalue(fixture)
    for lab, p in ph.body_centroids.items():
        if lab == 1:
            continue  # the atlas has no body: see the next test
        assert label_at(ph.vertebra_labels, p) == lab
        assert label_at(ph.subregion_labels, p) == (26 if lab == 26 else 49)


def test_atlas_centre_lies_between_its_lateral_masses_in_the_dens(full_ct):
    c1 = full_ct.body_centroids[1]
    assert label_at(full_ct.vertebra_labels, c1) == 2 and label_at(full_ct.subregion_labels, c1) == 51
    # Atlas bone is on both sides of it (the lateral masses), within 10-25 mm.
    pts = local(full_ct, "C1", voxel_points(full_ct, arr(full_ct.vertebra_labels) == 1))
    near = np.abs(pts[:, 2]) < 5
    assert np.any(near & (pts[:, 0] > 8) & (pts[:, 0] < 25)) and np.any(near & (pts[:, 0] < -8) & (pts[:, 0] > -25))


def test_vertebra_centroids_are_the_centres_of_mass_of_the_labels(full_ct):
    again = label_centroids(full_ct.vertebra_labels)
    assert again.labels == full_ct.vertebra_centroids.labels
    assert np.allclose(again.array(), full_ct.vertebra_centroids.array(), atol=1e-6)


@pytest.mark.parametrize("fixture", ["full_ct", "lumbar_ct"])
def test_body_centre_is_anterior_of_the_whole_vertebra_centre(fixture, request):
    ph = request.getfixturevalue(fixture)
    for lab in ph.body_centroids:
        name = L.name_of(lab)
        body = local(ph, name, ph.body_centroids[lab])[0]
        whole = local(ph, name, ph.vertebra_centroids[lab])[0]
        assert whole[1] - body[1] > 2.0, name  # +y = posterior in the vertebra's frame


def test_neighbour_distances_are_plausible_for_many_subjects():
    for seed in range(6):
        cfg = PhantomConfig(spacing=(4.0, 4.0, 4.0), transitional="random", t13_probability=0.5, l6_probability=0.5)
        ph = generate_phantom(seed, cfg)
        pts = ph.body_centroids.array()
        d = np.linalg.norm(np.diff(pts, axis=0), axis=1)
        assert np.all((d > 12.5) & (d < 50.0)), (seed, d.round(1))


# ----------------------------------------------------------------------------------------
# Anatomy


@pytest.mark.parametrize("fixture", ["full_ct", "lumbar_mr"])
def test_anatomy_faces_the_right_way_in_lps(fixture, request):
    """Spinous processes point posterior (+y), left transverse processes are at +x, the dens is above C2."""
    ph = request.getfixturevalue(fixture)
    lab, sub = arr(ph.vertebra_labels), arr(ph.subregion_labels)
    key = lab.astype(np.int32) * 256 + sub
    parts = (49, 42, 43, 44, 51)
    ids = label_ids(lab)
    present = set(np.unique(key).tolist())
    pairs = [(v, p) for v in ids for p in parts if v * 256 + p in present]
    kji = np.asarray(ndimage.center_of_mass(np.ones(key.shape, np.uint8), key, [v * 256 + p for v, p in pairs]))
    grid = Grid.of(ph.image)
    com = {pair: grid.index_to_physical(c[::-1])[0] for pair, c in zip(pairs, kji)}
    checked = 0
    for vid in ids:
        body, spinous, left, right = (com.get((vid, p)) for p in (49, 42, 43, 44))
        if body is not None and spinous is not None:
            assert spinous[1] - body[1] > 15.0, vid
            checked += 1
        if left is not None and right is not None:
            assert left[0] - right[0] > 20.0, vid
        if vid == 2:
            assert com[2, 51][2] > body[2] + 10.0
    assert checked >= 5


def test_vertebrae_grow_from_cervical_to_lumbar(full_ct):
    lab = arr(full_ct.vertebra_labels)
    vol = np.bincount(lab.ravel(), minlength=30) * np.prod(full_ct.image.GetSpacing()) / 1000.0  # cm^3
    c, t, lu = vol[3:8].mean(), vol[THORACIC].mean(), vol[LUMBAR].mean()
    assert c < t < lu
    assert 5 < c < 25 and 15 < t < 50 and 30 < lu < 90  # VerSe masks: ~13-28, 24-41, 38-66 cm^3
    # Body heights grow too: the body subregion's extent along each level's axis.
    heights = {}
    sub = arr(full_ct.subregion_labels)
    for name, ids in (("C5", 5), ("T6", 13), ("L3", 22)):
        pts = local(full_ct, name, voxel_points(full_ct, (lab == ids) & (sub == 49)))
        heights[name] = np.ptp(pts[np.hypot(pts[:, 0], pts[:, 1]) < 6, 2])
    assert heights["C5"] < heights["T6"] < heights["L3"]


def test_regions_contain_their_vertebrae():
    expect = {"cervical": CERVICAL, "thoracic": THORACIC, "lumbar": [*LUMBAR, 26]}
    for region, wanted in expect.items():
        ph = generate_phantom(21, PhantomConfig(region=region, spacing=(2.0, 2.0, 2.0)))
        present = set(label_ids(arr(ph.vertebra_labels)))
        assert set(wanted) <= present, region
        assert len(present - set(wanted)) <= 2  # at most a neighbour at each end


@pytest.mark.parametrize(("kind", "label", "before", "after"), [("t13", 28, 19, 20), ("l6", 25, 24, 26)])
def test_transitional_vertebra_sits_between_its_neighbours(kind, label, before, after):
    ph = generate_phantom(8, PhantomConfig(region="full", transitional=kind, spacing=(3.0, 3.0, 3.0)))
    present = label_ids(arr(ph.vertebra_labels))
    assert label in present and before in present and after in present
    z = {lab: ph.body_centroids[lab][2] for lab in (before, label, after)}
    assert z[before] > z[label] > z[after]
    assert ph.meta["transitional"][kind]


def _rib_voxels(ph, image, labels, name):
    """Bright unlabelled voxels beside a level (where ribs run), in its own frame."""
    pts = local(ph, name, voxel_points(ph, (image > 350) & (labels == 0)))
    ax = np.abs(pts[:, 0])
    return np.count_nonzero((np.abs(pts[:, 2]) < 10) & (ax > 45) & (ax < 85) & (pts[:, 1] > -20) & (pts[:, 1] < 45))


def test_ribs_on_thoracic_levels_including_t13_none_on_lumbar():
    ph = generate_phantom(8, PhantomConfig(region="thoracic", transitional="t13", spacing=(1.5, 1.5, 1.5), noise=0))
    image, labels = arr(ph.image), arr(ph.vertebra_labels)
    for name in ("T4", "T8", "T12", "T13"):
        assert _rib_voxels(ph, image, labels, name) > 30, name
    lum = generate_phantom(8, PhantomConfig(region="lumbar", transitional="t13", spacing=(1.5, 1.5, 1.5), noise=0))
    image, labels = arr(lum.image), arr(lum.vertebra_labels)
    for name in ("L2", "L3"):
        assert _rib_voxels(lum, image, labels, name) == 0, name


def test_scoliosis_bends_the_spine_out_of_its_sagittal_plane():
    def out_of_plane(ph):
        pts = ph.body_centroids.array()
        centred = pts - pts.mean(axis=0)
        return np.linalg.svd(centred, full_matrices=False)[1][2] / np.sqrt(len(pts))  # rms distance to best plane

    cfg = PhantomConfig(spacing=(4.0, 4.0, 4.0))
    straight = generate_phantom(2, cfg)
    scoliotic = generate_phantom(2, PhantomConfig(spacing=(4.0, 4.0, 4.0), scoliosis=1.0))
    assert out_of_plane(straight) < 0.5
    assert out_of_plane(scoliotic) > 2.0 and scoliotic.meta["scoliosis"]


# ----------------------------------------------------------------------------------------
# Intensities


def test_ct_bone_is_bright_with_a_cortical_shell_and_air_is_minus_1000(lumbar_ct):
    img, lab, sub = arr(lumbar_ct.image).astype(float), arr(lumbar_ct.vertebra_labels), arr(lumbar_ct.subregion_labels)
    assert img[lab > 0].mean() > 200
    body = sub == 49
    core = ndimage.binary_erosion(body, iterations=4)
    shell = body & ~ndimage.binary_erosion(body, iterations=1)
    assert 150 <= np.median(img[core]) <= 350
    assert np.median(img[shell]) > np.median(img[core]) + 100
    disc = ndimage.binary_erosion(sub == 100, iterations=2)
    assert 60 <= np.median(img[disc]) <= 140
    # The grid reaches behind the skin: the most posterior plane (LPS grid: last j) is air.
    back = img[:, -1, :]
    assert abs(back.mean() + 1000) < 25 and 5 < back.std() < 40


def test_mr_is_t2_weighted(lumbar_mr):
    ph = lumbar_mr
    img, lab, sub = arr(ph.image).astype(float), arr(ph.vertebra_labels), arr(ph.subregion_labels)
    csf = ndimage.binary_erosion(sub == 61, iterations=1)
    marrow = ndimage.binary_erosion(sub == 49, iterations=3)
    body = sub == 49
    shell = body & ~ndimage.binary_erosion(body, iterations=1)
    # Paraspinal muscle: lateral to the L3 spinous process, behind the transverse processes.
    centre = np.rint(Grid.of(ph.image).physical_to_index(ph.body_centroids[22])[0]).astype(int)
    near_l3 = np.zeros(lab.shape, dtype=bool)
    r = (np.array([80.0, 80.0, 80.0]) / np.asarray(ph.image.GetSpacing())).astype(int)
    lo, hi = np.maximum(centre - r, 0), centre + r + 1
    near_l3[lo[2] : hi[2], lo[1] : hi[1], lo[0] : hi[0]] = True
    candidates = near_l3 & (lab == 0)
    pts = local(ph, "L3", voxel_points(ph, candidates))
    ax = np.abs(pts[:, 0])
    sel = (np.abs(pts[:, 2]) < 5) & (ax > 25) & (ax < 35) & (pts[:, 1] > 45) & (pts[:, 1] < 55)
    muscle = img[candidates][sel]
    assert muscle.size > 20
    assert np.median(img[csf]) > 2.5 * np.median(muscle)
    assert np.median(img[csf]) > np.median(img[marrow]) > np.median(img[shell])
    assert np.median(img[shell]) < 0.8 * np.median(img[marrow])
    air = img[ph.image.GetSize()[2] // 2, :, -1]  # PIR: last i = most posterior row of a sagittal slice
    assert air.mean() < 0.1 * np.median(img[csf])


# ----------------------------------------------------------------------------------------
# Grids: the anatomy does not depend on how it is sampled


def test_oblique_anisotropic_grid_samples_the_same_anatomy(lumbar_ct):
    cfg = PhantomConfig(region="lumbar", orientation="PIR", max_rotation_deg=25.0, spacing=(0.9, 1.1, 1.6))
    ob = generate_phantom(5, cfg)
    assert orientation_code(ob.image) != "LPS"
    common = sorted(set(ob.body_centroids.labels) & set(lumbar_ct.body_centroids.labels))
    assert len(common) >= 6
    # The same patient: body centres are properties of the anatomy, not of the grid.
    assert np.allclose(ob.body_centroids.array(common), lumbar_ct.body_centroids.array(common), atol=1e-6)
    vox = {}
    for key, ph in (("lps", lumbar_ct), ("oblique", ob)):
        lab = arr(ph.vertebra_labels)
        border = np.zeros_like(lab, dtype=bool)
        border[[0, -1]] = border[:, [0, -1]] = border[:, :, [0, -1]] = True
        touching = set(np.unique(lab[border]).tolist())
        vol = np.bincount(lab.ravel(), minlength=30) * np.prod(ph.image.GetSpacing())
        vox[key] = (touching, vol)
    inner = [lab for lab in common if lab not in vox["lps"][0] | vox["oblique"][0]]
    assert len(inner) >= 4
    for lab in inner:
        assert abs(vox["oblique"][1][lab] / vox["lps"][1][lab] - 1) < 0.03, lab
        d = np.linalg.norm(ob.vertebra_centroids[lab] - lumbar_ct.vertebra_centroids[lab])
        assert d < 1.0, lab
