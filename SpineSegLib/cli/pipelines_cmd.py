"""``spineseg pipelines``: what ``--pipeline`` accepts, with method, modality and training data.

Reads the model manifest and the cards only (no weights, no torch), so it answers at once and
works before a model is downloaded.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..methods import DEFAULT_PIPELINE


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", type=Path, help="model manifest (default: the bundled Resources/models/manifest.json)")
    p.add_argument("--json", action="store_true", help="print JSON (one object per pipeline) instead of text")


def describe(manifest) -> list[dict[str, Any]]:
    """One record per pipeline of ``manifest``: name, method, modality, title, stages with their training data."""
    from ..errors import SpineSegError
    from ..models import ModelCard

    rows = []
    for name in manifest.pipelines:
        spec = manifest.method(name)
        stages = []
        for stage in spec.stage_names:
            record: dict[str, Any] = {"stage": stage}
            try:
                entry = manifest.entry(name, stage)
                card = ModelCard.read(entry.card) if entry.card.is_file() else None
            except SpineSegError as exc:
                record["problem"] = str(exc)
            else:
                record["weights"] = entry.weights.name
                record["downloaded_on_first_use"] = bool(entry.url)
                if card is not None:
                    record["training_data"] = card.training_data
                    record["real_cases"] = list(card.real_cases)
            stages.append(record)
        rows.append(
            {
                "name": name,
                "default": name == DEFAULT_PIPELINE,
                "method": spec.name,
                "method_title": spec.title,
                "modality": manifest.modality(name),
                "scope": spec.scope,
                "title": manifest.title(name),
                "heatmaps": spec.heatmap_stage is not None,
                "resegment_from_points": spec.resegment_from_points,
                "stages": stages,
            }
        )
    return rows


def run(args: argparse.Namespace) -> int:
    from ..models import Manifest

    rows = describe(Manifest.load(args.manifest))
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for row in rows:
        default = " (default)" if row["default"] else ""
        print(f"{row['name']}{default}: {row['title']}")
        print(f"  method {row['method']} ({row['method_title']}); modality {row['modality']}; scope {row['scope']}")
        for st in row["stages"]:
            if "problem" in st:
                print(f"  {st['stage']}: {st['problem']}")
                continue
            seen = f"; real cases: {', '.join(st['real_cases'])}" if st.get("real_cases") else ""
            data = st.get("training_data") or ("downloaded on first use" if st["downloaded_on_first_use"] else "?")
            print(f"  {st['stage']}: {st['weights']} - {data}{seen}")
    return 0
