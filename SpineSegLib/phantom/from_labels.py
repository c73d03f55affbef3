"""Synthetic CT painted on a real vertebra label map (SynthSeg's principle: real shapes, random appearance).

The phantom generator draws parametric vertebrae; real VerSe masks without their CT
(../shared/data/real/verse_masks_only_no_ct) carry real vertebra geometry. This module paints
a CT on such a mask: each vertebra a cortical shell (``cortical_mm`` inside its surface) around
a textured cancellous core, in soft tissue with smooth fat/muscle variation, with the "real"
CT appearance of :mod:`SpineSegLib.phantom.intensities` (density class, texture, kernel blur,
correlated noise), all drawn from ``seed``. The labels and the spatial grid are the mask's
own (resampled to at most ``max_spacing_mm`` per axis), so the mask stays the exact ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..labelmap import bounding_boxes
from .intensities import correlated_noise, sample_appearance, trabecular_texture

F32 = np.float32


@dataclass
class LabelPainting:
    """A CT painted on a label map: int16 HU image and the uint8 labels on the same grid, plus what was drawn."""

    image: sitk.Image
    labels: sitk.Image
    meta: dict


def coarsen_labels(mask: sitk.Image, max_spacing_mm: float) -> sitk.Image:
    """``mask`` (rounded to uint8) on a grid of the same extent and direction with spacing >= ``max_spacing_mm``."""
    arr = np.rint(sitk.GetArrayFromImage(mask)).astype(np.uint8)
    labels = sitk.GetImageFromArray(arr)
    labels.CopyInformation(mask)
    spacing = np.asarray(mask.GetSpacing(), float)
    if np.all(spacing >= max_spacing_mm - 1e-6):
        return labels
    new_spacing = np.maximum(spacing, max_spacing_mm)
    size = np.maximum(1, np.round(np.asarray(mask.GetSize()) * spacing / new_spacing)).astype(int)
    # Same physical box: the first voxel's edge stays where it was.
    direction = np.asarray(mask.GetDirection(), float).reshape(3, 3)
    origin = np.asarray(mask.GetOrigin(), float) + direction @ ((new_spacing - spacing) / 2.0)
    ref = sitk.Image([int(s) for s in size], sitk.sitkUInt8)
    ref.SetSpacing(tuple(float(s) for s in new_spacing))
    ref.SetOrigin(tuple(float(v) for v in origin))
    ref.SetDirection(mask.GetDirection())
    return sitk.Resample(labels, ref, sitk.Transform(), sitk.sitkLabelGaussian, 0, sitk.sitkUInt8)


def paint_ct_on_labels(mask: sitk.Image, seed: int, max_spacing_mm: float = 0.8, noise: float = 1.0) -> LabelPainting:
    """A CT (int16 HU) on the vertebra label map ``mask``; deterministic in ``seed``."""
    labels = coarsen_labels(mask, max_spacing_mm)
    lab = sitk.GetArrayFromImage(labels)
    spacing_kji = np.asarray(labels.GetSpacing(), float)[::-1]
    present = [int(v) for v in np.unique(lab) if v]
    rng = np.random.default_rng([seed, 4241])
    look = sample_appearance(rng, "ct", max(len(present), 1), noise, style="real")
    cortical_mm = float(rng.uniform(0.6, 1.3))
    muscle, fat = float(rng.uniform(30.0, 60.0)), float(rng.uniform(-120.0, -70.0))
    fat_fraction = float(rng.uniform(0.1, 0.4))

    # Soft tissue: muscle with smooth fat regions (a 12 mm smooth field thresholded at its quantile).
    field = correlated_noise(rng, lab.shape, 12.0 / spacing_kji)
    image = np.where(field > np.quantile(field, 1.0 - fat_fraction), F32(fat), F32(muscle)).astype(F32)
    ndimage.gaussian_filter(image, sigma=1.0 / spacing_kji, output=image)

    bone = lab > 0
    # Depth below the bone surface (mm); each vertebra's own surface counts, so touching
    # neighbours keep a shell where they meet (as at facet joints and endplates).
    depth = np.zeros(lab.shape, F32)
    for value, sl in bounding_boxes(lab).items():
        sl = tuple(slice(max(s.start - 2, 0), s.stop + 2) for s in sl)
        own = lab[sl] == value
        d = ndimage.distance_transform_edt(own, sampling=spacing_kji).astype(F32)
        depth[sl] = np.where(own, d, depth[sl])
    texture = trabecular_texture(rng, lab.shape, look, spacing_kji)
    per_label = np.zeros(256, F32)
    per_label[present] = look.cancellous
    cancellous = per_label[lab]
    # Partial-volume shell: fully cortical in the outer ``cortical_mm``, a 0.5 mm ramp to the core.
    core = np.clip((depth - cortical_mm) / 0.5, 0.0, 1.0).astype(F32)
    # Real masks include the half-outside rim voxel: a brighter shell than the phantoms' gives the real rims.
    bone_value = (1.0 - core) * F32(1.5 * look.cortical[0]) + core * (cancellous + texture)
    image[bone] = bone_value[bone]
    # Scanner point spread (partial volume at every edge) plus the kernel's own blur.
    blur = np.sqrt(0.4**2 + look.blur_mm**2)
    ndimage.gaussian_filter(image, sigma=blur / spacing_kji, output=image)
    image += F32(look.noise_sigma) * correlated_noise(rng, lab.shape, look.noise_corr_mm / spacing_kji)
    pixels = np.clip(np.rint(image), -1024, 3071).astype(np.int16)

    out = sitk.GetImageFromArray(pixels)
    out.CopyInformation(labels)
    meta = {
        "seed": seed,
        "appearance": look.as_dict(),
        "cortical_mm": round(cortical_mm, 3),
        "muscle_hu": round(muscle, 1),
        "fat_hu": round(fat, 1),
        "fat_fraction": round(fat_fraction, 3),
        "spacing": list(labels.GetSpacing()),
    }
    return LabelPainting(out, labels, meta)
