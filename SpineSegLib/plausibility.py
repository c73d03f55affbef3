"""Plausibility flags: what about a result the pipeline itself should doubt, said in every output.

A network can name lumbar vertebrae as cervical ones with a confident-looking chain (real CT with
weights trained on phantoms does exactly that). Anatomy knows better: a C2 is not 60 cm3 and C1 and
C2 are not 35 mm apart. :func:`review` checks a result against such facts and returns flags, per
vertebra and per case; it never changes the result.

Checks:

* size: each segmented vertebra's volume against the typical volume of its level (:data:`LEVEL_VOLUME_CM3`).
  People differ in size, so the case's own scale (median ratio over its vertebrae) is judged first
  (outside :data:`CASE_SCALE_RANGE`: "the levels are probably wrong"), then each vertebra against that
  scale (outside :data:`VERTEBRA_RATIO_RANGE`). Vertebrae cut by the field of view are not judged;
* spacing: the distance of consecutive centroids against the typical spacing of that pair
  (:data:`LEVEL_SPACING_MM`), the same two ways (:data:`CASE_SPACING_RANGE`, :data:`PAIR_RATIO_RANGE`);
* the chain rules of the sequence stage (:func:`SpineSegLib.sequence.check_chain`: gaps, order, spacing);
* counts: a T13 or an L6 (transitional anatomy: a count to check against ribs and sacrum);
* confidence: a heatmap response below :data:`WEAK_RESPONSE` (Payer's threshold for a confident landmark);
  a mean segmentation probability below :data:`UNCERTAIN_SEGMENTATION` over the vertebra's voxels;
* input: the input check's warning (not CT in HU, not an MR) becomes a case flag;
* ribs (CT in Hounsfield units with a label map): a rib on a vertebra named cervical or lumbar, or rib-free
  vertebrae named T2-T11 at the end of the rib cage (:mod:`SpineSegLib.rib_cues`);
* sacrum (the same): a free vertebra below a last vertebra named L5 or L6, or the sacrum right below one
  named higher (:mod:`SpineSegLib.sacrum_cue`);
* completeness (the same): a free vertebra below a last vertebra above L5 is in the image but not in the
  result (``incomplete``; the names are not doubted for it).

The typical values are the medians of the four manual VerSe masks in ../shared/data/real (verse004 T9-L5,
verse010 L1-L5, gl003 C1-T5, gl017 C1-T4; body-centroid spacing from their manual ``seg-subreg`` centroid
files), interpolated over T6-T8 where none of them has a value; T13 takes T12's and L6 L5's. None of the
real CTs the benchmarks score is among them. The ranges are wide on purpose (normal variation, imperfect
masks): a flag means "look", not "wrong".
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from . import labels as L
from .centroids import Centroids
from .cue_shift import shift_text, suggested_shift
from .labelmap import bounding_boxes
from .rib_cues import RibCue, contradictions, rib_cues
from .sacrum_cue import SacrumCue, sacrum_cue
from .sequence import ChainRules, check_chain

__all__ = ["LEVEL_SPACING_MM", "LEVEL_VOLUME_CM3", "Review", "review"]

#: Typical whole-vertebra volume (cm3) per level: medians of the manual VerSe masks named in the docstring.
LEVEL_VOLUME_CM3: dict[str, float] = {
    "C1": 18.5, "C2": 23.5, "C3": 16.5, "C4": 15.5, "C5": 17.0, "C6": 19.0, "C7": 23.0,
    "T1": 29.5, "T2": 29.5, "T3": 28.0, "T4": 30.0, "T5": 29.0, "T6": 28.75, "T7": 28.5, "T8": 28.25,
    "T9": 28.0, "T10": 31.0, "T11": 36.0, "T12": 41.0, "T13": 41.0,
    "L1": 39.0, "L2": 52.5, "L3": 56.5, "L4": 58.5, "L5": 57.0, "L6": 57.0,
}  # fmt: skip
#: Typical distance (mm) of a vertebral-body centroid to the next one below, keyed by the upper level.
LEVEL_SPACING_MM: dict[str, float] = {
    "C1": 17.65, "C2": 25.15, "C3": 19.5, "C4": 19.6, "C5": 18.85, "C6": 20.15, "C7": 22.05,
    "T1": 24.45, "T2": 24.85, "T3": 24.0, "T4": 25.4, "T5": 24.7, "T6": 24.0, "T7": 23.25, "T8": 22.5,
    "T9": 22.5, "T10": 25.9, "T11": 29.0, "T12": 24.8, "T13": 24.8,
    "L1": 30.35, "L2": 35.35, "L3": 34.5, "L4": 33.15, "L5": 33.15,
}  # fmt: skip
#: A case whose median volume ratio (measured / typical) falls outside this range has the wrong levels, or
#: is no adult spine at the scan's stated spacing.
CASE_SCALE_RANGE = (0.4, 2.2)
#: One vertebra against its case's scale.
VERTEBRA_RATIO_RANGE = (0.45, 2.2)
#: The same for centroid spacing (a length: the cube root of the volume range, rounded outwards).
CASE_SPACING_RANGE = (0.7, 1.4)
PAIR_RATIO_RANGE = (0.6, 1.6)
#: Heatmap response below which a landmark is weak (Payer et al.: 0.25 for a confident maximum).
WEAK_RESPONSE = 0.25
#: A vertebra whose voxels have a mean segmentation probability below this is flagged: the mask threshold
#: is 0.5, so a mean near it says most of the mask barely passed (set a priori, halfway between 0.5 and 1).
UNCERTAIN_SEGMENTATION = 0.75


@dataclass
class Review:
    """Flags of one result: ``case`` for the whole result, ``vertebrae`` per VerSe id (text, one line each)."""

    case: list[str] = field(default_factory=list)
    vertebrae: dict[int, list[str]] = field(default_factory=dict)
    size_scale: float | None = None  # median measured / typical volume
    spacing_scale: float | None = None  # median measured / typical spacing
    identification_doubtful: bool = False
    incomplete: bool = False  # a vertebra in the image is missing from the result (below the chain's end)
    segmentation_probability: dict[int, float] = field(default_factory=dict)  # mean per vertebra, where known
    ribs: dict[int, RibCue] = field(default_factory=dict)  # rib cue per vertebra, where the CT was looked at
    sacrum: SacrumCue | None = None  # what lies below the last vertebra, where the CT was looked at
    #: Levels (positive: towards the feet) every name would move to agree with the ribs and the sacrum.
    suggested_shift: int | None = None

    @property
    def flagged(self) -> bool:
        return bool(self.case or any(self.vertebrae.values()))

    def flags_of(self, label: int) -> list[str]:
        return list(self.vertebrae.get(int(label), []))

    def as_dict(self) -> dict:
        return {
            "flagged": self.flagged,
            "identification_doubtful": self.identification_doubtful,
            "incomplete": self.incomplete,
            "case": list(self.case),
            "vertebrae": {L.name_of(k): list(v) for k, v in self.vertebrae.items() if v},
            "size_scale": None if self.size_scale is None else round(self.size_scale, 3),
            "spacing_scale": None if self.spacing_scale is None else round(self.spacing_scale, 3),
            "segmentation_probability": {
                L.name_of(k): round(v, 3) for k, v in self.segmentation_probability.items() if L.is_known(k)
            },
            "ribs": {L.name_of(k): {"left": c.left, "right": c.right} for k, c in self.ribs.items()},
            "suggested_shift": self.suggested_shift,
            "below_last": None
            if self.sacrum is None
            else {"vertebra": L.name_of(self.sacrum.label), "below": self.sacrum.below},
        }

    def lines(self) -> list[str]:
        """Every flag as one line, case flags first (for a terminal, a snapshot, a log)."""
        out = list(self.case)
        for lab in L.anatomical_order(self.vertebrae):
            out += [f"{L.name_of(lab)}: {text}" for text in self.vertebrae[lab]]
        return out


def _add(flags: dict[int, list[str]], label: int, text: str) -> None:
    flags.setdefault(int(label), []).append(text)


def vertebra_volumes(labelmap: sitk.Image) -> tuple[dict[int, float], set[int]]:
    """Volume (cm3) of each vertebra label, and the labels cut by the image's edge."""
    arr = sitk.GetArrayViewFromImage(labelmap)
    if arr.dtype.kind not in "iu":
        arr = np.rint(arr).astype(np.int32)
    arr = np.asarray(arr)
    boxes = bounding_boxes(arr)
    voxel = float(np.prod(labelmap.GetSpacing())) / 1000.0
    volumes, cut = {}, set()
    for lab, sl in boxes.items():
        if not L.is_known(lab) or lab not in L.VERTEBRA_LABELS:
            continue
        volumes[lab] = float(np.count_nonzero(arr[sl] == lab)) * voxel
        if any(s.start == 0 or s.stop == n for s, n in zip(sl, arr.shape)):
            cut.add(lab)
    return volumes, cut


