"""Chain ends at the field of view: candidates outside the scan, one vertebra added from the all-channel heatmap."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from SpineSegLib import labels as L
from SpineSegLib.centroids import Centroids
from SpineSegLib.geometry import Grid
from SpineSegLib.heatmaps import HEATMAP_LABELS, gaussian_heatmap, heatmap_targets
from SpineSegLib.pipeline.params import VertebraeParams
from SpineSegLib.pipeline.vertebrae import landmarks_from_heatmaps

#: 2 mm heatmap grid, x/y 0..78 mm, z -100..98 mm (LPS, axis-aligned).
HEAT_GRID = Grid((40, 40, 100), (2.0, 2.0, 2.0), (0.0, 0.0, -100.0))
LUMBAR = {"L1": 40.0, "L2": 14.0, "L3": -12.0, "L4": -38.0, "L5": -64.0}  # on voxel centres
CENTRE_XY = (40.0, 40.0)
PARAMS = {"min_value": 0.1, "end_min_value": 0.1, "smoothing_sigma": 1.0, "max_per_channel": 6}


def scan(z_lo: float, z_hi: float) -> sitk.Image:
    """An empty 1 mm image over x/y 0..78 mm and z from ``z_lo`` to ``z_hi`` (voxel centres)."""
    img = sitk.Image(79, 79, round(z_hi - z_lo) + 1, sitk.sitkInt16)
    img.SetOrigin((0.0, 0.0, z_lo))
    return img


def heatmaps(blobs: dict[str, tuple[float, float]] = ()) -> np.ndarray:
    """Named lumbar levels at 0.8 in their own channels, plus ``blobs``: channel name -> (z, peak value)."""
    points = Centroids({L.id_of(n): (*CENTRE_XY, z) for n, z in LUMBAR.items()})
    heat = 0.8 * heatmap_targets(HEAT_GRID, points, sigma_vox=2.0)
    for name, (z, value) in dict(blobs).items():
        ijk = HEAT_GRID.physical_to_index(np.array([*CENTRE_XY, z]))[0]
        channel = list(HEATMAP_LABELS).index(L.id_of(name))
        heat[channel] = np.maximum(heat[channel], value * gaussian_heatmap(HEAT_GRID.shape_kji, ijk, 2.0))
    return heat.astype(np.float32)


def chain(heat: np.ndarray, image: sitk.Image, **params) -> Centroids:
    _, seq = landmarks_from_heatmaps(
        heat, HEAT_GRID, list(HEATMAP_LABELS), VertebraeParams.from_mapping({**PARAMS, **params}), image
    )
    return seq.centroids


def names(c: Centroids) -> list[str]:
    return [L.name_of(lab) for lab in c.labels]


def test_a_vertebra_the_network_cannot_name_extends_the_chain_by_one():
    # The vertebra above L1 answers in a wrong channel (T5), as at the cut top of a lumbar scan.
    heat = heatmaps({"T5": (66.0, 0.3)})
    image = scan(-80.0, 75.0)
    plain = chain(heat, image, extend_ends=False)
    assert names(plain) == ["L1", "L2", "L3", "L4", "L5"]
    got = chain(heat, image)
    assert names(got) == ["T12", "L1", "L2", "L3", "L4", "L5"]
    # Placed one vertebra step above L1 (the cut vertebra's peak is biased towards what is visible).
    np.testing.assert_allclose(got[L.id_of("T12")], [*CENTRE_XY, 66.0], atol=1e-6)
    assert abs(got.confidence_of(L.id_of("T12")) - 0.3) < 0.02
    for name in LUMBAR:
        np.testing.assert_allclose(got[L.id_of(name)], plain[L.id_of(name)])


def test_no_extension_outside_the_scan_below_min_value_or_into_a_transitional_level():
    image = scan(-80.0, 75.0)
    # The next centre (z = 66) lies outside a scan that ends at z = 60: not labelled there.
    assert names(chain(heatmaps({"T5": (60.0, 0.3)}), scan(-80.0, 60.0))) == ["L1", "L2", "L3", "L4", "L5"]
    # Too weak a response.
    assert names(chain(heatmaps({"T5": (66.0, 0.08)}), image)) == ["L1", "L2", "L3", "L4", "L5"]
    # Nothing one step away: a response far from the expected place is not taken.
    assert names(chain(heatmaps({"T5": (86.0, 0.5)}), scan(-80.0, 95.0))) == ["L1", "L2", "L3", "L4", "L5"]
    # Below L5 the next level would be L6 (transitional) or the sacrum (no channel): never added.
    assert names(chain(heatmaps({"T5": (-90.0, 0.5)}), scan(-95.0, 75.0))) == ["L1", "L2", "L3", "L4", "L5"]


def test_candidates_outside_the_scan_are_dropped():
    # T12 answers in its own channel at z = 66, but the scan ends at z = 60: the vertebra whose
    # centre lies beyond the edge is not labelled (and would take voxels of L1 in stage 3).
    heat = heatmaps({"T12": (66.0, 0.6)})
    assert names(chain(heat, scan(-80.0, 75.0), extend_ends=False))[0] == "T12"
    assert names(chain(heat, scan(-80.0, 60.0), extend_ends=False))[0] == "L1"
    assert names(chain(heat, scan(-80.0, 60.0), extend_ends=False, inside_image=False))[0] == "T12"
