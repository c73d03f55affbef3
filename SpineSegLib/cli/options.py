"""Option values shared by the ``spineseg`` subcommands."""

from __future__ import annotations

from ..errors import SpineSegError


def parse_labels(text: str | None, option: str = "--labels") -> list[int] | None:
    """The labels of a CLI option (names or ids, comma-separated); an unknown one is a clear error."""
    from .. import labels as L

    if not text:
        return None
    try:
        return L.parse_list(text)
    except KeyError as exc:
        raise SpineSegError(f"{option}: {exc.args[0]}") from None
