"""The ``_snp.png`` check picture: geometry, orientation, colours, markers, windows, writing, speed.

Expected pixel positions are computed here from the synthetic images' physical boxes (corners
of the voxel grid) and the display spacing; the panels are found in the picture itself.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image
from scipy import ndimage

from SpineSegLib import labels as L
from SpineSegLib.centroids import Centroids
from SpineSegLib.report import CT_WINDOW, display_window, render_snapshot, write_snapshot

CENTER = np.array([12.0, -25.0, 310.0])  # LPS mm
HALF = np.array([60.0, 50.0, 80.0])  # body half extents (L-R, A-P, S-I) in mm
CT_LO = CT_WINDOW[0] - CT_WINDOW[1] / 2.0
CT_HI = CT_WINDOW[0] + CT_WINDOW[1] / 2.0


def grey_of(hu: float) -> float:
    """Grey level of ``hu`` in the CT window, computed from the window's definition."""
    return float(np.clip((hu - CT_LO) / (CT_HI - CT_LO) * 255.0, 0, 255))


def direction_of(code: str) -> np.ndarray:
    """Direction matrix (columns = image axes in LPS) of a three-letter orientation code."""
    unit = {"L": (1, 0, 0), "R": (-1, 0, 0), "P": (0, 1, 0), "A": (0, -1, 0), "S": (0, 0, 1), "I": (0, 0, -1)}
    return np.array([unit[c] for c in code], float).T


def rotation(deg_z: float, deg_x: float) -> np.ndarray:
    a, b = np.radians(deg_z), np.radians(deg_x)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rz @ rx


def sample_volume(content, direction: np.ndarray, spacing, half_extent_axes, pixel=np.int16) -> sitk.Image:
    """An image whose voxel centres sample ``content(points LPS) -> values`` on a grid centred on CENTER.

    ``half_extent_axes`` are the half extents (mm) of the grid's box along the image's own axes.
    """
    sp = np.asarray(spacing, float)
    size = np.round(2 * np.asarray(half_extent_axes) / sp).astype(int)
    origin = CENTER - direction @ (sp * (size - 1) / 2.0)
    k, j, i = np.indices(size[::-1])
    ijk = np.stack([i, j, k], axis=-1).reshape(-1, 3).astype(float)
    pts = origin + (ijk * sp) @ direction.T
    arr = content(pts).reshape(size[::-1]).astype(pixel)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(sp.tolist())
    img.SetOrigin(origin.tolist())
    img.SetDirection(direction.ravel().tolist())
    return img


def box_of(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) LPS corners of the bounding box of the image's voxel box (edges, not centres)."""
    d = np.asarray(image.GetDirection()).reshape(3, 3)
    sp, size, origin = np.asarray(image.GetSpacing()), np.asarray(image.GetSize()), np.asarray(image.GetOrigin())
    corners = [origin + d @ ((np.array(c) * size - 0.5) * sp) for c in np.ndindex(2, 2, 2)]
    return np.min(corners, axis=0), np.max(corners, axis=0)


def panels(picture: Image.Image) -> list[tuple[int, int, int, int]]:
    """(row0, row1, col0, col1) of the sagittal and the coronal panel: the two largest non-black regions."""
    rgb = np.asarray(picture)
    comp, n = ndimage.label(rgb.max(axis=2) > 0)
    sizes = ndimage.sum(np.ones(comp.shape), comp, index=range(1, n + 1))
    biggest = np.argsort(sizes)[-2:] + 1
    boxes = []
    for lab in biggest:
        rows, cols = np.nonzero(comp == lab)
        boxes.append((rows.min(), rows.max() + 1, cols.min(), cols.max() + 1))
    return sorted(boxes, key=lambda b: b[2])


def crop(picture: Image.Image, box) -> np.ndarray:
    r0, r1, c0, c1 = box
    return np.asarray(picture)[r0:r1, c0:c1].astype(float)


