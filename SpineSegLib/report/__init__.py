"""Pictures and summaries a person looks at to check a result (the ``<case>_snp.png``)."""

from .snapshot import (
    CT_WINDOW,
    PERCENTILE_WINDOW,
    display_window,
    label_color,
    render_snapshot,
    write_snapshot,
)

__all__ = [
    "CT_WINDOW",
    "PERCENTILE_WINDOW",
    "display_window",
    "label_color",
    "render_snapshot",
    "write_snapshot",
]
