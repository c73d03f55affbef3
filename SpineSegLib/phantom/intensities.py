"""Tissue values (CT Hounsfield units, T2w-like MR units) and image noise.

CT: air -1000, lung ~-830, fat ~-100, muscle ~50, organs 30-70 (optionally contrast-
enhanced blood at 150-300), CSF ~8, discs 75-115 (nucleus a little darker than annulus),
cortical bone 700-1400 and cancellous bone 150-330 (per subject, +-5 % per vertebra).
Gaussian noise with sigma 10-30 HU times ``noise``; output int16 clipped to [-1024, 3071].

MR (T2-weighted, CSF ~1000): CSF and disc nuclei bright, fat bright-ish, marrow and cord
intermediate, muscle dark-intermediate, cortical bone, air and flowing blood dark; a
smooth multiplicative bias field (+-15 %) and Rician noise (2-5 % of CSF times ``noise``);
output uint16.

All values come from their own random stream, so a CT and an MR of one seed show the
same patient.

CT appearance "real" follows what was measured on the five labelled real CTs of
../shared/data/real (VerSe 005/006, the TotalSegmentator abdomen CT and CTA crop, the TPTBox
L3 crop; 3 mm eroded vertebra interiors, 1-voxel rims, high-pass noise in soft tissue): body
interiors have medians of 49-111 HU with 10th-90th percentiles spanning -85..209 HU, so a
body can be as dark as the muscle around it; rims 244-355 HU (90th percentile 470-840),
which a 0.9-1.5 mm phantom shell reaches at 250-650 HU;
soft-tissue noise 29-82 HU. The classic phantoms had flat 150-330 HU interiors and 10-30 HU
white noise, and networks trained on them segment only the cortical rim of real bodies.
"real" draws a per-case bone density (osteoporotic 20-110, normal 100-220, dense 220-350
HU), a trabecular texture (correlated noise of 0.5-1 mm grain, 25-70 HU), a reconstruction
kernel blur (0-0.8 mm: smooth to sharp) and correlated noise of 15-80 HU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .raster import Raster
from .tissues import N_TISSUES, Tissue

F32 = np.float32

_CT = {
    Tissue.AIR: (-1005.0, -995.0),
    Tissue.LUNG: (-880.0, -780.0),
    Tissue.FAT: (-120.0, -80.0),
    Tissue.MUSCLE: (35.0, 60.0),
    Tissue.ORGAN: (30.0, 50.0),
    Tissue.LIVER: (50.0, 68.0),
    Tissue.BLOOD: (35.0, 50.0),
    Tissue.CSF: (0.0, 15.0),
    Tissue.CORD: (25.0, 40.0),
    Tissue.ANNULUS: (85.0, 115.0),
    Tissue.NUCLEUS: (75.0, 100.0),
    Tissue.BRAIN: (28.0, 40.0),
}
_MR = {
    Tissue.AIR: (0.0, 0.0),
    Tissue.LUNG: (5.0, 20.0),
    Tissue.FAT: (550.0, 800.0),
    Tissue.MUSCLE: (150.0, 250.0),
    Tissue.ORGAN: (250.0, 400.0),
    Tissue.LIVER: (120.0, 220.0),
    Tissue.BLOOD: (30.0, 120.0),
    Tissue.CSF: (900.0, 1100.0),
    Tissue.CORD: (350.0, 480.0),
    Tissue.ANNULUS: (150.0, 280.0),
    Tissue.NUCLEUS: (650.0, 900.0),
    Tissue.BRAIN: (400.0, 550.0),
}


@dataclass(frozen=True)
class Appearance:
    """Intensities of one phantom."""

    modality: str
    lut: np.ndarray  # tissue id -> value
    cortical: np.ndarray  # per level
    cancellous: np.ndarray  # per level
    extra_cortical: float  # ribs, pelvis, skull...
    extra_cancellous: float
    cartilage: float
    noise_sigma: float
    bias: np.ndarray  # MR bias field coefficients (x, y, z, z^2) per 300 mm
    contrast: bool
    texture_sd: float = 0.0  # HU standard deviation of the trabecular texture of cancellous bone
    texture_mm: float = 1.5  # its grain (Gaussian sigma, mm)
    blur_mm: float = 0.0  # reconstruction-kernel blur of the whole image (Gaussian sigma, mm)
    noise_corr_mm: float = 0.0  # noise correlation length (Gaussian sigma, mm); 0 = white noise

    def as_dict(self) -> dict:
        return {
            "modality": self.modality,
            "tissues": {t.name.lower(): round(float(self.lut[t]), 2) for t in Tissue},
            "cortical": [round(float(v), 1) for v in self.cortical],
            "cancellous": [round(float(v), 1) for v in self.cancellous],
            "noise_sigma": round(self.noise_sigma, 3),
            "contrast_enhanced": self.contrast,
            "texture_sd": round(self.texture_sd, 2),
            "texture_mm": round(self.texture_mm, 3),
            "blur_mm": round(self.blur_mm, 3),
            "noise_corr_mm": round(self.noise_corr_mm, 3),
        }


#: "real" CT bone density classes: (probability, cancellous HU range).
_DENSITY = ((0.35, (20.0, 110.0)), (0.45, (100.0, 220.0)), (0.20, (220.0, 350.0)))


def sample_appearance(
    rng: np.random.Generator, modality: str, n_levels: int, noise: float, style: str = "classic"
) -> Appearance:
    table = _CT if modality == "ct" else _MR
    lut = np.array([rng.uniform(*table[Tissue(t)]) for t in range(N_TISSUES)], dtype=F32)
    contrast = bool(rng.random() < 0.3)
    jitter = 1.0 + np.clip(rng.normal(0.0, 0.05, size=n_levels), -0.12, 0.12)
    if modality == "ct":
        if contrast:
            lut[Tissue.BLOOD] = rng.uniform(150.0, 300.0)
            lut[Tissue.ORGAN] += 20.0
            lut[Tissue.LIVER] += 40.0
        cort, canc = rng.uniform(700.0, 1400.0), rng.uniform(150.0, 330.0)
        cartilage = rng.uniform(90.0, 160.0)
        sigma = rng.uniform(10.0, 30.0) * noise
    else:
        cort, canc = rng.uniform(20.0, 60.0), rng.uniform(300.0, 480.0)
        cartilage = rng.uniform(200.0, 300.0)
        sigma = rng.uniform(20.0, 50.0) * noise
    bias = rng.uniform(-0.1, 0.1, size=4) if modality == "mr" else np.zeros(4)
    texture = {}
    if modality == "ct" and style == "real":
        # Drawn after every classic value, so "classic" phantoms of a seed are unchanged.
        probs = [p for p, _ in _DENSITY]
        lo, hi = _DENSITY[int(rng.choice(len(_DENSITY), p=probs))][1]
        canc = rng.uniform(lo, hi)
        # The phantoms' shell is 0.9-1.5 mm thick where a real cortex is 0.3-1 mm of 500-1900 HU: a
        # dimmer shell gives the real rims' partial-volume values (medians 244-355 HU, p90 470-840).
        cort = rng.uniform(250.0, 650.0)
        sigma = rng.uniform(15.0, 80.0) * noise
        texture = {
            "texture_sd": float(rng.uniform(25.0, 70.0)),
            "texture_mm": float(rng.uniform(0.5, 1.0)),
            "blur_mm": float(rng.uniform(0.0, 0.8)),
            "noise_corr_mm": float(rng.uniform(0.3, 0.8)),
        }
    return Appearance(
        modality=modality,
        lut=lut,
        cortical=np.full(n_levels, cort) * jitter,
        cancellous=np.full(n_levels, canc) * jitter,
        extra_cortical=float(cort),
        extra_cancellous=float(canc),
        cartilage=float(cartilage),
        noise_sigma=float(sigma),
        bias=bias,
        contrast=contrast,
        **texture,
    )


def finish(image: np.ndarray, app: Appearance, raster: Raster, rng: np.random.Generator, centre: np.ndarray):
    """Add noise (and the MR bias field) chunk by chunk and cast to the output type, in place where possible.

    CT: int16 HU in [-1024, 3071]. MR: uint16, magnitude of (signal * bias + complex
    Gaussian noise), i.e. Rician.
    """
    nk, nj, ni = image.shape
    out = np.empty(image.shape, dtype=np.int16 if app.modality == "ct" else np.uint16)
    step = max(1, 2_000_000 // max(ni * nj, 1))
    sigma = F32(app.noise_sigma)
    spacing_kji = np.asarray(raster.grid.spacing, float)[::-1]
    if app.blur_mm > 0:
        ndimage.gaussian_filter(image, sigma=app.blur_mm / spacing_kji, output=image, truncate=3.0)
    corr = app.noise_corr_mm / spacing_kji
    for k0 in range(0, nk, step):
        k1 = min(nk, k0 + step)
        chunk = image[k0:k1]
        if app.modality == "ct":
            if sigma > 0:
                chunk += sigma * correlated_noise(rng, chunk.shape, corr)
            np.clip(np.rint(chunk), -1024, 3071, out=chunk)
        else:
            x, y, z = raster.world_coords((slice(k0, k1), slice(0, nj), slice(0, ni)))
            c = app.bias
            field = np.exp(
                F32(c[0]) * (x - F32(centre[0])) / F32(300.0)
                + F32(c[1]) * (y - F32(centre[1])) / F32(300.0)
                + F32(c[2]) * (z - F32(centre[2])) / F32(300.0)
                + F32(c[3]) * ((z - F32(centre[2])) / F32(300.0)) ** 2
            )
            chunk *= field
            if sigma > 0:
                real = chunk + sigma * rng.standard_normal(chunk.shape, dtype=F32)
                imag = sigma * rng.standard_normal(chunk.shape, dtype=F32)
                np.sqrt(real * real + imag * imag, out=chunk)
            np.clip(np.rint(chunk), 0, 65535, out=chunk)
        out[k0:k1] = chunk
    return out


def correlated_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma_vox: np.ndarray) -> np.ndarray:
    """Unit-variance Gaussian noise smoothed by a Gaussian of ``sigma_vox`` (per axis; white where all < 0.1).

    CT noise is correlated by the reconstruction kernel; the smoothed field is rescaled to unit
    standard deviation with the exact gain of the discrete kernel, so ``sigma`` stays the HU sigma.
    """
    white = rng.standard_normal(shape, dtype=F32)
    if np.all(np.asarray(sigma_vox) < 0.1):
        return white
    ndimage.gaussian_filter(white, sigma=sigma_vox, output=white, truncate=3.0, mode="wrap")
    return white / F32(_smoothing_gain(tuple(np.round(np.asarray(sigma_vox, float), 3))))


def _smoothing_gain(sigma_vox: tuple[float, ...]) -> float:
    """Standard deviation of unit white noise after ``gaussian_filter(sigma_vox, truncate=3)``: sqrt(sum w^2)."""
    gain = 1.0
    for s in sigma_vox:
        if s <= 0:
            continue
        impulse = np.zeros(2 * int(3.0 * s + 0.5) + 1)
        impulse[impulse.size // 2] = 1.0
        w = ndimage.gaussian_filter1d(impulse, s, truncate=3.0, mode="constant")
        gain *= float(np.sqrt(np.sum(w * w)))
    return gain


def trabecular_texture(rng: np.random.Generator, shape: tuple[int, ...], app: Appearance, spacing_kji) -> np.ndarray:
    """Zero-mean HU texture of cancellous bone (``app.texture_sd`` HU, ``app.texture_mm`` grain) for one box."""
    if app.texture_sd <= 0:
        return np.zeros(shape, dtype=F32)
    field = correlated_noise(rng, shape, app.texture_mm / np.asarray(spacing_kji, float))
    field *= F32(app.texture_sd)
    return field
