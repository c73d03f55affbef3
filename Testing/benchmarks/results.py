"""Writing a benchmark's results: the JSON and its Markdown side by side, atomically, and the Markdown printed."""

from __future__ import annotations

from pathlib import Path

from SpineSegLib.io import write_json_atomic, write_text_atomic


def write_results(res: dict, text: str, out: Path, md_path: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(res, out, indent=1)
    write_text_atomic(text, md_path)
    print()
    print(text)
    print(f"results: {out}\nmarkdown: {md_path}")
