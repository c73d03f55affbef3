"""The ``<case>_snp.png`` check picture: a sagittal and a coronal view with labels and centroids.

Display conventions (radiological, as Slicer and PACS viewers show these planes):

- sagittal panel (left): the patient seen from their left side, so anterior is on the left
  of the picture, posterior on the right, superior at the top;
- coronal panel (right): the patient seen from the front, so the patient's right is on the
  left of the picture, the patient's left on the right, superior at the top.

Both panels are planes of one LPS-aligned isotropic grid (:func:`axis_aligned_grid`) that
covers the image, so every stored orientation (PIR, RAS, oblique) and any anisotropic
spacing renders the same way. Only the two planes are resampled (linear for the image,
nearest for the labels), never the whole volume, which keeps a 512x512x600 CT fast.

The sagittal plane goes through the median left-right position of the labelled voxels (else
of the centroids, else the image centre); the coronal plane through the median
anterior-posterior position of the centroids, i.e. the vertebral bodies (else of the labelled
voxels, else the image centre). Every centroid is drawn at its in-plane projection, whatever
its depth, since a curved spine leaves the plane.
"""

from __future__ import annotations

import colorsys
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from io import BytesIO
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image, ImageDraw, ImageFont

from .. import labels as L
from ..centroids import Centroids
from ..geometry import Grid, axis_aligned_grid, resample_to_grid
from ..io.atomic import write_bytes_atomic

#: CT window (level, width) in HU: bone is bright but not burnt out, soft tissue stays grey.
CT_WINDOW = (400.0, 1800.0)
#: Window of other modalities (MR): these percentiles of the image's intensities.
PERCENTILE_WINDOW = (1.0, 99.0)
#: Opacity of the label fill; the one-pixel outline is drawn in the full label colour.
FILL_OPACITY = 0.35

_BACKGROUND = (0, 0, 0)
_TEXT_COLOR = (235, 235, 235)
_NOTE_COLOR = (255, 190, 60)
#: Most flag lines printed under the panels.
MAX_NOTES = 8
_MARKER_EDGE = (0, 0, 0)
_INTENSITY_SAMPLE = 1_000_000  # voxels read for the window: percentiles need no more
_LABEL_SAMPLE = 8_000_000  # voxels read to find the spine's median position
_CT_AIR_HU = -200.0  # an image whose 1st percentile is below this holds air in HU: CT


# ----------------------------------------------------------------------------------------
# Colours and intensity window


def label_color(label: int) -> tuple[int, int, int]:
    """Display colour of a label: the label table's, or a fixed colour for ids it lacks."""
    if L.is_known(label):
        return L.get(label).color
    r, g, b = colorsys.hsv_to_rgb((int(label) * 0.618034) % 1.0, 0.65, 1.0)
    return (round(r * 255), round(g * 255), round(b * 255))


def _label_name(label: int) -> str:
    return L.name_of(label) if L.is_known(label) else str(int(label))


def _strided_sample(image: sitk.Image, max_voxels: int) -> tuple[np.ndarray, int]:
    """A regular sub-grid of the voxel array (no copy of the whole volume) and its step."""
    arr = sitk.GetArrayViewFromImage(image)
    step = max(1, int(np.ceil((arr.size / max_voxels) ** (1.0 / 3.0))))
    return arr[::step, ::step, ::step], step


def display_window(image: sitk.Image, modality: str | None = None) -> tuple[float, float]:
    """(lowest, highest) intensity shown black to white.

    ``modality`` "ct" uses :data:`CT_WINDOW` (HU), "mr" the :data:`PERCENTILE_WINDOW`
    percentiles; ``None`` takes an image with air (1st percentile below -200) for CT.
    """
    sample, _ = _strided_sample(image, _INTENSITY_SAMPLE)
    values = np.asarray(sample, dtype=np.float64).ravel()
    if modality is None:
        modality = "ct" if values.size and np.percentile(values, 1.0) < _CT_AIR_HU else "mr"
    if modality == "ct":
        level, width = CT_WINDOW
        return level - width / 2.0, level + width / 2.0
    if modality != "mr":
        raise ValueError(f"modality must be 'ct', 'mr' or None, got {modality!r}")
    lo, hi = (float(v) for v in np.percentile(values, PERCENTILE_WINDOW))
    return (lo, hi) if hi > lo else (lo - 0.5, lo + 0.5)  # a flat image shows mid-grey


# ----------------------------------------------------------------------------------------
# Planes


