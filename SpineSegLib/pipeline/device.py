"""Device choice and inference contexts (mixed precision on CUDA, bfloat16 on capable CPUs)."""

from __future__ import annotations

import contextlib
import functools

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


@functools.cache
def cpu_bf16_supported() -> bool:
    """Whether oneDNN has native bfloat16 kernels on this CPU (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast(device: torch.device, mixed: bool = True):
    """float16 autocast on CUDA, bfloat16 on CPUs with native bf16 kernels; a no-op otherwise."""
    if mixed and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    if mixed and device.type == "cpu" and cpu_bf16_supported():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def inference_context(device: torch.device, mixed: bool = True):
    """inference_mode plus :func:`autocast`."""
    stack = contextlib.ExitStack()
    stack.enter_context(torch.inference_mode())
    stack.enter_context(autocast(device, mixed))
    return stack


def memory_format(device: torch.device) -> torch.memory_format:
    """channels_last_3d is what oneDNN's 3-D convolutions are fastest with on CPU."""
    return torch.channels_last_3d if device.type == "cpu" else torch.contiguous_format
