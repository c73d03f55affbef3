"""Progress reporting and cancellation shared by the stages.

A stage calls ``progress(fraction, message)`` and checks ``cancel()`` between batches;
the CLI plugs tqdm in, the Slicer module a progress bar, tests a list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import CancelledError

ProgressCallback = Callable[[float, str], None]
CancelCheck = Callable[[], bool]


def _no_progress(fraction: float, message: str) -> None:
    return None


def _never() -> bool:
    return False


@dataclass
class Reporter:
    """Maps a stage's own 0..1 progress into its slice [start, stop] of the whole run."""

    progress: ProgressCallback | None = None
    cancel: CancelCheck | None = None
    start: float = 0.0
    stop: float = 1.0

    def __post_init__(self) -> None:
        self.progress = self.progress or _no_progress
        self.cancel = self.cancel or _never

    def __call__(self, fraction: float, message: str) -> None:
        self.progress(self.start + (self.stop - self.start) * min(max(fraction, 0.0), 1.0), message)

    def check(self) -> None:
        if self.cancel():
            raise CancelledError("cancelled by the user")

    def part(self, start: float, stop: float) -> Reporter:
        span = self.stop - self.start
        return Reporter(self.progress, self.cancel, self.start + span * start, self.start + span * stop)