# ----------------------------------------------------------------------------------------
# Orientation


def blocks_phantom(pts: np.ndarray) -> np.ndarray:
    """Body (0 HU) in a box around CENTER, air outside; a bone-bright slab at the superior end,
    a 700 HU block at the anterior side and a 300 HU block at the patient's right, both mid-height."""
    rel = pts - CENTER
    inside = np.all(np.abs(rel) <= HALF, axis=1)
    out = np.where(inside, 0.0, -1000.0)
    mid = np.abs(rel[:, 2]) < 0.3 * HALF[2]
    out[inside & (rel[:, 2] > 0.6 * HALF[2])] = 2000.0
    out[inside & mid & (rel[:, 1] < -0.5 * HALF[1])] = 700.0  # anterior = -y in LPS
    out[inside & mid & (rel[:, 0] < -0.5 * HALF[0])] = 300.0  # right = -x in LPS
    return out


def pixels_near(panel: np.ndarray, grey: float, tol: float = 3.0) -> np.ndarray:
    """(rows, cols) of grey pixels within ``tol`` of ``grey``."""
    close = np.all(np.abs(panel - grey) <= tol, axis=2)
    return np.nonzero(close)


ORIENTATIONS = {
    "LPS": (direction_of("LPS"), (2.0, 2.0, 2.0)),
    "PIR": (direction_of("PIR"), (1.25, 4.0, 2.5)),
    "RAS": (direction_of("RAS"), (2.5, 2.0, 4.0)),
    "oblique": (rotation(25.0, -15.0), (2.0, 2.5, 3.0)),
}


@pytest.mark.parametrize("name", list(ORIENTATIONS))
def test_superior_is_up_anterior_left_right_left(name):
    direction, spacing = ORIENTATIONS[name]
    # The grid's box along its own axes: the body box seen in the grid's frame (its bounding box if oblique).
    half_axes = np.abs(direction.T) @ HALF
    image = sample_volume(blocks_phantom, direction, spacing, half_axes)
    picture = render_snapshot(image, None, None, spacing_mm=2.0, min_height=0, modality="ct")
    sag_box, cor_box = panels(picture)
    sag, cor = crop(picture, sag_box), crop(picture, cor_box)

    for panel in (sag, cor):
        h, w = panel.shape[:2]
        rows, _ = pixels_near(panel, 255.0, tol=1.0)
        assert rows.size > 0.05 * h * w
        assert rows.mean() < 0.3 * h, f"{name}: superior slab not at the top"
    h, w = sag.shape[:2]
    rows, cols = pixels_near(sag, grey_of(700.0))
    assert rows.size > 0.03 * h * w
    assert cols.mean() < 0.3 * w, f"{name}: anterior block not on the left of the sagittal panel"
    assert 0.35 * h < rows.mean() < 0.65 * h
    assert pixels_near(sag, grey_of(300.0))[0].size < 0.005 * h * w  # the right block is off the mid-sagittal plane
    h, w = cor.shape[:2]
    rows, cols = pixels_near(cor, grey_of(300.0))
    assert rows.size > 0.03 * h * w
    assert cols.mean() < 0.3 * w, f"{name}: patient's right not on the left of the coronal panel"
    assert 0.35 * h < rows.mean() < 0.65 * h
    assert pixels_near(cor, grey_of(700.0))[0].size < 0.005 * h * w


# ----------------------------------------------------------------------------------------
# Geometry, colours and centroid markers

LABEL = 22  # L3
LABEL_HALF = np.array([20.0, 16.0, 24.0])
LABEL_CENTER = CENTER + np.array([4.0, -6.0, 10.0])


def body(pts: np.ndarray) -> np.ndarray:
    return np.zeros(len(pts))


def labelled_box(pts: np.ndarray) -> np.ndarray:
    return np.where(np.all(np.abs(pts - LABEL_CENTER) <= LABEL_HALF, axis=1), LABEL, 0)


