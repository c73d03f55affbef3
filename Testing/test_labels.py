"""Tests of the label table (SpineSegLib.labels) against the VerSe convention, DICOM codes and real data."""

from __future__ import annotations

import itertools
import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from SpineSegLib import labels as L

REAL_TS = Path(__file__).parent / "data" / "real" / "totalseg_example_abdomen_ct"

# The VerSe convention, written out here from the VerSe papers / README (not read from the module).
VERSE_NAMES = (
    {i: f"C{i}" for i in range(1, 8)}
    | {7 + n: f"T{n}" for n in range(1, 13)}
    | {19 + n: f"L{n}" for n in range(1, 6)}
    | {25: "L6", 28: "T13"}
)
CRANIAL_TO_CAUDAL = [*range(1, 20), 28, *range(20, 26), 26, 27]

# SNOMED CT codes of the vertebrae as DICOM PS3.16 (CID 7304 / Slicer's anatomy list) gives them.
DICOM_SNOMED = {
    "C1": "14806007", "C2": "39976000", "C3": "113205007", "C4": "5329002", "C5": "36978003",
    "C6": "36054005", "C7": "87391001", "T1": "64864005", "T2": "53733008", "T3": "1626008",
    "T4": "73071006", "T5": "56401006", "T6": "45296009", "T7": "62487009", "T8": "11068009",
    "T9": "82687006", "T10": "7610001", "T11": "12989004", "T12": "23215003", "L1": "66794005",
    "L2": "14293000", "L3": "36470004", "L4": "11994002", "L5": "49668003",
}  # fmt: skip

# TotalSegmentator v2 'total' class names of ids 26..50 (its map_to_binary.py).
TS_VERTEBRAE = {26: "vertebrae_S1"} | {
    ts: f"vertebrae_{name}"
    for ts, name in zip(
        range(27, 51),
        [f"L{n}" for n in range(5, 0, -1)] + [f"T{n}" for n in range(12, 0, -1)] + [f"C{n}" for n in range(7, 0, -1)],
    )
}


def test_ids_names_regions():
    assert set(L.LABELS) == set(range(1, 29))
    for label, name in VERSE_NAMES.items():
        assert L.name_of(label) == name
        assert L.get(label).id == label
        region = {"C": L.CERVICAL, "T": L.THORACIC, "L": L.LUMBAR}[name[0]]
        assert L.region_of(label) == region
    assert L.region_of(26) == L.SACRAL
    assert L.region_of(27) == L.COCCYGEAL
    assert L.id_of("sacrum") == 26
    assert L.id_of("coccyx") == 27
    assert L.id_of("S1") == 26  # TotalSegmentator's / common name for the sacrum's top
    assert set(L.VERTEBRA_LABELS) == set(VERSE_NAMES)
    assert frozenset({25, 28}) == L.TRANSITIONAL_LABELS
    assert all(L.is_known(i) for i in range(1, 29))
    assert not any(L.is_known(i) for i in (0, 29, -1, 100, 2.5, "C1", None))


def test_id_name_round_trip_for_every_id():
    for label in L.LABELS:
        name = L.name_of(label)
        assert L.id_of(name) == label
        assert L.id_of(name.lower()) == label
        assert L.id_of(f"  {name.upper()} ") == label
    # Numpy integers and integral floats from a float mask are the same ids.
    assert L.name_of(np.uint8(20)) == "L1"
    assert L.name_of(np.float64(28.0)) == "T13"


def test_anatomical_order():
    order = L.anatomical_order(L.LABELS)
    assert order == CRANIAL_TO_CAUDAL
    names = [L.name_of(i) for i in order]
    assert names.index("T13") == names.index("T12") + 1 == names.index("L1") - 1
    assert names.index("L6") == names.index("L5") + 1
    shuffled = list(L.LABELS)
    random.Random(3).shuffle(shuffled)
    assert L.anatomical_order(shuffled) == CRANIAL_TO_CAUDAL
    assert L.anatomical_order([20, 28, 19, np.int64(25), 24]) == [19, 28, 20, 24, 25]
    assert all(type(i) is int for i in L.anatomical_order([np.int64(3), np.uint8(1)]))
    assert [L.get(i).order for i in order] == list(range(28))

    assert L.neighbours_in_order(19) == (18, 28)
    assert L.neighbours_in_order(28) == (19, 20)
    assert L.neighbours_in_order(24) == (23, 25)
    assert L.neighbours_in_order(25) == (24, 26)
    assert L.neighbours_in_order(1) == (None, 2)
    assert L.neighbours_in_order(27) == (26, None)


