"""``spineseg measure``: vertebral measurements and plausibility flags of any vertebra label map."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--labels", required=True, type=Path, help="vertebra label map (VerSe ids), e.g. a _seg-vert_msk")
    p.add_argument(
        "--image", type=Path, help="the CT on the label map's grid (for the trabecular core attenuation in HU)"
    )
    p.add_argument(
        "--centroids",
        type=Path,
        help="centroids for the spacing checks (VerSe _ctd.json, .mrk.json or .csv; default: body centres of the mask)",
    )
    p.add_argument("--json", type=Path, help="write the measurements and flags as JSON here")
    p.add_argument("--csv", type=Path, help="write the per-vertebra table as CSV here")
    p.add_argument(
        "--not-hu", action="store_true", help="the image is not CT in Hounsfield units (MR): no core attenuation"
    )


def run(args: argparse.Namespace) -> int:
    from ..body_centroids import body_centroids
    from ..errors import InputError
    from ..geometry import Grid
    from ..io import read_centroids, read_image, read_labelmap, require_labels, write_json_atomic, write_text_atomic
    from ..measurements import measure_vertebrae
    from ..pipeline.checks import ct_intensity_warning
    from ..plausibility import review
    from ..report.case_table import case_table, measurements_csv

    labelmap = read_labelmap(args.labels)
    require_labels(labelmap, args.labels)
    image = None
    warning = None
    if args.image:
        image = read_image(args.image)
        if not Grid.of(image).same_as(Grid.of(labelmap)):
            raise InputError(args.image, f"the image is not on the grid of the label map {args.labels}")
        warning = None if args.not_hu else ct_intensity_warning(image)
    centroids = read_centroids(args.centroids, reference=labelmap) if args.centroids else body_centroids(labelmap)
    hounsfield = image is not None and not args.not_hu and warning is None
    measurements = measure_vertebrae(labelmap, image, hounsfield=hounsfield)
    rev = review(centroids, labelmap, input_warning=warning, image=image if hounsfield else None)
    print(case_table(centroids, measurements, rev))
    if args.json:
        doc = {"labels": str(args.labels), **measurements.as_dict(), "review": rev.as_dict()}
        write_json_atomic(doc, args.json)
    if args.csv:
        write_text_atomic(measurements_csv(measurements, rev), args.csv)
    return 0
