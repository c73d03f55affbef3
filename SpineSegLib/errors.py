"""User-facing errors: one clear message that names the file and the problem.

The CLI prints ``spineseg: error: <message>`` and exits with code 2 for these; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations


class SpineSegError(Exception):
    """A problem with what the user gave us (file, option, data), not a bug."""


class InputError(SpineSegError):
    """An input file is missing, unreadable or not what the operation needs."""

    def __init__(self, path: object, problem: str):
        self.path = str(path) if path is not None else None
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class CancelledError(SpineSegError):
    """The user cancelled a long operation; nothing was changed."""
