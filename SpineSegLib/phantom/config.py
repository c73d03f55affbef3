"""What a phantom should look like: the options of :func:`generate_phantom`, checked once.

Options that describe the *scan* (region, spacing, orientation, rotation, modality, noise)
never change the *anatomy*: the anatomy is drawn from its own random stream of the seed,
so one seed gives the same patient under every scan setting (tests rely on it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import SpineSegError

MODALITIES = ("ct", "mr")
REGIONS = ("full", "cervical", "thoracic", "lumbar", "random")
TRANSITIONAL = ("none", "t13", "l6", "random")
#: "classic": the appearance the first bundled weights were trained on (bright, flat cancellous bone,
#: low white noise). "real": CT statistics measured on the real CTs of ../shared/data/real
#: (see SpineSegLib.phantom.intensities): dark textured bodies, stronger correlated noise, kernels.
APPEARANCES = ("classic", "real")
FIELDS = ("wide", "tight")

_AXIS_LETTERS = {"L": (0, 1.0), "R": (0, -1.0), "P": (1, 1.0), "A": (1, -1.0), "S": (2, 1.0), "I": (2, -1.0)}


class PhantomConfigError(SpineSegError, ValueError):
    """An option of :class:`PhantomConfig` is out of range (one message naming the option)."""


def orientation_matrix(code: str) -> np.ndarray:
    """3x3 direction matrix (columns = grid axes in LPS) of an ITK orientation code.

    ITK/DICOM convention: each letter is where an axis *points to*, so "LPS" is the
    identity and "PIR" is a sagittal stack (i -> posterior, j -> inferior, k -> right).
    """
    code = str(code).upper()
    if len(code) != 3 or any(c not in _AXIS_LETTERS for c in code):
        raise PhantomConfigError(f"orientation {code!r} is not a 3-letter code of L/R, P/A, S/I (e.g. 'LPS', 'PIR')")
    axes = [_AXIS_LETTERS[c][0] for c in code]
    if sorted(axes) != [0, 1, 2]:
        raise PhantomConfigError(f"orientation {code!r} names one anatomical axis twice")
    d = np.zeros((3, 3))
    for col, c in enumerate(code):
        row, sign = _AXIS_LETTERS[c]
        d[row, col] = sign
    return d


@dataclass(frozen=True)
class PhantomConfig:
    """Options of one synthetic spine scan.

    modality: "ct" (int16 Hounsfield units) or "mr" (T2-weighted-like, uint16 arbitrary units).
    region: "full" (C1..sacrum), "cervical", "thoracic", "lumbar" or "random" (any
        contiguous run of >= 3 vertebrae with random margins, so vertebrae at the borders
        are cut).
    spacing: voxel spacing in mm of the grid axes i, j, k (may be anisotropic).
    orientation: "LPS" (identity direction), any 3-letter ITK code, or "random".
    max_rotation_deg: largest extra oblique rotation of the grid (random axis, uniform angle).
    transitional: "none", "t13" (13 rib-bearing thoracic vertebrae), "l6" (6 lumbar
        vertebrae) or "random" (each with probability ``t13_probability``/``l6_probability``).
    scoliosis: probability of a lateral (scoliotic) curve.
    noise: scale of the image noise (0 = noise free; 1 = CT sigma 10-30 HU, MR Rician 2-5 %).
    appearance: "classic" or "real" (CT only; see ``APPEARANCES``).
    field: "wide" (the body around the spine, with air behind the back) or "tight" (a VerSe-like
        crop of a few centimetres around the spine: no air, no skin).
    size_variation, curvature_variation: scale of the per-subject random variation of
        vertebra size / curvature amplitudes (0 = the reference adult, 1 = realistic
        spread, up to 2 = twice that).
    partial_volume: soft (partial-volume) tissue edges at bone and soft-tissue boundaries.
    extras: skull base, pelvis, sternum and costal cartilage (image only, never labelled).
    """

    modality: str = "ct"
    region: str = "full"
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    orientation: str = "LPS"
    max_rotation_deg: float = 0.0
    transitional: str = "none"
    scoliosis: float = 0.0
    noise: float = 1.0
    appearance: str = "classic"
    field: str = "wide"
    size_variation: float = 1.0
    curvature_variation: float = 1.0
    partial_volume: bool = True
    extras: bool = True
    t13_probability: float = 0.08
    l6_probability: float = 0.08

    def __post_init__(self) -> None:
        def fix(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        modality = str(self.modality).lower()
        if modality not in MODALITIES:
            raise PhantomConfigError(f"modality {self.modality!r} is not one of {MODALITIES}")
        fix("modality", modality)
        region = str(self.region).lower()
        if region not in REGIONS:
            raise PhantomConfigError(f"region {self.region!r} is not one of {REGIONS}")
        fix("region", region)
        try:
            spacing = tuple(float(s) for s in np.broadcast_to(np.asarray(self.spacing, dtype=float), (3,)))
        except (TypeError, ValueError):
            raise PhantomConfigError(f"spacing {self.spacing!r} must be 3 numbers (mm)") from None
        if not all(math.isfinite(s) and 0.1 <= s <= 12.0 for s in spacing):
            raise PhantomConfigError(f"spacing {spacing} must be between 0.1 and 12 mm on every axis")
        fix("spacing", spacing)
        orientation = str(self.orientation).upper()
        if orientation != "RANDOM":
            orientation_matrix(orientation)
        fix("orientation", "random" if orientation == "RANDOM" else orientation)
        if not (math.isfinite(self.max_rotation_deg) and 0.0 <= self.max_rotation_deg <= 90.0):
            raise PhantomConfigError(f"max_rotation_deg {self.max_rotation_deg} must be between 0 and 90")
        transitional = str(self.transitional).lower()
        if transitional not in TRANSITIONAL:
            raise PhantomConfigError(f"transitional {self.transitional!r} is not one of {TRANSITIONAL}")
        fix("transitional", transitional)
        for name in ("scoliosis", "t13_probability", "l6_probability"):
            v = float(getattr(self, name))
            if not 0.0 <= v <= 1.0:
                raise PhantomConfigError(f"{name} {v} must be a probability between 0 and 1")
            fix(name, v)
        for name, top in (("noise", 5.0), ("size_variation", 2.0), ("curvature_variation", 2.0)):
            v = float(getattr(self, name))
            if not (math.isfinite(v) and 0.0 <= v <= top):
                raise PhantomConfigError(f"{name} {v} must be between 0 and {top:g}")
            fix(name, v)
        for name, allowed in (("appearance", APPEARANCES), ("field", FIELDS)):
            v = str(getattr(self, name)).lower()
            if v not in allowed:
                raise PhantomConfigError(f"{name} {getattr(self, name)!r} is not one of {allowed}")
            fix(name, v)
        fix("partial_volume", bool(self.partial_volume))
        fix("extras", bool(self.extras))

    def as_dict(self) -> dict:
        """JSON-serialisable copy (for ``Phantom.meta``)."""
        return {
            "modality": self.modality,
            "region": self.region,
            "spacing": list(self.spacing),
            "orientation": self.orientation,
            "max_rotation_deg": self.max_rotation_deg,
            "transitional": self.transitional,
            "scoliosis": self.scoliosis,
            "noise": self.noise,
            "appearance": self.appearance,
            "field": self.field,
            "size_variation": self.size_variation,
            "curvature_variation": self.curvature_variation,
            "partial_volume": self.partial_volume,
            "extras": self.extras,
            "t13_probability": self.t13_probability,
            "l6_probability": self.l6_probability,
        }
