"""``spineseg evaluate``: per-vertebra metrics of a segmentation against a ground truth."""

from __future__ import annotations

import argparse
from pathlib import Path

from .options import positive_number


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pred", required=True, type=Path, help="predicted vertebra label map (VerSe ids)")
    p.add_argument("--gt", required=True, type=Path, help="ground-truth vertebra label map (VerSe ids)")
    p.add_argument("--pred-ctd", type=Path, help="predicted centroids (VerSe _ctd.json, .mrk.json or .csv)")
    p.add_argument("--gt-ctd", type=Path, help="ground-truth centroids (VerSe _ctd.json, .mrk.json or .csv)")
    p.add_argument("--json", type=Path, help="write the metrics as JSON here")
    p.add_argument("--csv", type=Path, help="write the per-vertebra table as CSV here")
    p.add_argument(
        "--resample-pred",
        action="store_true",
        help="resample the prediction onto the ground-truth grid (nearest neighbour) when the grids differ",
    )
    p.add_argument(
        "--ignore",
        metavar="LABELS",
        help="leave these levels out of both sides, e.g. S (the CT pipeline has no sacrum channel) or 26,28",
    )
    p.add_argument(
        "--id-threshold",
        type=positive_number("the identification threshold"),
        default=20.0,
        help="identification distance threshold in mm (default 20)",
    )


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..geometry import Grid, resample_like
    from ..io import read_centroids, read_labelmap, require_labels, write_json_atomic, write_text_atomic
    from ..metrics import evaluate
    from .options import parse_labels

    ignore = parse_labels(args.ignore, "--ignore") or []
    gt = read_labelmap(args.gt)
    require_labels(gt, args.gt)
    pred = read_labelmap(args.pred)
    if not Grid.of(pred).same_as(Grid.of(gt)):
        if not args.resample_pred:
            raise InputError(
                args.pred,
                f"prediction grid {_grid_text(pred)} differs from the ground-truth grid {_grid_text(gt)} "
                f"({args.gt}); pass --resample-pred to resample the prediction onto it",
            )
        pred = resample_like(pred, gt, is_label=True)
    # Without centroid files, evaluate() takes the centroids from the masks (inside its per-label boxes).
    gt_ctd = read_centroids(args.gt_ctd, reference=gt) if args.gt_ctd else None
    pred_ctd = read_centroids(args.pred_ctd, reference=pred) if args.pred_ctd else None
    result = evaluate(
        pred,
        gt,
        pred_ctd,
        gt_ctd,
        id_threshold_mm=args.id_threshold,
        pred_name=f"prediction mask {args.pred}",
        gt_name=f"ground truth mask {args.gt}",
        ignore=ignore,
    )
    print(result.table())
    if args.json:
        write_json_atomic(result.to_json(), args.json)
    if args.csv:
        write_text_atomic(result.to_csv(), args.csv)
    return 0


def _grid_text(image) -> str:
    from ..io import describe

    return describe(image)