@pytest.fixture(scope="module")
def case():
    """A RAS-stored anisotropic image, its label map stored PIR on another grid, and two centroids."""
    image = sample_volume(body, direction_of("RAS"), (1.0, 2.0, 4.0), HALF)
    labelmap = sample_volume(labelled_box, direction_of("PIR"), (1.0, 1.0, 1.0), HALF[[1, 2, 0]], pixel=np.uint8)
    centroids = Centroids(
        {
            LABEL: LABEL_CENTER + np.array([-3.0, 5.0, -7.0]),
            21: CENTER + np.array([35.0, 12.0, 60.0]),  # L2: elsewhere in depth, no label: still projected
        }
    )
    picture = render_snapshot(image, labelmap, centroids, title="case", spacing_mm=2.0, min_height=0, modality="ct")
    return image, labelmap, centroids, picture


def expected_pixel(image, point, column_axis: int, spacing: float) -> np.ndarray:
    """(column, row) of ``point`` in a panel spanning the image's box, superior at row 0."""
    lo, hi = box_of(image)
    return np.array([(point[column_axis] - lo[column_axis]) / spacing - 0.5, (hi[2] - point[2]) / spacing - 0.5])


def test_panel_size_follows_the_physical_extent(case):
    image, _, _, picture = case
    lo, hi = box_of(image)
    (r0, r1, c0, c1), (q0, q1, d0, d1) = panels(picture)
    assert r1 - r0 == pytest.approx((hi[2] - lo[2]) / 2.0, abs=1)  # S-I extent / spacing
    assert c1 - c0 == pytest.approx((hi[1] - lo[1]) / 2.0, abs=1)  # A-P
    assert d1 - d0 == pytest.approx((hi[0] - lo[0]) / 2.0, abs=1)  # L-R
    assert (q0, q1) == (r0, r1)


def test_picture_is_not_blank_and_has_a_title(case):
    *_, picture = case
    rgb = np.asarray(picture).astype(float)
    assert rgb.var() > 100.0
    r0 = panels(picture)[0][0]
    assert (rgb[:r0].min(axis=2) > 200).sum() > 20  # light title / caption text above the panels
    untitled = render_snapshot(*case[:3], spacing_mm=2.0, min_height=0, modality="ct")
    assert untitled.height < picture.height


def disc_centre(panel: np.ndarray, colour, near: np.ndarray) -> np.ndarray:
    """(column, row) of the small compact blob of exactly ``colour`` nearest ``near``."""
    comp, n = ndimage.label(np.all(panel == colour, axis=2))
    best = None
    for lab in range(1, n + 1):
        rows, cols = np.nonzero(comp == lab)
        h, w = np.ptp(rows) + 1, np.ptp(cols) + 1
        if rows.size < 9 or max(h, w) > 20 or abs(h - w) > 1:
            continue  # not a marker disc: an outline, a glyph
        centre = np.array([cols.mean(), rows.mean()])
        if best is None or np.linalg.norm(centre - near) < np.linalg.norm(best - near):
            best = centre
    assert best is not None, "no marker of that colour"
    return best


def test_centroid_markers_at_their_projected_position(case):
    image, _, centroids, picture = case
    for box, column_axis in zip(panels(picture), (1, 0)):
        panel = crop(picture, box)
        for label in centroids:
            expected = expected_pixel(image, centroids[label], column_axis, 2.0)
            found = disc_centre(panel, L.get(label).color, expected)
            assert np.linalg.norm(found - expected) <= 1.0, (label, column_axis, found, expected)