@pytest.mark.parametrize("bad", [0, 29, -3, 250, 3.5, "L1", None])
def test_unknown_id_raises_key_error_naming_it(bad):
    for f in (L.get, L.name_of, L.region_of):
        with pytest.raises(KeyError, match=re.escape(repr(bad))):
            f(bad)
    with pytest.raises(KeyError, match=re.escape(repr(bad))):
        L.anatomical_order([1, bad])


@pytest.mark.parametrize("bad", ["T14", "L7", "C0", "", "vertebra", 20])
def test_unknown_name_raises_key_error_naming_it(bad):
    with pytest.raises(KeyError, match=re.escape(repr(bad))):
        L.id_of(bad)


def test_from_totalsegmentator_by_name():
    for ts, ts_name in TS_VERTEBRAE.items():
        verse = L.from_totalsegmentator(ts)
        name = ts_name.removeprefix("vertebrae_")
        if name == "S1":
            assert verse == 26 == L.id_of("sacrum")
        else:
            assert L.name_of(verse) == name
            assert verse == 51 - ts
    assert L.from_totalsegmentator(25) == 26  # TotalSegmentator's "sacrum": the rest of the VerSe sacrum
    for bad in (0, 24, 51, 117):
        with pytest.raises(KeyError, match=str(bad)):
            L.from_totalsegmentator(bad)


def test_from_totalsegmentator_matches_real_remapped_mask():
    """The bundled mask is TotalSegmentator ids 26..33 (S1, L5..T11) remapped to VerSe ids (README)."""
    readme = (REAL_TS / "README.txt").read_text()
    assert "26..33 = S1,L5,L4,L3,L2,L1,T12,T11" in readme
    assert "VerSe ids 18..24 (T11..L5) + 26 (S1)" in readme
    ts_present = range(26, 34)

    mask = sitk.ReadImage(str(REAL_TS / "derived_vert_verse-labels.nii.gz"))
    arr = sitk.GetArrayFromImage(mask)
    present, counts = np.unique(arr[arr > 0], return_counts=True)
    assert sorted(L.from_totalsegmentator(ts) for ts in ts_present) == present.tolist()

    # The voxel counts in the derived centroid file belong to the same labels.
    world = json.loads((REAL_TS / "derived_vert_ctd_world.json").read_text())["centroids_world_RAS_mm"]
    assert {int(k): v["nvox"] for k, v in world.items()} == dict(zip(present.tolist(), counts.tolist()))

    # Anatomy agrees: in anatomical order the labels run from head to feet (LPS z falls).
    kji = {lab: np.argwhere(arr == lab).mean(axis=0) for lab in present.tolist()}
    z = [mask.TransformContinuousIndexToPhysicalPoint(kji[lab][::-1].tolist())[2] for lab in L.anatomical_order(kji)]
    assert all(a > b for a, b in itertools.pairwise(z)), z


def _lab(rgb) -> np.ndarray:
    """CIE L*a*b* (D65) of an sRGB 0..255 colour (standard formulas)."""
    c = np.asarray(rgb, float) / 255.0
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = m @ c / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def test_colours_distinct():
    colors = {i: L.get(i).color for i in L.LABELS}
    assert len(set(colors.values())) == len(colors)
    for i, c in colors.items():
        assert len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c), i
        np.testing.assert_allclose(L.get(i).color_float, np.asarray(c) / 255.0)
    # Neighbours in the spine, also when a transitional vertebra is absent (T12-L1, L5-sacrum),
    # differ clearly (CIE76 delta E >= 25; about 2 is just noticeable).
    order = L.anatomical_order(L.LABELS)
    pairs = set(itertools.pairwise(order)) | {(19, 20), (24, 26)}
    for a, b in pairs:
        de = np.linalg.norm(_lab(colors[a]) - _lab(colors[b]))
        assert de >= 25, (L.name_of(a), L.name_of(b), de)
    # Any two labels are distinguishable.
    for a, b in itertools.combinations(order, 2):
        assert np.linalg.norm(_lab(colors[a]) - _lab(colors[b])) >= 10, (L.name_of(a), L.name_of(b))


