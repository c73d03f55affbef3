"""Tests of SpineSegLib.io centroid files: VerSe *_ctd.json, Slicer *.mrk.json and CSV."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial.transform import Rotation

from SpineSegLib import labels as L
from SpineSegLib.centroids import Centroids
from SpineSegLib.errors import InputError
from SpineSegLib.geometry import Grid
from SpineSegLib.io import read_centroids, read_labelmap, write_centroids
from SpineSegLib.labelmap import label_centroids

VERSE = Path("verse_masks_only_no_ct")
IND = VERSE / "IndVertSeg_VerSe"
#: (mask, VerSe body-centroid file, orientation of the mask) for every real VerSe case, under real_data.
VERSE_CASES = {
    "verse004": (IND / "sub-verse004_seg-vert_msk.nii.gz", IND / "sub-verse004_seg-subreg_ctd.json", "PIR"),
    "verse004_float64": (
        VERSE / "anjany_verse_sample/sub-verse004_seg-vert_msk.nii.gz",
        VERSE / "anjany_verse_sample/sub-verse004_seg-subreg_ctd.json",
        "PIR",
    ),
    "verse010": (IND / "sub-verse010_seg-vert_msk.nii.gz", IND / "sub-verse010_seg-subreg_ctd.json", "PIR"),
    "gl003": (IND / "sub-gl003_dir-ax_seg-vert_msk.nii.gz", IND / "sub-gl003_dir-ax_seg-subreg_ctd.json", "LPS"),
    "gl017_float64": (IND / "sub-gl017_seg-vert_msk.nii.gz", IND / "sub-gl017_seg-subreg_ctd.json", "LPS"),
}
TS = Path("totalseg_example_abdomen_ct")


@functools.cache
def mask(path: Path) -> sitk.Image:
    return read_labelmap(path)


def assert_message(excinfo: pytest.ExceptionInfo, path: Path, *fragments: str) -> None:
    message = str(excinfo.value)
    assert str(path) in message, message
    for fragment in fragments:
        assert fragment in message, message


def oblique_reference() -> sitk.Image:
    image = sitk.Image([60, 70, 40], sitk.sitkUInt8)
    image.SetSpacing((0.8, 1.1, 2.5))
    image.SetOrigin((-40.5, 12.25, -300.0))
    image.SetDirection(Rotation.from_euler("zyx", [25.0, -10.0, 8.0], degrees=True).as_matrix().ravel().tolist())
    return image


def some_centroids(reference: sitk.Image, with_confidence: bool = True) -> Centroids:
    """Points spread inside ``reference`` at non-grid positions, labels T12, T13, L1, L6, S."""
    grid = Grid.of(reference)
    rng = np.random.default_rng(11)
    labels = [19, 28, 20, 25, 26]
    index = rng.uniform(0, 1, (len(labels), 3)) * (np.asarray(grid.size) - 1)
    points = dict(zip(labels, grid.index_to_physical(index)))
    conf = {19: 0.93, 20: 1.0 / 3.0, 26: 0.5} if with_confidence else None
    return Centroids(points, conf)


# ----------------------------------------------------------------------------------------
# VerSe files on the real cases


@pytest.mark.parametrize("case", sorted(VERSE_CASES))
def test_real_verse_body_centroids_sit_anterior_in_their_vertebra(real_data, case):
    mask_rel, ctd_rel, orientation = VERSE_CASES[case]
    mask_path, ctd_path = real_data / mask_rel, real_data / ctd_rel
    msk = mask(mask_path)
    assert sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(msk.GetDirection()) == orientation
    ctd = read_centroids(ctd_path, reference=msk)
    whole = label_centroids(msk)
    assert ctd.labels == whole.labels

    # The file's axes are the mask's own: each index maps as SimpleITK maps it.
    entries = json.loads(ctd_path.read_text())[1:]
    assert json.loads(ctd_path.read_text())[0]["direction"] == list(orientation)
    for e in entries:
        itk = msk.TransformContinuousIndexToPhysicalPoint((e["X"], e["Y"], e["Z"]))
        np.testing.assert_allclose(ctd[e["label"]], itk, atol=1e-9)

    for label in ctd.labels:
        offset = ctd[label] - whole[label]  # LPS: y grows towards posterior
        dist = float(np.linalg.norm(offset))
        assert dist < 25.0, (label, offset)
        if label == 1:  # C1 has no body: its centroid is the whole ring's, in the ring's hole
            assert dist < 1.0, offset
            continue
        # The body sits anterior (smaller LPS y), mostly along A-P, in (or at) its own label.
        assert offset[1] < -5.0, (label, offset)
        assert abs(offset[1]) >= max(abs(offset[0]), abs(offset[2])), (label, offset)
        i, j, k = np.round(Grid.of(msk).physical_to_index(ctd[label])[0]).astype(int)
        assert sitk.GetArrayViewFromImage(msk)[k, j, i] == label, label


def test_verse_direction_other_than_the_images_own_is_permuted_and_flipped(real_data, tmp_path):
    msk_path, ctd_path = (real_data / p for p in VERSE_CASES["verse004"][:2])
    msk = mask(msk_path)  # PIR, 1 x 1 x 2 mm, slightly oblique
    whole = label_centroids(msk)
    for code in ("LPS", "RAS", "ASL", "IRP"):
        # Write a VerSe file in another axis order: centre-of-mass indices of the mask reoriented by SimpleITK.
        turned = sitk.DICOMOrient(msk, code)
        arr = sitk.GetArrayFromImage(turned)
        doc = [{"direction": list(code)}]
        for label in whole.labels:
            k, j, i = ndimage.center_of_mass(arr == label)
            doc.append({"label": label, "X": i, "Y": j, "Z": k})
        path = tmp_path / f"sub-x_dir-{code}_ctd.json"
        path.write_text(json.dumps(doc))
        got = read_centroids(path, reference=msk)
        assert got.labels == whole.labels
        np.testing.assert_allclose(got.array(), whole.array(), atol=1e-6)
        # and the PIR file read against the reoriented image gives the same points as against the original
        np.testing.assert_allclose(
            read_centroids(ctd_path, reference=turned).array(),
            read_centroids(ctd_path, reference=msk).array(),
            atol=1e-6,
        )


def test_totalsegmentator_ras_ctd_matches_its_world_coordinates(real_data):
    ts = real_data / TS
    labels_img = mask(ts / "derived_vert_verse-labels.nii.gz")
    ctd = read_centroids(ts / "derived_vert_ctd.json", reference=labels_img)
    world = json.loads((ts / "derived_vert_ctd_world.json").read_text())["centroids_world_RAS_mm"]
    assert ctd.labels == L.anatomical_order(int(k) for k in world)
    spacing = np.asarray(labels_img.GetSpacing())
    whole = label_centroids(labels_img)
    for label, ras in ctd.ras().items():
        expected = np.asarray(world[str(label)]["ras_mm"])
        # The ctd file rounds indices to 0.1 voxel (3 mm voxels: up to 0.15 mm per axis), the
        # world file rounds to 0.01 mm.
        assert np.all(np.abs(ras - expected) <= 0.05 * spacing + 0.006), (label, ras - expected)
        # Both are whole-vertebra centroids (mean voxel index): the same as label_centroids.
        np.testing.assert_allclose(whole.ras()[label], expected, atol=0.006)
        assert np.all(np.abs(ctd[label] - whole[label]) <= 0.05 * spacing + 1e-9)


# ----------------------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize("reference_kind", ["image", "grid"])
def test_verse_round_trip_within_a_thousandth_of_a_voxel(tmp_path, reference_kind):
    image = oblique_reference()
    reference = image if reference_kind == "image" else Grid.of(image)
    original = some_centroids(image)
    path = write_centroids(original, tmp_path / "sub-x_seg-subreg_ctd.json", reference=reference)
    doc = json.loads(path.read_text())
    assert doc[0] == {
        "direction": list(sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(image.GetDirection()))
    }
    assert [e["label"] for e in doc[1:]] == original.labels
    for e in doc[1:]:  # the indices SimpleITK computes for the same points, to 3 decimals
        expected = image.TransformPhysicalPointToContinuousIndex(tuple(original[e["label"]]))
        np.testing.assert_allclose([e["X"], e["Y"], e["Z"]], expected, atol=5e-4 + 1e-9)
    back = read_centroids(path, reference=reference)
    assert back.labels == original.labels
    assert back.confidence == pytest.approx(original.confidence, abs=1e-4)  # an extra key, 4 decimals
    grid = Grid.of(image)
    index_error = np.abs(grid.physical_to_index(back.array()) - grid.physical_to_index(original.array()))
    assert index_error.max() <= 5e-4 + 1e-9


def test_verse_confidence_travels_as_an_extra_key(tmp_path):
    image = oblique_reference()
    points = some_centroids(image, with_confidence=False)
    conf = {lab: 0.5 + 0.01 * n for n, lab in enumerate(points.labels)}
    path = write_centroids(Centroids(dict(points.items()), conf), tmp_path / "c_ctd.json", reference=image)
    doc = json.loads(path.read_text())
    assert all(set(e) == {"label", "X", "Y", "Z", "confidence"} for e in doc[1:])
    bare = write_centroids(points, tmp_path / "bare_ctd.json", reference=image)
    assert all(set(e) == {"label", "X", "Y", "Z"} for e in json.loads(bare.read_text())[1:])
    back = read_centroids(path, reference=image)
    assert back.confidence == pytest.approx(conf, abs=1e-4)


def test_verse_round_trip_on_a_real_pir_mask(real_data, tmp_path):
    msk_path, ctd_path = (real_data / p for p in VERSE_CASES["verse004"][:2])
    msk = mask(msk_path)
    original = read_centroids(ctd_path, reference=msk)
    path = write_centroids(original, tmp_path / "sub-verse004_seg-subreg_ctd.json", reference=msk)
    ours, theirs = json.loads(path.read_text()), json.loads(ctd_path.read_text())
    assert ours[0] == theirs[0] == {"direction": ["P", "I", "R"]}
    for a, b in zip(ours[1:], theirs[1:]):
        assert a["label"] == b["label"]
        np.testing.assert_allclose([a["X"], a["Y"], a["Z"]], [b["X"], b["Y"], b["Z"]], atol=1e-3)


@pytest.mark.parametrize("system", ["LPS", "RAS"])
def test_markups_round_trip_is_exact_and_slicer_shaped(tmp_path, system):
    original = some_centroids(oblique_reference())
    path = write_centroids(original, tmp_path / "centroids.mrk.json", coordinate_system=system)
    back = read_centroids(path)
    assert back.labels == original.labels
    np.testing.assert_allclose(back.array(), original.array(), rtol=0, atol=1e-6)
    assert back.confidence == original.confidence

    doc = json.loads(path.read_text())
    assert doc["@schema"].endswith("markups-schema-v1.0.3.json#")
    (markup,) = doc["markups"]
    assert markup["type"] == "Fiducial" and markup["coordinateSystem"] == system
    assert markup["coordinateUnits"] == "mm"
    assert [cp["label"] for cp in markup["controlPoints"]] == ["T12", "T13", "L1", "L6", "S"]
    flip = np.array([-1.0, -1.0, 1.0]) if system == "RAS" else np.ones(3)
    for cp, label in zip(markup["controlPoints"], original.labels):
        np.testing.assert_array_equal(cp["position"], original[label] * flip)
        assert cp["positionStatus"] == "defined" and cp["associatedNodeID"] == ""
        # Slicer's identity orientation (RAS), expressed in the file's frame
        expected = np.diag([1.0, 1.0, 1.0]) if system == "RAS" else np.diag([-1.0, -1.0, 1.0])
        np.testing.assert_array_equal(np.reshape(cp["orientation"], (3, 3)), expected)
        conf = original.confidence_of(label)
        assert cp["description"] == ("" if conf is None else repr(conf))


@pytest.mark.parametrize("system", ["LPS", "RAS"])
def test_csv_round_trip_is_exact(tmp_path, system):
    original = some_centroids(oblique_reference())
    path = write_centroids(original, tmp_path / "centroids.csv", coordinate_system=system)
    lines = path.read_text().splitlines()
    assert lines[0] == f"# coordinate_system: {system}"
    assert lines[1] == "label,name,x,y,z,confidence"
    assert lines[2].startswith("19,T12,") and lines[3].endswith(",")  # T13 has no confidence
    flip = np.array([-1.0, -1.0, 1.0]) if system == "RAS" else np.ones(3)
    rows = [line.split(",") for line in lines[2:]]
    np.testing.assert_array_equal([[float(v) for v in r[2:5]] for r in rows], original.array() * flip)
    back = read_centroids(path)
    assert back.labels == original.labels
    np.testing.assert_allclose(back.array(), original.array(), rtol=0, atol=1e-6)
    assert back.confidence == original.confidence
    # Without confidences there is no confidence column.
    plain = write_centroids(some_centroids(oblique_reference(), False), tmp_path / "plain.csv")
    assert plain.read_text().splitlines()[1] == "label,name,x,y,z"


def test_lps_and_ras_files_of_the_same_points_agree(tmp_path):
    original = some_centroids(oblique_reference())
    for name in ("a.mrk.json", "a.csv"):
        lps = read_centroids(write_centroids(original, tmp_path / f"lps_{name}", coordinate_system="LPS"))
        ras = read_centroids(write_centroids(original, tmp_path / f"ras_{name}", coordinate_system="ras"))
        np.testing.assert_array_equal(lps.array(), ras.array())


def test_reads_a_file_as_slicer_writes_it(tmp_path):
    # Layout of a point list saved by 3D Slicer 5 (vtkMRMLMarkupsJsonStorageNode), RAS and LPS.
    def slicer_file(system: str, points: list[tuple[str, list[float], str]]) -> dict:
        return {
            "@schema": "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/"
            "Resources/Schema/markups-schema-v1.0.3.json#",
            "markups": [
                {
                    "type": "Fiducial",
                    "coordinateSystem": system,
                    "coordinateUnits": "mm",
                    "locked": False,
                    "fixedNumberOfControlPoints": False,
                    "labelFormat": "%N-%d",
                    "lastUsedControlPointNumber": len(points),
                    "controlPoints": [
                        {
                            "id": str(n + 1),
                            "label": label,
                            "description": "",
                            "associatedNodeID": "vtkMRMLScalarVolumeNode1",
                            "position": pos,
                            "orientation": [-1.0, -0.0, -0.0, -0.0, -1.0, -0.0, 0.0, 0.0, 1.0],
                            "selected": True,
                            "locked": False,
                            "visibility": True,
                            "positionStatus": status,
                        }
                        for n, (label, pos, status) in enumerate(points)
                    ],
                    "measurements": [],
                    "display": {"visibility": True, "opacity": 1.0, "color": [0.4, 1.0, 1.0], "glyphType": "Sphere3D"},
                }
            ],
        }

    ras_path = tmp_path / "F.mrk.json"
    ras_path.write_text(
        json.dumps(
            slicer_file(
                "RAS",
                [
                    ("L1", [10.5, -20.25, 300.0], "defined"),
                    ("l2", [11.0, -19.0, 270.0], "defined"),
                    ("L3", [0, 0, 0], "undefined"),
                ],
            ),
            indent=4,
        )
    )
    with pytest.warns(UserWarning, match=r"control point 3 \(L3\) has no position"):
        got = read_centroids(ras_path)
    assert got.labels == [20, 21]
    np.testing.assert_array_equal(got[20], [-10.5, 20.25, 300.0])
    np.testing.assert_array_equal(got[21], [-11.0, 19.0, 270.0])
    assert got.confidence == {}
    lps = slicer_file("LPS", [("T13", [1.0, 2.0, 3.0], "defined")])
    del lps["markups"][0]["coordinateSystem"]  # the schema's default is LPS
    (tmp_path / "G.mrk.json").write_text(json.dumps(lps))
    np.testing.assert_array_equal(read_centroids(tmp_path / "G.mrk.json")[28], [1.0, 2.0, 3.0])


def test_csv_accepts_label_or_name_columns(tmp_path):
    by_name = tmp_path / "by_name.csv"
    by_name.write_text("# coordinate_system: RAS\nname,x,y,z\nL1,1,2,3\nsacrum,4,5,6\n")
    by_label = tmp_path / "by_label.csv"
    by_label.write_text("# coordinate_system: LPS\nx,y,z,label\n-1,-2,3,20\n-4,-5,6,26\n")
    a, b = read_centroids(by_name), read_centroids(by_label)
    assert a.labels == b.labels == [20, 26]
    np.testing.assert_array_equal(a.array(), b.array())


# ----------------------------------------------------------------------------------------
# Bad files: one clear message naming the file and the entry


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD_VERSE = [{"direction": ["P", "I", "R"]}, {"label": 20, "X": 10.0, "Y": 20.0, "Z": 5.0}]


@pytest.mark.parametrize(
    ("entries", "fragments"),
    [
        ([{"label": 20, "X": 1, "Y": 2, "Z": 3}], ["first entry must be {'direction': [...]}"]),
        ([{"direction": ["P", "A", "R"]}], ["entry 1", "not a valid orientation"]),
        ([{"direction": "PI"}], ["entry 1", "not three axcodes"]),
        ([*GOOD_VERSE, {"label": 21, "X": 1.0, "Z": 3.0}], ["entry 3", "missing 'Y'"]),
        ([GOOD_VERSE[0], {"label": 99, "X": 1, "Y": 2, "Z": 3}], ["entry 2", "label 99 is not a VerSe vertebra id"]),
        ([GOOD_VERSE[0], {"label": "L1", "X": 1, "Y": 2, "Z": 3}], ["entry 2", "not an integer VerSe vertebra id"]),
        ([GOOD_VERSE[0], {"X": 1, "Y": 2, "Z": 3}], ["entry 2", "missing 'label'"]),
        ([*GOOD_VERSE, {"label": 21, "X": "a", "Y": 2, "Z": 3}], ["entry 3", "'X' is not a number"]),
        ([*GOOD_VERSE, [21, 1, 2, 3]], ["entry 3", "expected an object"]),
        ([*GOOD_VERSE, {"label": 20, "X": 1, "Y": 2, "Z": 3}], ["entry 3", "label 20 appears twice (also entry 2)"]),
        ([], ["empty list", "first entry must be"]),
    ],
)
def test_malformed_verse_files(tmp_path, entries, fragments):
    path = write(tmp_path, "bad_ctd.json", json.dumps(entries))
    with pytest.raises(InputError) as e:
        read_centroids(path, reference=oblique_reference())
    assert_message(e, path, *fragments)


def test_verse_invalid_json_and_missing_reference(tmp_path):
    path = write(
        tmp_path,
        "broken_ctd.json",
        '[\n{"direction": ["P", "I", "R"]},\n{"label": 20, "X": 1, "Y": 2, "Z": 3},\n{"label" 21}\n]',
    )
    with pytest.raises(InputError) as e:
        read_centroids(path, reference=oblique_reference())
    assert_message(e, path, "not valid JSON: line 4 column 10")
    good = write(tmp_path, "good_ctd.json", json.dumps(GOOD_VERSE))
    with pytest.raises(InputError) as e:
        read_centroids(good)
    assert_message(e, good, "VerSe", "voxel indices", "needs that image")
    with pytest.raises(InputError) as e:
        write_centroids(Centroids({20: [0, 0, 0]}), tmp_path / "out_ctd.json")
    assert_message(e, tmp_path / "out_ctd.json", "stores voxel indices", "reference")
    assert not (tmp_path / "out_ctd.json").exists()


def test_verse_nan_entries_are_skipped_with_a_warning(tmp_path):
    doc = [
        *GOOD_VERSE,
        {"label": 21, "X": float("nan"), "Y": 2.0, "Z": 3.0},
        {"label": 22, "X": 12.0, "Y": "nan", "Z": 3.0},
    ]
    path = write(tmp_path, "nan_ctd.json", json.dumps(doc))  # Python writes NaN as VerSe files do
    assert "NaN" in path.read_text()
    with pytest.warns(UserWarning) as record:
        got = read_centroids(path, reference=oblique_reference())
    messages = [str(w.message) for w in record]
    assert any(str(path) in m and "entry 3 (label 21, L2) has NaN coordinates; skipped" in m for m in messages)
    assert any("entry 4 (label 22, L3)" in m for m in messages)
    assert got.labels == [20]


def test_verse_points_outside_the_reference_warn(tmp_path):
    doc = [
        {"direction": ["L", "P", "S"]},
        {"label": 20, "X": 10.0, "Y": 20.0, "Z": 5.0},
        {"label": 21, "X": 500.0, "Y": 2.0, "Z": 3.0},
    ]
    path = write(tmp_path, "far_ctd.json", json.dumps(doc))
    with pytest.warns(UserWarning, match=r"centroids of L2 lie outside the reference image"):
        got = read_centroids(path, reference=oblique_reference())
    assert got.labels == [20, 21]


def _markups(points: list[dict], system: str = "LPS", mtype: str = "Fiducial") -> str:
    return json.dumps(
        {"@schema": "x", "markups": [{"type": mtype, "coordinateSystem": system, "controlPoints": points}]}
    )


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (
            _markups([{"label": "L1", "position": [1, 2, 3]}, {"label": "F-1", "position": [1, 2, 3]}]),
            ["control point 2", "label 'F-1' is not a vertebra name"],
        ),
        (
            _markups([{"label": "L1", "position": [1, 2]}]),
            ["control point 1 (L1)", "position must be a list of 3 numbers"],
        ),
        (
            _markups([{"label": "L1", "position": [1, 2, 3]}], system="XYZ"),
            ["coordinateSystem 'XYZ' is not 'LPS' or 'RAS'"],
        ),
        (
            _markups([{"label": "L1", "position": [1, 2, 3]}, {"label": "l1", "position": [1, 2, 4]}]),
            ["control point 2 (l1)", "vertebra L1 appears twice"],
        ),
        (_markups([{"label": "L1", "position": [1, 2, 3]}], mtype="Line"), ["has no point list", "Line"]),
        (json.dumps({"markups": 3}), ["no 'markups' list"]),
    ],
)
def test_malformed_markups_files(tmp_path, text, fragments):
    path = write(tmp_path, "bad.mrk.json", text)
    with pytest.raises(InputError) as e:
        read_centroids(path)
    assert_message(e, path, *fragments)


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("label,name,x,y,z\n20,L1,1,2,3\n", ["missing the '# coordinate_system: LPS' (or RAS) line"]),
        ("# coordinate_system: XYZ\nlabel,x,y,z\n", ["line 1", "coordinate system 'XYZ' is not LPS or RAS"]),
        ("# coordinate_system: LPS\nlabel,name,x,y\n20,L1,1,2\n", ["line 2", "lacks 'z'"]),
        (
            "# coordinate_system: LPS\nlabel,name,x,y,z\n20,L1,1,2,3\n21,L2,1,2\n",
            ["line 4", "expected 5 values", "got 4"],
        ),
        (
            "# coordinate_system: LPS\nlabel,name,x,y,z\n20,L2,1,2,3\n",
            ["line 3", "label 20 (L1) and name 'L2' disagree"],
        ),
        ("# coordinate_system: LPS\n\nlabel,name,x,y,z\n20,L1,one,2,3\n", ["line 4 (L1)", "x is not a number ('one')"]),
        ("# coordinate_system: LPS\nname,x,y,z\nX9,1,2,3\n", ["line 3", "name 'X9' is not a vertebra name"]),
        ("# coordinate_system: LPS\nlabel,x,y,z\n99,1,2,3\n", ["line 3", "label '99' is not a VerSe vertebra id"]),
        ("# coordinate_system: LPS\nlabel,x,y,z\n20,1,2,3\n20,1,2,3\n", ["line 4", "appears twice (also line 3)"]),
        ("# coordinate_system: LPS\n", ["has no header line"]),
    ],
)
def test_malformed_csv_files(tmp_path, text, fragments):
    path = write(tmp_path, "bad.csv", text)
    with pytest.raises(InputError) as e:
        read_centroids(path)
    assert_message(e, path, *fragments)


def test_file_level_errors(tmp_path):
    with pytest.raises(InputError) as e:
        read_centroids(tmp_path / "none.csv")
    assert_message(e, tmp_path / "none.csv", "file not found")
    txt = write(tmp_path, "points.txt", "1 2 3")
    with pytest.raises(InputError) as e:
        read_centroids(txt)
    assert_message(e, txt, "unknown centroid file type")
    with pytest.raises(InputError) as e:
        read_centroids(tmp_path)
    assert_message(e, tmp_path, "is a folder")
    other = write(tmp_path, "other.json", json.dumps({"note": "x", "centroids_world_RAS_mm": {}}))
    with pytest.raises(InputError) as e:
        read_centroids(other, reference=oblique_reference())
    assert_message(e, other, "neither a VerSe centroid list nor a Slicer markups file", "'note'")
    with pytest.raises(InputError) as e:
        write_centroids(Centroids({20: [0, 0, 0]}), tmp_path / "out.txt")
    assert_message(e, tmp_path / "out.txt", "unknown centroid file type")
    with pytest.raises(ValueError, match="coordinate_system"):
        write_centroids(Centroids({20: [0, 0, 0]}), tmp_path / "out.csv", coordinate_system="XYZ")
    with pytest.raises(ValueError, match="not VerSe vertebra ids"):
        write_centroids(Centroids({105: [0, 0, 0]}), tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()
