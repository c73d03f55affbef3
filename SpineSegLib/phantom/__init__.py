"""Synthetic spine phantoms (CT and T2w-like MR) with exactly consistent labels and centroids.

SpineSeg trains its networks on these: anatomy is evaluated analytically at the physical
centres of the output voxels (any spacing, orientation, oblique rotation), so the instance
labels, the SPINEPS-style subregions, the body centroids and the whole-vertebra centroids
agree exactly with the image. See :mod:`.generator` for the consistency rule.

    from SpineSegLib.phantom import PhantomConfig, generate_phantom
    ph = generate_phantom(7, PhantomConfig(region="lumbar", spacing=(1.0, 1.0, 2.0)))

The generator and writer (which need SimpleITK) load on first use, so that the numpy-only
parts (``.intensities``) import on a training-only machine.
"""

from .config import PhantomConfig, PhantomConfigError

__all__ = ["Phantom", "PhantomConfig", "PhantomConfigError", "generate_phantom", "write_phantom_case"]
_LAZY = {"Phantom": "generator", "generate_phantom": "generator", "write_phantom_case": "writer"}


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
