"""Real labelled CTs as training cases: the image as it is, its mask, estimated body centroids.

``spineseg-train real --image CT --labels MASK --subject NAME --out DATA`` writes one case in
the VerSe/BIDS layout of :mod:`.data`. The localisation networks learn vertebral-body centres,
and most real masks come without them, so the centroid file holds the body centroids estimated
from the mask (:func:`SpineSegLib.body_centroids.body_centroids`, the same estimate that
``bench_real`` scores against). The sacrum (no body centre the networks learn) stays in the mask
and out of the centroid file. ``--remap`` turns a mask's values into VerSe ids (a one-vertebra
TotalSegmentator mask stores 1). The sidecar names the source files, so that a model card can
say which real cases trained it.
"""

from __future__ import annotations

from pathlib import Path

from SpineSegLib import bids
from SpineSegLib.body_centroids import body_centroids
from SpineSegLib.errors import InputError
from SpineSegLib.geometry import Grid
from SpineSegLib.io import read_image, read_labelmap, write_centroids, write_image, write_json_atomic, write_labelmap
from SpineSegLib.labelmap import label_ids
from SpineSegLib.labels import LABELS

#: Labels with no vertebral-body centre in the centroid file (sacrum, coccyx).
NO_CENTRE = frozenset({26, 27})


def parse_remap(pairs: list[str] | None) -> dict[int, int]:
    """``["1:19"]`` -> {1: 19}; a malformed pair is an InputError naming it."""
    out: dict[int, int] = {}
    for pair in pairs or []:
        try:
            a, b = (int(v) for v in pair.split(":"))
        except ValueError:
            raise InputError(None, f"--remap {pair!r}: expected FILE_VALUE:VERSE_ID, e.g. 1:19") from None
        out[a] = b
    return out


def import_real_case(
    image_path: str | Path,
    labels_path: str | Path,
    out: str | Path,
    subject: str,
    remap: dict[int, int] | None = None,
    source: str = "",
) -> bids.CasePaths:
    """Write the real CT ``image_path`` with its vertebra mask as case ``subject`` under ``out``."""
    import SimpleITK as sitk

    image = read_image(image_path)
    mask = read_labelmap(labels_path)
    if remap:
        mask = sitk.ChangeLabel(mask, changeMap={float(a): float(b) for a, b in remap.items()})
    if not Grid.of(mask).same_as(Grid.of(image), tol=1e-3):
        raise InputError(labels_path, f"not on the grid of {image_path}")
    present = label_ids(sitk.GetArrayViewFromImage(mask))
    unknown = [v for v in present if v not in LABELS]
    if unknown:
        raise InputError(labels_path, f"values {unknown} are not VerSe label ids (use --remap)")
    centres = [v for v in present if v not in NO_CENTRE]
    if not centres:
        raise InputError(labels_path, "no vertebra label")
    paths = bids.case_paths(out, subject, "ct")
    paths.image.parent.mkdir(parents=True, exist_ok=True)
    paths.vertebra_mask.parent.mkdir(parents=True, exist_ok=True)
    write_image(image, paths.image)
    write_labelmap(mask, paths.vertebra_mask)
    write_centroids(body_centroids(mask, centres), paths.centroids, reference=mask)
    meta = {
        "kind": "real",
        "source_image": str(image_path),
        "source_labels": str(labels_path),
        "labels": present,
        "centroids": "vertebral-body centroids estimated from the mask (SpineSegLib.body_centroids)",
        "source": source,
    }
    write_json_atomic(meta, paths.sidecar)
    return paths
