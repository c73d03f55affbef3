"""Stage 2 of ``spineps``: vertebra instances from semantic cutouts, fused, cleaned, labelled, with discs.

The instance network never sees the MR: it sees the one-hot semantic mask (10 channels) in a
fixed-size cutout around each body centre and answers with three vertebrae, the one above the
centre (channel 1), at it (2) and below it (3). Its predictions are fused by inter-Dice agreement
(:mod:`.merge`), made consistent with the semantic mask (:mod:`.postprocess`), named
(:mod:`.labelling`) and completed with the discs and endplates (:mod:`.discs`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ...geometry import Grid
from ...models import ModelCard
from ...pipeline.network_input import predict
from ...pipeline.progress import Reporter
from .centres import corpus_centres
from .discs import body_centres, level_mask
from .labelling import Labelling, label_instances
from .merge import BoxMask, merge_masks
from .params import InstanceParams
from .postprocess import assign_orphans
from .semantic_ids import instance_channels, one_hot


@dataclass
class InstanceMap:
    """The instance output on the semantic grid: VerSe ids, discs 100+X, endplates 200+X."""

    levels: np.ndarray  # uint16 [k, j, i]
    semantic: np.ndarray  # the semantic mask after the orphan clean-up
    grid: Grid
    labelling: Labelling
    body_centres: dict[int, np.ndarray] = field(default_factory=dict)  # VerSe id -> LPS mm


def cutout(array: np.ndarray, centre_kji: np.ndarray, roi_kji: tuple[int, ...]) -> tuple[np.ndarray, tuple[int, ...]]:
    """The ``roi_kji`` block of ``array`` centred on ``centre_kji`` (zero outside) and its start index."""
    start = tuple(round(float(c)) - r // 2 for c, r in zip(centre_kji, roi_kji))
    out = np.zeros(roi_kji, array.dtype)
    src = tuple(slice(max(s, 0), min(s + r, n)) for s, r, n in zip(start, roi_kji, array.shape))
    dst = tuple(slice(a.start - s, a.stop - s) for a, s in zip(src, start))
    if all(a.stop > a.start for a in src):
        out[dst] = array[src]
    return out, start


def predict_cutouts(
    semantic: np.ndarray,
    centres: list[np.ndarray],
    model: torch.nn.Module,
    roi_kji: tuple[int, ...],
    device: torch.device,
    params: InstanceParams,
    reporter: Reporter,
) -> dict[tuple[int, int], BoxMask]:
    """(centre rank, slot 0/1/2 = above/at/below) -> predicted vertebra, as boxes in the semantic array."""
    channels = instance_channels(semantic)
    out = {}
    for rank, c in enumerate(centres):
        reporter.check()
        reporter(rank / max(len(centres), 1), "vertebra instances")
        block, start = cutout(channels, c, roi_kji)
        logits = predict(model, one_hot(block)[None], device, params.mixed_precision)[0]
        classes = np.argmax(logits, axis=0)  # softmax is monotone: the arg-max of the logits
        for slot in range(3):
            m = BoxMask.placed(classes == slot + 1, start, semantic.shape)
            if m is not None:
                out[(rank, slot)] = m
    return out


def segment_instances(
    semantic: np.ndarray,
    grid: Grid,
    model: torch.nn.Module,
    card: ModelCard,
    device: torch.device,
    reporter: Reporter | None = None,
) -> InstanceMap:
    """Instances, labels, discs and endplates from the semantic mask on ``grid`` (the card's spacing)."""
    reporter = reporter or Reporter()
    params = InstanceParams.from_card(card)
    spacing_kji = grid.spacing[::-1]
    centres = corpus_centres(semantic, spacing_kji, params.min_body_mm3)
    predictions = predict_cutouts(
        semantic, centres, model, tuple(card.input_size[::-1]), device, params, reporter.part(0.0, 0.8)
    )
    merged = merge_masks(predictions, semantic.shape, spacing_kji, params.min_vertebra_mm3)
    instances, cleaned = assign_orphans(merged, semantic)
    labelling = label_instances(instances, cleaned, spacing_kji)
    centres_kji = body_centres(instances, cleaned)
    levels = level_mask(instances, cleaned, labelling.ids, spacing_kji, centres_kji)
    body = {
        vid: grid.index_to_physical(centres_kji[inst][::-1][None])[0]
        for inst, vid in labelling.ids.items()
        if inst in centres_kji
    }
    reporter(1.0, "vertebra instances")
    return InstanceMap(levels, cleaned, grid, labelling, body)