@dataclass(frozen=True)
class _Plane:
    """One panel: the one-voxel-thick grid it samples and the map LPS mm -> picture pixel."""

    grid: Grid  # LPS-aligned, size 1 along the plane's normal
    column_axis: int  # LPS axis that increases to the right of the picture (y: posterior, x: left)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the panel."""
        return self.grid.size[2], self.grid.size[self.column_axis]

    def to_pixel(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) LPS mm -> (N, 2) continuous (column, row); superior is row 0."""
        p = np.atleast_2d(np.asarray(points, dtype=float))
        sp = self.grid.spacing[0]
        top = self.grid.origin[2] + (self.grid.size[2] - 1) * sp
        col = (p[:, self.column_axis] - self.grid.origin[self.column_axis]) / sp
        return np.stack([col, (top - p[:, 2]) / sp], axis=1)

    def picture(self, array_kji: np.ndarray) -> np.ndarray:
        """The resampled plane's array as picture rows (superior first) and columns."""
        rows, cols = self.shape
        return np.flipud(array_kji.reshape(rows, cols))


def _plane(grid: Grid, normal_axis: int, position: float) -> _Plane:
    """The plane of ``grid`` normal to LPS axis ``normal_axis`` at ``position`` mm (clamped into the grid)."""
    lo = grid.origin[normal_axis]
    hi = lo + (grid.size[normal_axis] - 1) * grid.spacing[normal_axis]
    origin = list(grid.origin)
    origin[normal_axis] = float(np.clip(position, lo, hi))
    size = list(grid.size)
    size[normal_axis] = 1
    return _Plane(replace(grid, size=tuple(size), origin=tuple(origin)), column_axis=1 if normal_axis == 0 else 0)


def _labelled_points(labelmap: sitk.Image) -> np.ndarray:
    """(N, 3) LPS positions of a regular sample of the labelled voxels."""
    sample, step = _strided_sample(labelmap, _LABEL_SAMPLE)
    k, j, i = np.nonzero(sample)
    if not k.size:
        return np.zeros((0, 3))
    return Grid.of(labelmap).index_to_physical(np.stack([i, j, k], axis=1) * step)


def _median(points: np.ndarray, axis: int) -> float | None:
    return float(np.median(points[:, axis])) if len(points) else None


def _first(*values: float | None) -> float:
    return next(v for v in values if v is not None)


# ----------------------------------------------------------------------------------------
# Panels


def _grey(image: sitk.Image, plane: _Plane, window: tuple[float, float]) -> np.ndarray:
    lo, hi = window
    # Outside the image (corners of an oblique box): below the window, so black.
    sampled = resample_to_grid(image, plane.grid, default_value=lo - 1.0, pixel_type=sitk.sitkFloat32)
    values = plane.picture(sitk.GetArrayViewFromImage(sampled))
    grey = np.clip((values - lo) * (255.0 / (hi - lo)), 0.0, 255.0)
    return np.repeat(grey[:, :, None], 3, axis=2)


def _labels_of(labelmap: sitk.Image, plane: _Plane) -> np.ndarray:
    sampled = resample_to_grid(labelmap, plane.grid, interpolator="nearest", default_value=0)
    lab = plane.picture(sitk.GetArrayViewFromImage(sampled))
    if lab.dtype.kind == "f":
        lab = np.rint(lab)
    return np.maximum(lab.astype(np.int64), 0)


def _edges(lab: np.ndarray) -> np.ndarray:
    """Pixels whose label differs from a 4-neighbour's."""
    e = np.zeros(lab.shape, bool)
    v = lab[1:, :] != lab[:-1, :]
    h = lab[:, 1:] != lab[:, :-1]
    e[1:, :] |= v
    e[:-1, :] |= v
    e[:, 1:] |= h
    e[:, :-1] |= h
    return e


def _overlay(rgb: np.ndarray, lab: np.ndarray) -> np.ndarray:
    """Blend label colours into ``rgb`` (float, 0..255): translucent fill, opaque outline."""
    present = np.unique(lab)
    present = present[present > 0]
    if present.size:
        lut = np.zeros((int(present.max()) + 1, 3))
        for v in present:
            lut[v] = label_color(int(v))
        mask = lab > 0
        colours = lut[lab]
        rgb[mask] = (1.0 - FILL_OPACITY) * rgb[mask] + FILL_OPACITY * colours[mask]
        outline = mask & _edges(lab)
        rgb[outline] = colours[outline]
    return rgb


# ----------------------------------------------------------------------------------------
# Text and markers


