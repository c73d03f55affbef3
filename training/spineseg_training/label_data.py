"""Training cases with real vertebra shapes: CTs painted on real VerSe label maps.

``spineseg-train paint --masks FOLDER --out DATA --draws N`` finds every
``*_seg-vert_msk.nii.gz`` under FOLDER that has a VerSe body-centroid file beside it
(``*_ctd.json``, the subject's first one), and writes N cases per mask in the VerSe/BIDS
layout of :mod:`.data`, each a new appearance (``SpineSegLib.phantom.from_labels``) of the
same real shapes: subject ``<subject>paint<k>``. The spatial augmentation of training then
deforms them (elastic, rotation, scaling). A case is written once; its sidecar marks it complete.
"""

from __future__ import annotations

from pathlib import Path

from SpineSegLib import bids
from SpineSegLib.errors import SpineSegError
from SpineSegLib.io import (
    read_centroids,
    read_labelmap,
    write_centroids,
    write_image,
    write_json_atomic,
    write_labelmap,
)
from SpineSegLib.phantom.from_labels import paint_ct_on_labels


def find_label_maps(folder: str | Path) -> list[tuple[str, Path, Path]]:
    """(subject, mask, centroid file) for each vertebra mask under ``folder`` with a centroid file, by subject."""
    folder = Path(folder)
    found: dict[str, tuple[str, Path, Path]] = {}
    for mask in sorted(folder.rglob("*_seg-vert_msk.nii.gz")):
        subject = mask.name.split("_")[0]
        ctds = sorted(mask.parent.glob(f"{subject}_*ctd.json"))
        if ctds and subject not in found:
            found[subject] = (subject, mask, ctds[0])
    if not found:
        raise SpineSegError(f"{folder}: no *_seg-vert_msk.nii.gz with a *_ctd.json beside it")
    return list(found.values())


def paint_dataset(masks: str | Path, out: str | Path, draws: int, first_seed: int = 0, progress: bool = True):
    """Write ``draws`` painted CTs of every label map under ``masks`` into the VerSe tree ``out``."""
    from tqdm import tqdm

    jobs = [(s, m, c, k) for s, m, c in find_label_maps(masks) for k in range(draws)]
    written = []
    for n, (subject, mask_path, ctd_path, k) in enumerate(tqdm(jobs, desc="paint", disable=not progress)):
        name = f"{subject.removeprefix('sub-')}paint{k:02d}"
        paths = bids.case_paths(out, name, "ct")
        written.append(paths)
        if paths.sidecar.exists():
            continue
        mask = read_labelmap(mask_path)
        centroids = read_centroids(ctd_path, reference=mask)
        painted = paint_ct_on_labels(mask, seed=first_seed + n)
        paths.image.parent.mkdir(parents=True, exist_ok=True)
        paths.vertebra_mask.parent.mkdir(parents=True, exist_ok=True)
        write_image(painted.image, paths.image)
        write_labelmap(painted.labels, paths.vertebra_mask)
        write_centroids(centroids, paths.centroids, reference=painted.labels)
        meta = dict(painted.meta, source_mask=mask_path.name, source_centroids=ctd_path.name)
        meta["attribution"] = "VerSe label map, CC BY-SA 4.0 (Sekuboyina et al. 2021; Loeffler et al. 2020)"
        write_json_atomic(meta, paths.sidecar)
    return written
