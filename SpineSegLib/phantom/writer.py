"""Write a phantom as one case of a VerSe/BIDS tree (what ``spineseg phantom`` and training sets use)."""

from __future__ import annotations

from pathlib import Path

from .. import bids
from ..io import write_centroids, write_image, write_json_atomic, write_labelmap
from .generator import Phantom


def write_phantom_case(phantom: Phantom, root: str | Path, subject: str) -> bids.CasePaths:
    """Image, masks, body-centroid ``_ctd.json`` and a sidecar (written last: it marks the case complete)."""
    modality = phantom.meta.get("config", {}).get("modality", "ct")
    paths = bids.case_paths(root, subject, modality)
    paths.image.parent.mkdir(parents=True, exist_ok=True)
    paths.vertebra_mask.parent.mkdir(parents=True, exist_ok=True)
    write_image(phantom.image, paths.image)
    write_labelmap(phantom.vertebra_labels, paths.vertebra_mask)
    write_labelmap(phantom.subregion_labels, paths.subregion_mask)
    write_centroids(phantom.body_centroids, paths.centroids, reference=phantom.vertebra_labels)
    sidecar = dict(phantom.meta)
    sidecar["whole_vertebra_centroids_lps_mm"] = {str(k): v.tolist() for k, v in phantom.vertebra_centroids.items()}
    write_json_atomic(sidecar, paths.sidecar)
    return paths
