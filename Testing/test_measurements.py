"""Vertebral measurements on a phantom whose geometry is known exactly.

Two wedge-shaped vertebrae (body 40 mm wide, 30 mm deep, anterior height 18 mm, posterior 26 mm,
stacked 40 mm apart along a tilted spine axis) with thin pedicles, laminae and a spinous process,
on an oblique, anisotropic image grid; the body has a 1.5 mm cortical shell of 700 HU around a
120 HU core. Heights, ratios, disc height, core attenuation and volumes are compared with the
values the geometry gives, and the volume with SimpleITK's label statistics (a peer computation).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial.transform import Rotation

from SpineSegLib.body_centroids import BODY_OPENING_RADIUS_MM
from SpineSegLib.geometry import Grid
from SpineSegLib.measurements import BANDS, genant_grade, measure_vertebrae

HA, HP, DEPTH, WIDTH, PITCH = 18.0, 26.0, 30.0, 40.0, 40.0
SHELL_HU, CORE_HU, ARCH_HU, SOFT_HU = 700.0, 120.0, 900.0, 40.0


def _height(a_mm: float) -> float:
    """Body height at depth ``a_mm`` from the posterior wall (linear wedge)."""
    return HP + (HA - HP) * a_mm / DEPTH


@pytest.fixture(scope="module", params=["thin arch", "thick arch"])
def phantom(request):
    """The two vertebrae; with a "thick arch" (12 mm pedicles and laminae, as a lower lumbar vertebra's)
    the arch survives the opening and stays joined to the body, and must not count as body height."""
    thick = request.param == "thick arch"
    spacing = (0.8, 0.8, 1.25)
    direction = Rotation.from_euler("xyz", [12, -8, 20], degrees=True).as_matrix()
    size = (170, 170, 110)
    centre = np.array([10.0, -20.0, 35.0])
    origin = centre - direction @ (np.array(spacing) * (np.array(size) - 1) / 2)
    grid = Grid(size, spacing, tuple(origin), tuple(direction.ravel()))
    # Local frame of the spine (rows l, a, s in LPS): tilted 15 degrees from the image's superior axis.
    local = Rotation.from_euler("xz", [15, 25], degrees=True).as_matrix()
    l_ax, a_ax = local @ [1.0, 0, 0], local @ [0, -1.0, 0]  # anterior = LPS -P before the tilt
    s_ax = np.cross(l_ax, a_ax)
    k, j, i = np.meshgrid(*[np.arange(n) for n in size[::-1]], indexing="ij")
    pts = grid.index_to_physical(np.stack([i, j, k], -1).reshape(-1, 3).astype(float))
    labels = np.zeros(len(pts), np.uint8)
    for label, shift in ((20, PITCH / 2), (21, -PITCH / 2)):
        q = pts - (centre + shift * s_ax)
        ll, aa, ss = q @ l_ax, q @ a_ax, q @ s_ax
        body = (aa >= 0) & (aa <= DEPTH) & (np.abs(ll) <= WIDTH / 2) & (np.abs(ss) <= _height(aa) / 2)
        ped_l, ped_s, lam_s = ((7, 19), 6.5, 6.5) if thick else ((12, 16), 4, 2.5)
        pedicles = (aa > -8) & (aa < 0) & (np.abs(ll) >= ped_l[0]) & (np.abs(ll) <= ped_l[1]) & (np.abs(ss) <= ped_s)
        lamina = (aa >= -22) & (aa <= -8) & (np.abs(ll) <= 19) & (np.abs(ss) <= lam_s)
        spinous = (aa >= -36) & (aa < -22) & (np.abs(ll) <= 2.5) & (np.abs(ss) <= 4)
        labels[body | pedicles | lamina | spinous] = label
        labels[body] = label + 100  # marks the body for the image below, cleared afterwards
    labels = labels.reshape(size[::-1])
    is_body = labels > 100
    labels[is_body] -= 100
    depth = ndimage.distance_transform_edt(is_body, sampling=spacing[::-1])
    img = np.full(labels.shape, SOFT_HU, np.float32)
    img[labels > 0] = ARCH_HU
    img[is_body] = np.where(depth[is_body] <= 1.5, SHELL_HU, CORE_HU)
    lab_img = grid.apply(sitk.GetImageFromArray(labels))
    ct = grid.apply(sitk.GetImageFromArray(img))
    return lab_img, ct, is_body


def _band_mean_height(name: str) -> float:
    """Mean true height over a band of the depth (the medians measured sit at its centre)."""
    f0, f1 = BANDS[name]
    return _height(DEPTH * (f0 + f1) / 2)


def test_heights_ratios_and_grade_match_the_geometry(phantom):
    lab_img, ct, _ = phantom
    m = measure_vertebrae(lab_img, ct)
    assert [v.name for v in m.vertebrae] == ["L1", "L2"]
    for v in m.vertebrae:
        assert v.axis == "one neighbour"
        assert v.height_posterior_mm == pytest.approx(_band_mean_height("posterior"), abs=1.0)
        assert v.height_middle_mm == pytest.approx(_band_mean_height("middle"), abs=1.0)
        assert v.height_anterior_mm == pytest.approx(_band_mean_height("anterior"), abs=1.0)
        true_wedge = _band_mean_height("anterior") / _band_mean_height("posterior")
        assert v.wedge_ratio == pytest.approx(true_wedge, abs=0.05)
        assert v.wedge_ratio < 0.85  # a wedge: the anterior wall is lower
        assert v.genant_grade == genant_grade(1 - v.height_anterior_mm / v.height_posterior_mm)
        assert v.genant_grade == 1  # about 22 % lower at 85 % depth


def test_disc_height_at_mid_body(phantom):
    lab_img, ct, _ = phantom
    (disc,) = measure_vertebrae(lab_img, ct).discs
    assert disc.name == "L1/L2"
    assert disc.height_middle_mm == pytest.approx(PITCH - _height(DEPTH / 2), abs=1.0)


def test_core_attenuation_leaves_the_cortical_shell_out(phantom):
    lab_img, ct, _ = phantom
    for v in measure_vertebrae(lab_img, ct).vertebrae:
        assert v.core_voxels > 1000
        assert v.core_hu_mean == pytest.approx(CORE_HU, abs=1.0)
    # Without HU (an MR, a non-HU CT) the core is not reported.
    assert all(v.core_hu_mean is None for v in measure_vertebrae(lab_img, ct, hounsfield=False).vertebrae)


def test_volumes_agree_with_simpleitk_and_the_geometry(phantom):
    lab_img, ct, is_body = phantom
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(lab_img)
    voxel = math.prod(lab_img.GetSpacing())
    for v in measure_vertebrae(lab_img, ct).vertebrae:
        assert v.volume_cm3 == pytest.approx(stats.GetPhysicalSize(v.label) / 1000, rel=1e-9)
        true_body = WIDTH * DEPTH * (HA + HP) / 2 / 1000  # cm3 of the wedge
        # The opening with a ball of radius r rounds the 12 edges: r^2 (1 - pi/4) per mm of edge.
        r = BODY_OPENING_RADIUS_MM
        edges = 4 * WIDTH + 4 * DEPTH + 2 * (HA + HP) * 1.0
        opened = true_body - edges * r * r * (1 - math.pi / 4) / 1000
        assert v.body_volume_cm3 == pytest.approx(opened, rel=0.03)
        # The opening takes off the (thin) arch and keeps nearly all of the body.
        assert v.body_volume_cm3 < v.volume_cm3
    assert is_body.sum() * voxel / 1000 == pytest.approx(2 * true_body, rel=0.03)


def test_genant_grades():
    assert [genant_grade(x) for x in (0.0, 0.19, 0.2, 0.24, 0.25, 0.39, 0.4, 0.9)] == [0, 0, 1, 1, 2, 2, 3, 3]


def test_only_requested_labels_and_grid_check(phantom):
    lab_img, ct, _ = phantom
    m = measure_vertebrae(lab_img, ct, labels=[21])
    assert [v.name for v in m.vertebrae] == ["L2"] and m.discs == ()
    assert m.vertebrae[0].axis == "image superior"
    other = sitk.Image(10, 10, 10, sitk.sitkFloat32)
    with pytest.raises(ValueError, match="same grid"):
        measure_vertebrae(lab_img, other)


def test_a_body_cut_by_the_field_of_view_is_not_measured(phantom):
    lab_img, ct, _ = phantom
    arr = sitk.GetArrayViewFromImage(lab_img)
    # Crop the image through the middle of L1's body (along the array axis L1 and L2 differ most on).
    c1 = np.argwhere(arr == 20).mean(axis=0)
    c2 = np.argwhere(arr == 21).mean(axis=0)
    axis = int(np.argmax(np.abs(c1 - c2)))
    cut = round(c1[axis])
    index = [0, 0, 0]
    size = list(lab_img.GetSize())
    itk_axis = 2 - axis
    if c1[axis] > c2[axis]:
        size[itk_axis] = cut
    else:
        index[itk_axis] = cut
        size[itk_axis] -= cut
    cropped_labels = sitk.RegionOfInterest(lab_img, size, index)
    cropped_ct = sitk.RegionOfInterest(ct, size, index)
    m = measure_vertebrae(cropped_labels, cropped_ct)
    l1, l2 = m.vertebrae
    assert l1.note.startswith("cut by the field of view") and l1.height_middle_mm is None
    assert l2.height_middle_mm == pytest.approx(_band_mean_height("middle"), abs=1.0)
    assert l2.axis == "image superior" and m.discs == ()
