"""Synthetic spine phantoms (CT and T2w-like MR) with exactly consistent labels and centroids.

SpineSeg trains its networks on these: anatomy is evaluated analytically at the physical
centres of the output voxels (any spacing, orientation, oblique rotation), so the instance
labels, the SPINEPS-style subregions, the body centroids and the whole-vertebra centroids
agree exactly with the image. See :mod:`.generator` for the consistency rule.

    from SpineSegLib.phantom import PhantomConfig, generate_phantom
    ph = generate_phantom(7, PhantomConfig(region="lumbar", spacing=(1.0, 1.0, 2.0)))
"""

from .config import PhantomConfig, PhantomConfigError
from .generator import Phantom, generate_phantom
from .writer import write_phantom_case

__all__ = ["Phantom", "PhantomConfig", "PhantomConfigError", "generate_phantom", "write_phantom_case"]
