"""Training losses of the stages, in plain PyTorch (no MONAI, so that packs train on bare GPU machines).

The soft Dice term is MONAI's ``DiceLoss(sigmoid=True, smooth_nr=1, smooth_dr=1)`` written out
(Testing/test_training_pack.py checks that they agree).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - (2 |p t| + smooth) / (|p| + |t| + smooth) per sample and channel, averaged; p = sigmoid(logits)."""
    p = torch.sigmoid(logits)
    dims = tuple(range(2, p.ndim))
    overlap = (p * target).sum(dims)
    return (1.0 - (2.0 * overlap + smooth) / (p.sum(dims) + target.sum(dims) + smooth)).mean()


def loss_fn(stage: str, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The loss of ``stage`` (a StageConfig.key: Payer's stage names, or ``method-stage``)."""
    if "-" in stage:
        from .method_modules import losses

        return losses()[stage](pred, target)
    if stage == "segmentation":
        # Sigmoid cross-entropy (the paper's loss) plus soft Dice, which the Dice goal rewards directly.
        return F.binary_cross_entropy_with_logits(pred, target) + soft_dice_loss(pred, target)
    # Heatmap regression: L2, summed over voxels and channels, averaged over the batch (Payer et al.).
    return F.mse_loss(pred, target, reduction="sum") / pred.shape[0] / 1000.0