def _scale_checks(
    ratios: Mapping[tuple[int, ...], float],
    case_range: tuple[float, float],
    item_range: tuple[float, float],
) -> tuple[float | None, list[tuple[int, ...]]]:
    """The median ratio, and the keys whose ratio / median falls outside ``item_range``."""
    if not ratios:
        return None, []
    scale = float(np.median(list(ratios.values())))
    odd = [k for k, r in ratios.items() if not (item_range[0] <= r / scale <= item_range[1])]
    return scale, odd


def review(
    centroids: Centroids,
    labelmap: sitk.Image | None = None,
    *,
    input_warning: str | None = None,
    rules: ChainRules | None = None,
    volumes: Mapping[int, float] | None = None,
    segmentation_confidence: Mapping[int, float] | None = None,
    image: sitk.Image | None = None,
) -> Review:
    """Flags of a result (centroids in LPS mm with their confidences, optional instance label map).

    ``volumes`` (cm3 per label) may be given instead of being counted from ``labelmap``;
    ``segmentation_confidence``: each vertebra's mean segmentation probability, where the method has one;
    ``image``: the CT in Hounsfield units the label map lies on, for the rib cues (ignored with an
    ``input_warning``: without Hounsfield units bone cannot be told by its value).
    """
    out = Review()
    out.segmentation_probability = {int(k): float(v) for k, v in (segmentation_confidence or {}).items()}
    flags: dict[int, list[str]] = {}
    if input_warning:
        out.case.append(f"input: {input_warning}")

    # Size of each vertebra against its level.
    cut: set[int] = set()
    if volumes is None and labelmap is not None:
        volumes, cut = vertebra_volumes(labelmap)
    volumes = dict(volumes or {})
    ratios = {
        (lab,): v / LEVEL_VOLUME_CM3[L.name_of(lab)]
        for lab, v in volumes.items()
        if lab not in cut and v > 0 and L.name_of(lab) in LEVEL_VOLUME_CM3
    }
    out.size_scale, odd = _scale_checks(ratios, CASE_SCALE_RANGE, VERTEBRA_RATIO_RANGE)
    if out.size_scale is not None and not (CASE_SCALE_RANGE[0] <= out.size_scale <= CASE_SCALE_RANGE[1]):
        out.identification_doubtful = True
        out.case.append(
            f"vertebra sizes: {out.size_scale:.1f}x the typical volume of the levels they are named "
            "(the levels are probably wrong, or the scan's spacing is)"
        )
        for (lab,), _r in ratios.items():
            typical = LEVEL_VOLUME_CM3[L.name_of(lab)]
            _add(flags, lab, f"volume {volumes[lab]:.0f} cm3, typical for {L.name_of(lab)}: {typical:.0f} cm3")
    else:
        for (lab,) in odd:
            typical = LEVEL_VOLUME_CM3[L.name_of(lab)] * (out.size_scale or 1.0)
            _add(flags, lab, f"volume {volumes[lab]:.0f} cm3, unusual next to its neighbours (~{typical:.0f} cm3)")

    # Spacing of consecutive centroids against the typical spacing of that pair.
    present = [lab for lab in L.anatomical_order(centroids.labels) if lab in L.VERTEBRA_LABELS]
    pairs = {}
    for a, b in itertools.pairwise(present):
        if L.neighbours_in_order(a)[1] == b and L.name_of(a) in LEVEL_SPACING_MM:
            d = float(np.linalg.norm(np.asarray(centroids[a]) - np.asarray(centroids[b])))
            pairs[(a, b)] = d / LEVEL_SPACING_MM[L.name_of(a)]
    out.spacing_scale, odd_pairs = _scale_checks(pairs, CASE_SPACING_RANGE, PAIR_RATIO_RANGE)
    if out.spacing_scale is not None and not (CASE_SPACING_RANGE[0] <= out.spacing_scale <= CASE_SPACING_RANGE[1]):
        out.identification_doubtful = True
        out.case.append(
            f"vertebra spacing: {out.spacing_scale:.1f}x the typical spacing of the levels they are named "
            "(the levels are probably wrong, or the scan's spacing is)"
        )
    else:
        for a, b in odd_pairs:
            d = pairs[(a, b)] * LEVEL_SPACING_MM[L.name_of(a)]
            _add(flags, b, f"{d:.0f} mm from {L.name_of(a)}, unusual next to the other spacings")

    # Chain rules, counts, confidence.
    out.case += [f"chain: {p}" for p in check_chain(centroids.subset(present), rules)]
    for lab, what in ((28, "a 13th thoracic vertebra"), (25, "a 6th lumbar vertebra")):
        if lab in centroids:
            _add(flags, lab, f"{what} (transitional anatomy): check the count against the ribs and the sacrum")
    for lab in present:
        conf = centroids.confidence_of(lab)
        if conf is not None and conf < WEAK_RESPONSE:
            _add(flags, lab, f"weak heatmap response {conf:.2f}")
    for lab, p in sorted(out.segmentation_probability.items()):
        if p < UNCERTAIN_SEGMENTATION and L.is_known(lab):
            _add(flags, lab, f"uncertain segmentation (mean probability {p:.2f})")
    if image is not None and labelmap is not None and not input_warning:
        _rib_checks(out, flags, image, labelmap, centroids.subset(present))
        _sacrum_check(out, flags, image, labelmap, centroids.subset(present))
        out.suggested_shift = suggested_shift(out.ribs, out.sacrum)
        if out.suggested_shift:
            cued = list(out.ribs) + ([out.sacrum.label] if out.sacrum else [])
            out.case.append(f"the ribs and the sacrum agree with {shift_text(out.suggested_shift, cued)}")
    out.vertebrae = {lab: flags[lab] for lab in L.anatomical_order(flags)}
    return out