def test_snomed_codes():
    codes = {}
    for label, name in VERSE_NAMES.items():
        row = L.get(label)
        assert row.snomed.scheme == "SCT"
        assert row.snomed.value.isdigit()
        if name in DICOM_SNOMED:
            assert row.snomed.value == DICOM_SNOMED[name], name
            assert row.snomed.meaning == f"{name} vertebra"
            assert row.region_snomed is None
            codes[name] = row.snomed.value
    assert len(set(codes.values())) == len(DICOM_SNOMED) == 24

    # T13 and L6 have no code of their own: "Vertebra" with the spine region as modifier.
    t13, l6 = L.get(L.id_of("T13")), L.get(L.id_of("L6"))
    for row in (t13, l6):
        assert (row.snomed.value, row.snomed.meaning, row.snomed.scheme) == ("51282000", "Vertebra", "SCT")
    assert (t13.region_snomed.value, t13.region_snomed.meaning) == ("122495006", "Thoracic spine")
    assert (l6.region_snomed.value, l6.region_snomed.meaning) == ("122496007", "Lumbar spine")
    assert (L.get(26).snomed.value, L.get(26).snomed.meaning) == ("54735007", "Sacrum")
    assert (L.get(27).snomed.value, L.get(27).snomed.meaning) == ("64688005", "Coccyx")
    assert "51282000" not in codes.values()


def test_heatmap_labels():
    # Payer et al. 2020: 26 landmarks C1..L6 then T13; channel = id - 1 except T13 -> 25.
    hm = L.HEATMAP_LABELS
    assert len(hm) == 26
    assert len(set(hm)) == 26
    assert [L.name_of(i) for i in hm[:25]] == [VERSE_NAMES[i] for i in range(1, 26)]
    assert L.name_of(hm[25]) == "T13"
    for channel, label in enumerate(hm):
        assert channel == (25 if label == 28 else label - 1)
    assert set(hm) == set(L.VERTEBRA_LABELS)
    assert 26 not in hm and 27 not in hm


def test_parse_list_takes_names_and_ids():
    assert L.parse_list("L1, l2,20,S") == [20, 21, 20, 26]
    assert L.parse_list("T13,28,") == [28, 28]
    with pytest.raises(KeyError, match="L9"):
        L.parse_list("L1,L9")


def test_discs_and_endplates_have_names_colours_and_the_dicom_disc_codes():
    # DICOM CID 7604 (Intervertebral Disc): the SNOMED CT codes of C2/C3, T12/L1 and L5/S1
    assert L.structure(102).name == "C2/C3 disc" and L.structure(102).snomed.value == "1078209008"
    assert L.structure(119).name == "T12/L1 disc" and L.structure(119).snomed.value == "76206002"
    assert L.structure(124).name == "L5/S1 disc" and L.structure(124).snomed.value == "715056000"
    assert L.structure(128).name == "T13/L1 disc" and L.structure(128).snomed is None  # no code of its own
    assert L.structure(224).kind == "endplate" and L.structure(224).level == 24 and L.structure(224).snomed is None
    assert L.structure(126) is None and L.structure(99) is None and L.structure(20) is None  # sacrum: no disc below
    codes = [L.structure(100 + v).snomed.value for v in range(2, 25)]
    assert len(set(codes)) == len(codes) == 23
    for label in (101, 119, 125, 128, 201, 220, 228):
        row = L.structure(label)
        assert L.any_id_of(row.name) == label and row.color != L.get(row.level).color
    assert L.any_id_of("L3") == 22
    with pytest.raises(KeyError):
        L.any_id_of("L9/L10 disc")
