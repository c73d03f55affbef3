"""Test inputs for the Slicer-layer tests: a small synthetic lumbar CT and a tiny, hand-set model set.

The model set is a real ``Resources`` folder (``models/manifest.json`` + safetensors + cards) written
with :func:`SpineSegLib.models.save_model`; point ``SPINESEG_RESOURCES`` at it. Once bundled weights
exist, a test can use them instead by simply not setting ``SPINESEG_RESOURCES``.

The networks are the pipeline's own architectures at minimal width, with weights set by hand (not
random) so that the result is deterministic and meaningful on the synthetic CT:

* spine: a constant heatmap, so the spine box is the whole image;
* vertebrae: the SpatialConfiguration-Net answers "bone" on the L1..L5 channels only, so every
  vertebral body is a candidate of each of these channels and the sequence rules label the bodies
  L1..L5 from cranial to caudal;
* segmentation: logit = 30 * image + 20 * centroid heatmap - 12, i.e. bone close to the centroid.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from SpineSegLib import labels as L
from SpineSegLib.centroids import Centroids

LUMBAR = (20, 21, 22, 23, 24)  # L1..L5
#: Vertebral body centres of the synthetic CT: 30 mm apart along the body axis (LPS z = superior).
BODY_SPACING_MM = 30.0


@dataclass
class SyntheticSpine:
    image: sitk.Image  # int16 HU, LPS
    labels: sitk.Image  # uint8 VerSe ids on the image grid (the bodies)
    centroids: Centroids  # LPS mm of the body centres


def synthetic_lumbar_ct(
    size: tuple[int, int, int] = (40, 40, 84),
    spacing: tuple[float, float, float] = (2.0, 2.0, 2.0),
    direction: tuple[float, ...] | None = None,
    origin: tuple[float, float, float] = (-40.0, -30.0, -80.0),
) -> SyntheticSpine:
    """A box of soft tissue in air with five vertebral bodies (L1..L5) whose density peaks at their centres.

    The bodies are placed along LPS +z (superior) through the centre of the image's box, whatever
    ``direction`` the grid has, so oblique grids get the same anatomy.
    """
    from SpineSegLib.geometry import Grid

    grid = Grid(
        tuple(size),
        tuple(spacing),
        tuple(origin),
        tuple(direction) if direction else Grid.of(sitk.Image(1, 1, 1, sitk.sitkUInt8)).direction,
    )
    k, j, i = np.meshgrid(*(np.arange(n) for n in size[::-1]), indexing="ij")
    pts = grid.index_to_physical(np.stack([i.ravel(), j.ravel(), k.ravel()], axis=1).astype(float))
    pts = pts.reshape(*size[::-1], 3)
    corners = grid.corners()
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    center = (lo + hi) / 2.0
    ct = np.full(size[::-1], -1000.0)
    inside = np.all((pts > lo + 8.0) & (pts < hi - 8.0), axis=-1)
    ct[inside] = 40.0
    labels = np.zeros(size[::-1], np.uint8)
    points = {}
    for n, lab in enumerate(LUMBAR):
        c = center + np.array([0.0, 0.0, (2 - n) * BODY_SPACING_MM])
        r = np.sqrt(((pts[..., 0] - c[0]) / 13.0) ** 2 + ((pts[..., 1] - c[1]) / 11.0) ** 2)
        h = np.abs(pts[..., 2] - c[2]) / 9.0
        body = (r < 1.0) & (h < 1.0)
        ct[body] = 200.0 + 900.0 * (1.0 - r[body] ** 2) * (1.0 - h[body] ** 2)
        labels[body] = lab
        points[lab] = c
    image = grid.apply(sitk.GetImageFromArray(np.round(ct).astype(np.int16)))
    label_image = grid.apply(sitk.GetImageFromArray(labels))
    return SyntheticSpine(image, label_image, Centroids(points))


def _set_identity_conv(conv, scale: float = 1.0) -> None:
    """A k^3 convolution that averages its input channel(s) (box blur; k=1: identity)."""
    import torch

    with torch.no_grad():
        conv.weight.zero_()
        k = conv.weight.shape[2:]
        n = int(np.prod(k))
        for o in range(conv.weight.shape[0]):
            conv.weight[o, o % conv.weight.shape[1]] = scale / n
        conv.bias.zero_()


def tiny_models() -> dict:
    """stage -> (torch module, ModelCard) of the hand-set tiny model set (see the module docstring)."""
    import torch

    from SpineSegLib.models import ModelCard
    from SpineSegLib.networks import build_network
    from SpineSegLib.pipeline.intensity import CT_NORMALIZATION

    models = {}
    spine_cfg = {
        "architecture": "unet",
        "in_channels": 1,
        "out_channels": 1,
        "num_filters": 1,
        "num_levels": 1,
        "convs_per_level": 1,
        "kernel_size": 1,
    }
    spine = build_network(spine_cfg)
    _set_identity_conv(spine.unet.down[0][0].conv)
    with torch.no_grad():
        spine.head.weight.zero_()
        spine.head.bias.fill_(1.0)
    models["spine"] = (
        spine,
        ModelCard("tiny-spine", "spine", spine_cfg, [8.0, 8.0, 8.0], [16, 16, 32], dict(CT_NORMALIZATION)),
    )

    scn_cfg = {
        "architecture": "scn",
        "in_channels": 1,
        "num_labels": len(L.HEATMAP_LABELS),
        "num_filters": 1,
        "local_levels": 1,
        "spatial_levels": 1,
        "spatial_filters": 1,
        "spatial_downsample": 1,
    }
    scn = build_network(scn_cfg)
    for block in scn.local.down[0]:
        _set_identity_conv(block.conv)
    with torch.no_grad():
        scn.local_head.weight.fill_(2.0)
        bias = torch.full((len(L.HEATMAP_LABELS),), -3.0)
        for ch, lab in enumerate(L.HEATMAP_LABELS):
            if lab in LUMBAR:
                bias[ch] = -0.3
        scn.local_head.bias.copy_(bias)
        scn.spatial.down[0][0].conv.weight.zero_()
        scn.spatial.down[0][0].conv.bias.zero_()
        scn.spatial_head.weight.zero_()
        scn.spatial_head.bias.fill_(3.0)
    models["vertebrae"] = (
        scn,
        ModelCard(
            "tiny-vertebrae",
            "vertebrae",
            scn_cfg,
            [2.0, 2.0, 2.0],
            [48, 48, 64],
            dict(CT_NORMALIZATION),
            labels=list(L.HEATMAP_LABELS),
            params={"smoothing_sigma": 2.0, "margin_mm": [16.0, 16.0, 16.0]},
        ),
    )

    seg_cfg = {
        "architecture": "unet",
        "in_channels": 2,
        "out_channels": 1,
        "num_filters": 2,
        "num_levels": 1,
        "convs_per_level": 1,
        "kernel_size": 1,
    }
    seg = build_network(seg_cfg)
    _set_identity_conv(seg.unet.down[0][0].conv)
    with torch.no_grad():
        seg.head.weight.copy_(torch.tensor([30.0, 20.0]).reshape(1, 2, 1, 1, 1))
        seg.head.bias.fill_(-12.0)
    models["segmentation"] = (
        seg,
        ModelCard(
            "tiny-segmentation",
            "segmentation",
            seg_cfg,
            [2.0, 2.0, 2.0],
            [32, 32, 24],
            dict(CT_NORMALIZATION),
            params={"posterior_shift_mm": 0.0},
        ),
    )
    return {k: (net.eval(), card) for k, (net, card) in models.items()}


def tiny_lumbar_models(**segmentation_params) -> dict:
    """Random (seeded) tiny ``lu_lumbar`` networks whose cards let anything through: for well-formedness checks.

    The localisation card accepts any heatmap peak and the segmentation card keeps vertebrae of any
    size, so the pipeline always reaches its end; what the random networks segment means nothing.
    """
    import torch

    from SpineSegLib.models import ModelCard
    from SpineSegLib.networks import build_network
    from SpineSegLib.pipeline.intensity import BONE_WINDOW, CT_NORMALIZATION

    torch.manual_seed(3)
    loc_cfg = {"architecture": "lumbar_unet", "width": 4, "num_levels": 3}
    seg_cfg = {"architecture": "xunet", "out_channels": 7, "width": 4}
    loc = ModelCard(
        "tiny-lumbar-localisation", "localisation", loc_cfg, [8.0] * 3, [16] * 3, dict(CT_NORMALIZATION),
        params={"min_peak": -1e9, "relative_threshold": 0.3}, method="lu_lumbar",
    )  # fmt: skip
    seg = ModelCard(
        "tiny-lumbar-segmentation", "segmentation", seg_cfg, [4.0] * 3, [16] * 3, dict(BONE_WINDOW),
        labels=[20, 21, 22, 23, 24, 25], params={"min_volume_mm3": 0.0, **segmentation_params}, method="lu_lumbar",
    )  # fmt: skip
    return {"localisation": (build_network(loc_cfg).eval(), loc), "segmentation": (build_network(seg_cfg).eval(), seg)}


def _entry(weights: Path, card_path: Path, card) -> dict:
    """A manifest stage entry with both hashes (weights and card)."""
    from SpineSegLib.models import sha256_of

    return {"weights": weights.name, "card": card_path.name, "sha256": card.sha256, "card_sha256": sha256_of(card_path)}


def write_tiny_resources(root: str | os.PathLike, pipeline: str = "ct-full-spine", lumbar: bool = False) -> Path:
    """Write the tiny model set as ``<root>/Resources`` (models + manifest); returns that folder.

    ``lumbar``: also the random tiny ``ct-lumbar`` models (:func:`tiny_lumbar_models`).
    """
    from SpineSegLib.models import save_model

    resources = Path(root) / "Resources"
    folder = resources / "models"
    stages = {}
    for stage, (net, card) in tiny_models().items():
        weights, card_path = save_model(net, card, folder)
        stages[stage] = _entry(weights, card_path, card)
    manifest = {"pipelines": {pipeline: {"title": "CT full spine (tiny test models)", "stages": stages}}}
    if lumbar:
        lumbar_stages = {}
        for stage, (net, card) in tiny_lumbar_models().items():
            weights, card_path = save_model(net, card, folder)
            lumbar_stages[stage] = _entry(weights, card_path, card)
        manifest["pipelines"]["ct-lumbar"] = {
            "title": "CT lumbar (random tiny test models)",
            "method": "lu_lumbar",
            "modality": "ct",
            "stages": lumbar_stages,
        }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return resources


def assert_segments_inside_truth(labelmap: sitk.Image, truth: sitk.Image, labels) -> None:
    """Each label is a good part of its own true body and nothing else (the tiny model: bone near its centroid)."""
    a, t = sitk.GetArrayFromImage(labelmap), sitk.GetArrayFromImage(truth)
    assert set(np.unique(a).tolist()) - {0} == set(labels)
    for lab in labels:
        mine = a == lab
        assert np.all(t[mine] == lab), L.name_of(lab)
        assert 2 * mine.sum() / (mine.sum() + (t == lab).sum()) > 0.5, L.name_of(lab)