def test_label_colour_fill_and_outline_where_the_label_is(case):
    image, _, _, picture = case
    colour = np.array(L.get(LABEL).color, float)
    grey = grey_of(0.0)
    for box, column_axis in zip(panels(picture), (1, 0)):
        panel = crop(picture, box)
        c_lo, r_lo = expected_pixel(image, LABEL_CENTER - LABEL_HALF * [1, 1, -1], column_axis, 2.0)
        c_hi, r_hi = expected_pixel(image, LABEL_CENTER + LABEL_HALF * [1, 1, -1], column_axis, 2.0)
        c_lo, r_lo, c_hi, r_hi = (round(v) for v in (c_lo, r_lo, c_hi, r_hi))
        # Outline: the exact label colour on the box's border rows and columns.
        border = np.zeros(panel.shape[:2], bool)
        border[r_lo : r_hi + 1, [c_lo, c_hi]] = True
        border[[r_lo, r_hi], c_lo : c_hi + 1] = True
        exact = np.all(panel == colour, axis=2)
        near_border = ndimage.binary_dilation(border)
        assert exact[near_border].sum() > 0.8 * border.sum()
        # Fill: inside (a corner region away from the marker and name), a blend of grey and the colour.
        inside = panel[r_lo + 2 : r_lo + 5, c_lo + 2 : c_lo + 5].reshape(-1, 3)
        t = (inside - grey) @ (colour - grey) / np.dot(colour - grey, colour - grey)
        assert np.all((t > 0.1) & (t < 0.9))
        np.testing.assert_allclose(inside, grey + t[:, None] * (colour - grey), atol=1.5)
        # Outside the label, far from it: plain grey.
        outside = panel[-6:, -6:].reshape(-1, 3)
        np.testing.assert_allclose(outside, grey, atol=1.0)


# ----------------------------------------------------------------------------------------
# Slice choice, windows


PLATE_X = CENTER[0] + 30.0
PLATE_Y = CENTER[1] - 20.0


def plates(pts: np.ndarray) -> np.ndarray:
    """Body with a bright sagittal plate at x = PLATE_X and a bright coronal plate at y = PLATE_Y."""
    out = np.zeros(len(pts))
    out[np.abs(pts[:, 0] - PLATE_X) < 3.0] = 2000.0
    out[np.abs(pts[:, 1] - PLATE_Y) < 3.0] = 2000.0
    return out


def white_fraction(picture: Image.Image) -> tuple[float, float]:
    return tuple(float(np.mean(np.all(crop(picture, b) >= 254, axis=2))) for b in panels(picture))


def test_planes_follow_the_labels_and_the_centroids():
    image = sample_volume(plates, direction_of("LPS"), (2.0, 2.0, 2.0), HALF)
    options = {"spacing_mm": 2.0, "min_height": 0, "modality": "ct"}
    sag, cor = white_fraction(render_snapshot(image, **options))  # image centre: plates seen edge-on only
    assert sag < 0.2 and cor < 0.2
    on_plates = Centroids({20: [PLATE_X, PLATE_Y, CENTER[2] + 20], 21: [PLATE_X + 2, PLATE_Y - 2, CENTER[2] - 10]})
    sag, cor = white_fraction(render_snapshot(image, centroids=on_plates, **options))
    assert sag > 0.9 and cor > 0.9

    # Labels decide the sagittal plane (L/R), centroids the coronal one (A/P).
    def band(p):  # labels in a thin slab at the image's L/R centre, low down (it tints the coronal panel)
        return np.where((np.abs(p[:, 0] - CENTER[0]) < 10) & (p[:, 2] < CENTER[2] - 70), 20, 0)

    labels_off = sample_volume(band, direction_of("LPS"), (2.0,) * 3, HALF, np.uint8)
    sag, cor = white_fraction(render_snapshot(image, labels_off, on_plates, **options))
    assert sag < 0.2 and cor > 0.9


