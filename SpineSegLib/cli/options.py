"""Option values shared by the ``spineseg`` subcommands."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from ..errors import SpineSegError


def parse_labels(text: str | None, option: str = "--labels") -> list[int] | None:
    """The labels of a CLI option (names or ids, comma-separated); an unknown one is a clear error."""
    from .. import labels as L

    if text is None:
        return None
    if not text.replace(",", "").strip():
        raise SpineSegError(f"{option} is empty: name at least one vertebra, e.g. L1,L2 or 20,21")
    try:
        return L.parse_list(text)
    except KeyError as exc:
        raise SpineSegError(f"{option}: {exc.args[0]}") from None


def positive_number(what: str) -> Callable[[str], float]:
    """An argparse type: a finite number above 0 (NaN, infinity, zero and negatives are refused by name)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number, got {text!r}") from None
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"{what} must be a finite number above 0, got {text}")
        return value

    return parse