def _font(size: int) -> tuple[ImageFont.ImageFont | ImageFont.FreeTypeFont, bool]:
    """(font, whether it can draw a stroke); Pillow < 10.1 has only a small fixed bitmap default."""
    try:
        return ImageFont.load_default(size=size), True
    except TypeError:
        return ImageFont.load_default(), False


def _text_box(draw: ImageDraw.ImageDraw, text: str, font, stroke: int) -> tuple[int, int, int, int]:
    return draw.textbbox((0, 0), text, font=font, stroke_width=stroke)


def _draw_centroids(
    draw: ImageDraw.ImageDraw,
    plane: _Plane,
    offset: tuple[int, int],
    centroids: Centroids,
    font,
    stroke: int,
    radius: int,
) -> None:
    """Markers (label colour, dark rim) at the in-plane projection of every centroid, names beside them."""
    if not len(centroids):
        return
    rows, cols = plane.shape
    x0, y0 = offset
    pixels = plane.to_pixel(centroids.array())
    placed = []
    last_row = {1: -np.inf, -1: -np.inf}  # last text row on each side, to keep close names apart
    for label, (c, r) in sorted(zip(centroids.labels, pixels), key=lambda t: t[1][1]):
        if not (-0.5 <= c < cols - 0.5 and -0.5 <= r < rows - 0.5):
            continue  # outside the picture
        cx, cy = round(c) + x0, round(r) + y0
        name = _label_name(label)
        left, top, right, bottom = _text_box(draw, name, font, stroke)
        width = right - left
        gap = radius + max(2, radius // 2) + stroke
        fits = {1: cx + gap + width <= x0 + cols, -1: cx - gap - width >= x0}
        side = 1 if fits[1] or not fits[-1] else -1
        if cy - last_row[side] < bottom - top and fits[-side]:
            side = -side
        last_row[side] = cy
        tx = cx + gap - left if side == 1 else cx - gap - width - left
        ty = cy - (top + bottom) / 2.0
        draw.text((tx, ty), name, fill=label_color(label), font=font, stroke_width=stroke, stroke_fill=_MARKER_EDGE)
        placed.append((cx, cy, label))
    rim = max(1, radius // 3)
    for cx, cy, label in placed:  # markers after all names: a name never hides a marker
        box = (cx - radius, cy - radius, cx + radius, cy + radius)
        draw.ellipse(box, fill=label_color(label), outline=_MARKER_EDGE, width=rim)


# ----------------------------------------------------------------------------------------
# The snapshot


def _check_volume(image: sitk.Image, what: str) -> None:
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(
            f"the snapshot needs a 3D scalar {what}, got {image.GetDimension()}D with "
            f"{image.GetNumberOfComponentsPerPixel()} component(s) per voxel"
        )


def _display_spacing(image: sitk.Image, spacing_mm: float, min_height: int, max_height: int, max_width: int) -> float:
    """Picture pixel size (mm): ``spacing_mm``, finer where the panels would be fewer than ``min_height``
    rows (small crops), coarser where they would exceed ``max_height`` rows or ``max_width`` columns."""
    if not (np.isfinite(spacing_mm) and spacing_mm > 0):
        raise ValueError(f"spacing_mm must be a positive number, got {spacing_mm!r}")
    if min(max_height, max_width) < 1 or min_height < 0:
        raise ValueError(f"max_height and max_width must be positive, got {max_height}, {max_width}")
    corners = Grid.of(image).corners()
    extent = corners.max(axis=0) - corners.min(axis=0)
    spacing = min(spacing_mm, extent[2] / min_height) if min_height else spacing_mm
    return float(max(spacing, extent[2] / max_height, (extent[0] + extent[1]) / max_width))


def render_snapshot(
    image: sitk.Image,
    labelmap: sitk.Image | None = None,
    centroids: Centroids | Mapping[int, Sequence[float]] | None = None,
    title: str = "",
    spacing_mm: float = 1.0,
    max_height: int = 800,
    *,
    min_height: int = 384,
    max_width: int = 1600,
    modality: str | None = None,
    notes: Sequence[str] = (),
) -> Image.Image:
    """The check picture (RGB): sagittal and coronal panel side by side, see the module docstring.

    ``notes`` (the result's plausibility flags) are printed under the panels in amber, so a result the
    pipeline doubts says so in the picture too; at most :data:`MAX_NOTES` lines, then a count.

    One picture pixel is ``spacing_mm`` mm, finer if the panels would be less than
    ``min_height`` pixels tall (0: never), coarser if they would be taller than ``max_height``
    or wider together than ``max_width`` pixels. ``modality`` picks the
    intensity window (:func:`display_window`). ``labelmap`` may be on any grid.
    """
    _check_volume(image, "image")
    if labelmap is not None:
        _check_volume(labelmap, "label map")
    if centroids is not None and not isinstance(centroids, Centroids):
        centroids = Centroids(centroids)
    spacing = _display_spacing(image, spacing_mm, min_height, max_height, max_width)
    grid = axis_aligned_grid(image, spacing)
    window = display_window(image, modality)

    labelled = _labelled_points(labelmap) if labelmap is not None else np.zeros((0, 3))
    points = centroids.array() if centroids else np.zeros((0, 3))
    centre = grid.center
    x = _first(_median(labelled, 0), _median(points, 0), centre[0])
    y = _first(_median(points, 1), _median(labelled, 1), centre[1])
    planes = (_plane(grid, 0, x), _plane(grid, 1, y))

    panels = []
    for plane in planes:
        rgb = _grey(image, plane, window)
        if labelmap is not None:
            rgb = _overlay(rgb, _labels_of(labelmap, plane))
        panels.append(Image.fromarray(np.round(rgb).astype(np.uint8), "RGB"))

    # Layout: title, panel captions with orientation letters, the two panels.
    height = panels[0].height
    size = int(np.clip(round(height / 32), 12, 24))
    font, can_stroke = _font(size)
    title_font, _ = _font(round(size * 1.25))
    stroke = max(1, size // 8) if can_stroke else 0
    pad = max(4, size // 2)
    gap = 2 * pad
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line = _text_box(scratch, "Ag", font, 0)[3] + pad // 2
    title_line = _text_box(scratch, "Ag", title_font, 0)[3] + pad if title else 0
    top = pad + title_line + line
    width = pad + panels[0].width + gap + panels[1].width + pad
    notes = list(notes)
    if len(notes) > MAX_NOTES:
        notes = notes[: MAX_NOTES - 1] + [f"... and {len(notes) - MAX_NOTES + 1} more (see the centroid file)"]
    notes = [part for text in notes for part in _wrap(scratch, text, font, width - 2 * pad)]
    notes_height = len(notes) * line + (pad if notes else 0)
    canvas = Image.new("RGB", (width, top + height + pad + notes_height), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((pad, pad), title, fill=_TEXT_COLOR, font=title_font)

    x0 = pad
    captions = (("A", "sagittal", "P"), ("R", "coronal", "L"))
    for panel, plane, (left, name, right) in zip(panels, planes, captions):
        canvas.paste(panel, (x0, top))
        y_text = pad + title_line
        draw.text((x0, y_text), left, fill=_TEXT_COLOR, font=font)
        right_w = draw.textlength(right, font=font)
        draw.text((x0 + panel.width - right_w, y_text), right, fill=_TEXT_COLOR, font=font)
        name_w = draw.textlength(name, font=font)
        if name_w + 2 * (right_w + pad) <= panel.width:  # a narrow panel keeps only its letters
            draw.text((x0 + (panel.width - name_w) / 2.0, y_text), name, fill=_TEXT_COLOR, font=font)
        if centroids:
            radius = max(3, round(size * 0.35))
            _draw_centroids(draw, plane, (x0, top), centroids, font, stroke, radius)
        x0 += panel.width + gap
    for n, text in enumerate(notes):
        draw.text((pad, top + height + pad + n * line), text, fill=_NOTE_COLOR, font=font)
    return canvas


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, width: float) -> list[str]:
    """``text`` broken at spaces into lines no wider than ``width`` pixels (a longer word stays whole)."""
    lines: list[str] = []
    for word in text.split(" "):
        if lines and draw.textlength(lines[-1] + " " + word, font=font) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word if not lines else "  " + word)
    return lines or [""]


def write_snapshot(
    path: str | os.PathLike,
    image: sitk.Image,
    labelmap: sitk.Image | None = None,
    centroids: Centroids | Mapping[int, Sequence[float]] | None = None,
    title: str = "",
    **options,
) -> Path:
    """Render (:func:`render_snapshot`, ``options`` passed on) and write a PNG atomically; returns the path."""
    picture = render_snapshot(image, labelmap, centroids, title, **options)
    buffer = BytesIO()
    picture.save(buffer, format="PNG")
    return write_bytes_atomic(buffer.getvalue(), path)