def test_ct_window_is_used_for_an_image_with_air():
    def ct(pts):
        return np.where(np.all(np.abs(pts - CENTER) <= HALF * 0.8, axis=1), 0.0, -1000.0)

    image = sample_volume(ct, direction_of("LPS"), (2.0, 2.0, 2.0), HALF)
    assert display_window(image) == (CT_LO, CT_HI)
    picture = render_snapshot(image, spacing_mm=2.0, min_height=0)
    (r0, r1, c0, c1), _ = panels(picture)
    centre = np.asarray(picture)[(r0 + r1) // 2, (c0 + c1) // 2]
    np.testing.assert_allclose(centre, grey_of(0.0), atol=1.0)


def test_percentile_window_for_mr():
    rng = np.random.default_rng(0)

    def mr(pts):
        values = rng.uniform(100.0, 1100.0, len(pts))
        values[:50] = 1e6  # a few hot voxels must not darken the picture
        return values

    image = sample_volume(mr, direction_of("LPS"), (2.0, 2.0, 2.0), HALF, pixel=np.float32)
    lo, hi = display_window(image)
    assert lo == pytest.approx(110.0, abs=5.0) and hi == pytest.approx(1090.0, abs=5.0)
    picture = render_snapshot(image, spacing_mm=2.0, min_height=0)
    mean = crop(picture, panels(picture)[0]).mean()
    assert 100.0 < mean < 155.0  # uniform intensities: mid grey on average, not black


def test_display_spacing_limits():
    image = sample_volume(body, direction_of("LPS"), (2.0, 2.0, 2.0), HALF)  # 160 mm S-I
    r0, r1, *_ = panels(render_snapshot(image, min_height=400, modality="ct"))[0]  # small images are drawn finer
    assert r1 - r0 == 400
    small = render_snapshot(image, spacing_mm=0.25, max_height=100, min_height=0, modality="ct")
    r0, r1, *_ = panels(small)[0]
    assert r1 - r0 == 100
    with pytest.raises(ValueError, match="spacing_mm"):
        render_snapshot(image, spacing_mm=0.0)


# ----------------------------------------------------------------------------------------
# Writing and speed


def test_write_snapshot_writes_a_complete_png_atomically(tmp_path, case):
    image, labelmap, centroids, _ = case
    path = tmp_path / "case_snp.png"
    path.write_bytes(b"old")
    out = write_snapshot(path, image, labelmap, centroids, title="case", spacing_mm=2.0, min_height=0, modality="ct")
    assert out == path
    assert [p.name for p in tmp_path.iterdir()] == ["case_snp.png"]  # no temporary file left
    with Image.open(path) as png:
        assert png.format == "PNG"
        written = np.asarray(png.convert("RGB"))
    np.testing.assert_array_equal(written, np.asarray(case[3]))


def test_large_ct_renders_quickly():
    """A 512x512x600 CT at 0.7 mm with labels and centroids; a loose bound that only catches pathology."""
    arr = np.full((600, 512, 512), -1000, np.int16)
    arr[:, 100:400, 80:430] = 40
    image = sitk.GetImageFromArray(arr)
    del arr
    image.SetSpacing((0.7, 0.7, 0.7))
    image.SetDirection(direction_of("RAS").ravel().tolist())
    lab = np.zeros((600, 512, 512), np.uint8)
    points = {}
    for n, label in enumerate(range(8, 25)):
        k0 = 20 + 34 * n
        lab[k0 : k0 + 28, 230:300, 230:290] = label
        points[label] = [0.7 * 260, 0.7 * 265, 0.7 * (k0 + 14)]  # index -> RAS image: x, y negated below
    labelmap = sitk.GetImageFromArray(lab)
    del lab
    labelmap.CopyInformation(image)
    centroids = Centroids({k: [-p[0], -p[1], p[2]] for k, p in points.items()})
    start = time.perf_counter()
    picture = render_snapshot(image, labelmap, centroids, title="large")
    elapsed = time.perf_counter() - start
    print(f"render_snapshot 512x512x600: {elapsed:.2f} s, picture {picture.size}")
    assert elapsed < 10.0
    r0, r1, *_ = panels(picture)[0]
    assert r1 - r0 == 420  # 600 x 0.7 mm at the default 1 mm per pixel
