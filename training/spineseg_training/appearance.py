"""Appearance randomisation of training crops (SynthSeg's principle), applied in Hounsfield units.

A network that sees one intensity model learns that model; on real CT, whose vertebral bodies
can be as dark as muscle, networks trained on bright phantom bodies segment only the cortical
rim. Each augmented crop gets a random monotone remap of its HU values (tissue contrasts
change, their order stays), a random kernel blur and random correlated noise, before the
model card's normalisation, so inference inputs stay plain HU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from SpineSegLib.phantom.intensities import correlated_noise

#: Control points of the HU remap and how far (HU, one standard deviation) each may move.
_KNOTS_HU = np.array([-1024.0, -600.0, -150.0, -50.0, 50.0, 150.0, 300.0, 600.0, 1200.0, 3071.0])
_KNOT_SD = np.array([0.0, 80.0, 30.0, 25.0, 25.0, 50.0, 80.0, 150.0, 250.0, 0.0])


@dataclass(frozen=True)
class AppearanceConfig:
    """Probabilities and ranges of the appearance randomisation (all off by default).

    probability: chance that a crop is randomised at all; remap_scale: multiplies the knot
    standard deviations; blur_mm: largest kernel blur sigma; noise_hu: largest added noise sigma.
    """

    probability: float = 0.0
    remap_scale: float = 1.0
    blur_mm: float = 1.0
    noise_hu: float = 60.0


def random_hu_remap(rng: np.random.Generator, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Knots (x, y) of a random monotone piecewise-linear HU -> HU map; ends fixed at -1024 and 3071."""
    y = _KNOTS_HU + rng.normal(0.0, 1.0, _KNOTS_HU.size) * _KNOT_SD * scale
    return _KNOTS_HU.copy(), np.maximum.accumulate(np.clip(y, -1024.0, 3071.0))


def randomise_appearance(hu: np.ndarray, spacing_kji, rng: np.random.Generator, cfg: AppearanceConfig) -> np.ndarray:
    """A randomised copy of the HU crop ``hu`` (float32), or ``hu`` itself when this crop is left as is."""
    if cfg.probability <= 0 or rng.random() >= cfg.probability:
        return hu
    x, y = random_hu_remap(rng, cfg.remap_scale)
    out = np.interp(hu, x, y).astype(np.float32)
    spacing_kji = np.asarray(spacing_kji, float)
    blur = rng.uniform(0.0, cfg.blur_mm)
    if blur > 0.2:
        ndimage.gaussian_filter(out, sigma=blur / spacing_kji, output=out)
    sigma = rng.uniform(0.0, cfg.noise_hu)
    if sigma > 1.0:
        out += np.float32(sigma) * correlated_noise(rng, out.shape, rng.uniform(0.3, 0.8) / spacing_kji)
    return out