def _rib_checks(
    out: Review, flags: dict[int, list[str]], image: sitk.Image, labelmap: sitk.Image, centroids: Centroids
) -> None:
    """Rib cues against the names: each contradiction is a vertebra flag and makes the levels doubtful."""
    out.ribs = rib_cues(image, labelmap, centroids)
    found = contradictions(out.ribs)
    for lab, text in found.items():
        _add(flags, lab, text)
    if found:
        out.identification_doubtful = True
        names = ", ".join(L.name_of(lab) for lab in L.anatomical_order(found))
        out.case.append(f"ribs: {names} contradict their names (the levels are probably wrong)")


def _sacrum_check(
    out: Review, flags: dict[int, list[str]], image: sitk.Image, labelmap: sitk.Image, centroids: Centroids
) -> None:
    """What lies below the last vertebra against its name: a contradiction makes the levels doubtful."""
    out.sacrum = sacrum_cue(image, labelmap, centroids)
    text = out.sacrum.contradiction() if out.sacrum else None
    if text:
        _add(flags, out.sacrum.label, text)
        out.identification_doubtful = True
        out.case.append(f"sacrum: {text}")
    missed = out.sacrum.missed() if out.sacrum else None
    if missed:
        _add(flags, out.sacrum.label, missed)
        out.incomplete = True
        out.case.append(f"completeness: {missed}")


def flag_columns(rev: Review, labels: Sequence[int]) -> dict[int, str]:
    """One short text per label (its flags joined), for tables."""
    return {lab: "; ".join(rev.flags_of(lab)) for lab in labels}
