"""Device choice and inference contexts (mixed precision on CUDA)."""

from __future__ import annotations

import contextlib

import torch

from ..errors import SpineSegError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is a user error."""
    if name not in DEVICES and not str(name).startswith("cuda:"):
        raise SpineSegError(f"unknown device {name!r}; use one of {', '.join(DEVICES)}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(name).startswith("cuda") and not torch.cuda.is_available():
        raise SpineSegError("device 'cuda' was asked for but PyTorch sees no CUDA GPU; use --device cpu or auto")
    return torch.device(name)


def inference_context(device: torch.device):
    """no_grad, plus float16 autocast on CUDA (the paper's mixed precision)."""
    stack = contextlib.ExitStack()
    stack.enter_context(torch.inference_mode())
    if device.type == "cuda":
        stack.enter_context(torch.autocast("cuda", dtype=torch.float16))
    return stack
