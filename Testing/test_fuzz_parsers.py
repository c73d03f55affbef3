"""Property-based fuzzing (hypothesis) of every parser a user's file reaches (issue 16).

For NIfTI and MetaImage headers, VerSe centroid files, Slicer markups, centroid CSV, the model manifest and
model cards: whatever the bytes, the parser returns a result or raises SpineSegError (one line naming the
file, exit 2 in the CLI); any other exception is a bug. Inputs start from a valid file and have fields
replaced by arbitrary values (numbers of every kind, wrong types, NaN, huge sizes), or are arbitrary JSON.

A parser that hangs (ITK once looped forever on a negative NDims) must fail the run, not stall CI: each test
runs under a watchdog (:data:`HANG_S`) that dumps every thread's stack and ends the process. It works where
the stuck code is C++ and never returns to Python, which a Python signal handler would not.
"""

from __future__ import annotations

import faulthandler
import json
import math
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

hypothesis = pytest.importorskip("hypothesis", reason="property-based fuzzing needs hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from SpineSegLib.errors import SpineSegError  # noqa: E402
from SpineSegLib.io import read_centroids, read_image  # noqa: E402
from SpineSegLib.models import ModelCard  # noqa: E402
from SpineSegLib.models.manifest import Manifest  # noqa: E402

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: Seconds one fuzz test may take (all its 120 examples) before the watchdog ends the process: about 100x the
#: slowest (under 1.5 s on 2 cores).
HANG_S = 120


@pytest.fixture(autouse=True)
def watchdog():
    """End the process with every thread's stack if the test hangs (in C++ as well as in Python)."""
    faulthandler.dump_traceback_later(HANG_S, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=20,
)
numbers = (
    st.integers(-(2**31), 2**31 - 1)
    | st.floats(allow_nan=True, allow_infinity=True, width=32)
    | st.sampled_from([0, -1, 1, 1e-30, 1e30, 65535])
)
wrong_types = json_values | numbers.map(lambda v: v if not (isinstance(v, float) and math.isnan(v)) else None)


def parses_or_refuses(parse, path: Path):
    """The parse result, or None when it raised SpineSegError naming ``path``; anything else fails the test."""
    try:
        return parse(path)
    except SpineSegError as exc:
        assert str(path.name) in str(exc) or str(path) in str(exc), f"the message does not name the file: {exc}"
        return None


def _tmp(suffix: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="fuzz-"))
    return folder / f"case{suffix}"


# ----------------------------------------------------------------------------------------------
# NIfTI-1 headers: a valid 6x5x4 int16 file with one field replaced

_NIFTI_FIELDS = {  # name: (byte offset, struct format, count)
    "dim": (40, "h", 8),
    "datatype": (70, "h", 1),
    "bitpix": (72, "h", 1),
    "pixdim": (76, "f", 8),
    "vox_offset": (108, "f", 1),
    "scl_slope": (112, "f", 1),
    "scl_inter": (116, "f", 1),
    "qform_code": (252, "h", 1),
    "sform_code": (254, "h", 1),
    "quatern": (256, "f", 6),
    "srow": (280, "f", 12),
}


def _valid_nifti(path: Path) -> bytes:
    img = sitk.GetImageFromArray(np.arange(120, dtype=np.int16).reshape(4, 5, 6))
    img.SetSpacing((0.8, 0.9, 2.5))
    sitk.WriteImage(img, str(path))
    return path.read_bytes()


@st.composite
def nifti_field(draw):
    name = draw(st.sampled_from(sorted(_NIFTI_FIELDS)))
    _, fmt, count = _NIFTI_FIELDS[name]
    if fmt == "h":
        values = draw(st.lists(st.integers(-(2**15), 2**15 - 1), min_size=count, max_size=count))
    else:
        values = draw(
            st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True), min_size=count, max_size=count)
        )
    return name, values


@FUZZ
@given(field=nifti_field(), flip=st.none() | st.tuples(st.integers(0, 347), st.integers(0, 255)))
def test_nifti_header_fields(field, flip):
    path = _tmp(".nii")
    data = bytearray(_valid_nifti(path))
    name, values = field
    offset, fmt, count = _NIFTI_FIELDS[name]
    struct.pack_into(f"<{count}{fmt}", data, offset, *values)
    if flip is not None:
        data[flip[0]] = flip[1]
    path.write_bytes(bytes(data))
    image = parses_or_refuses(read_image, path)
    if image is not None:  # what is accepted is a usable volume
        assert image.GetDimension() == 3
        assert all(math.isfinite(s) and s > 0 for s in image.GetSpacing())


@FUZZ
@given(cut=st.integers(0, 700))
def test_nifti_cut_short(cut):
    path = _tmp(".nii.gz" if cut % 2 else ".nii")
    full = _valid_nifti(path)
    path.write_bytes(full[:cut])
    parses_or_refuses(read_image, path)


# ----------------------------------------------------------------------------------------------
# MetaImage headers

_MHA_KEYS = (
    "NDims",
    "DimSize",
    "ElementSpacing",
    "ElementType",
    "Offset",
    "TransformMatrix",
    "ElementNumberOfChannels",
)


@st.composite
def mha_header(draw):
    header = {
        "ObjectType": "Image",
        "NDims": "3",
        "DimSize": "6 5 4",
        "ElementSpacing": "0.8 0.9 2.5",
        "Offset": "0 0 0",
        "TransformMatrix": "1 0 0 0 1 0 0 0 1",
        "ElementType": "MET_SHORT",
    }
    for key in draw(st.lists(st.sampled_from(_MHA_KEYS), max_size=3, unique=True)):
        if key == "DimSize":  # tiny, zero, negative or impossibly large: a plausible big volume is just slow
            sizes = st.integers(-3, 40) | st.integers(2**31, 2**63 - 1) | st.just(2**31 - 1)
            header[key] = " ".join(str(v) for v in draw(st.lists(sizes, max_size=4)))
            continue
        header[key] = draw(
            st.lists(numbers, min_size=0, max_size=10).map(lambda v: " ".join(str(x) for x in v))
            | st.sampled_from(["MET_UCHAR", "MET_FLOAT", "MET_DOUBLE", "MET_NONE", "nan nan nan", "", "x"])
        )
    return header


@FUZZ
@given(header=mha_header(), payload=st.integers(0, 400))
def test_metaimage_headers(header, payload):
    path = _tmp(".mha")
    text = "".join(f"{k} = {v}\n" for k, v in header.items()) + "ElementDataFile = LOCAL\n"
    path.write_bytes(text.encode() + bytes(range(256)) * 2 + bytes(payload))
    image = parses_or_refuses(read_image, path)
    if image is not None:
        assert all(math.isfinite(s) and s > 0 for s in image.GetSpacing())


# ----------------------------------------------------------------------------------------------
# Centroid files

REFERENCE = sitk.Image(40, 40, 40, sitk.sitkUInt8)


def _read_centroids(path: Path):
    return read_centroids(path, reference=REFERENCE)


@st.composite
def verse_document(draw):
    entries = [{"direction": ["P", "I", "R"]}, {"label": 20, "X": 10.0, "Y": 12.0, "Z": 14.5}]
    entries += draw(
        st.lists(
            st.fixed_dictionaries(
                {},
                optional={"label": wrong_types, "X": wrong_types, "Y": wrong_types, "Z": wrong_types},
            ),
            max_size=4,
        )
    )
    if draw(st.booleans()):
        entries[0] = {"direction": draw(wrong_types)}
    return entries


@FUZZ
@given(document=verse_document() | json_values)
def test_verse_centroid_json(document):
    path = _tmp("_ctd.json")
    path.write_text(json.dumps(document))
    parses_or_refuses(_read_centroids, path)


@st.composite
def markups_document(draw):
    point = {"label": "L1", "position": [1.0, 2.0, 3.0]}
    for key in draw(st.lists(st.sampled_from(["label", "position", "positionStatus"]), max_size=2, unique=True)):
        point[key] = draw(wrong_types)
    markup = {"type": "Fiducial", "coordinateSystem": "LPS", "controlPoints": [point]}
    for key in draw(st.lists(st.sampled_from(["type", "coordinateSystem", "controlPoints"]), max_size=2, unique=True)):
        markup[key] = draw(wrong_types)
    doc = {
        "@schema": "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/Schema/markups-schema-v1.0.3.json#",
        "markups": [markup],
    }
    if draw(st.booleans()):
        doc["markups"] = draw(wrong_types)
    return doc


@FUZZ
@given(document=markups_document())
def test_slicer_markups_json(document):
    path = _tmp(".mrk.json")
    path.write_text(json.dumps(document))
    parses_or_refuses(_read_centroids, path)


csv_cell = st.text(alphabet="0123456789.-+eEnaifLTCS, ;\t\"'x", max_size=8) | numbers.map(str)


@FUZZ
@given(
    header=st.sampled_from(["label,x,y,z", "label;x;y;z", "name,x,y,z", "", "label,x,y"]),
    rows=st.lists(st.lists(csv_cell, min_size=0, max_size=5), max_size=5),
    raw=st.binary(max_size=40),
)
def test_centroid_csv(header, rows, raw):
    path = _tmp(".csv")
    text = header + "\n" + "\n".join(",".join(r) for r in rows)
    path.write_bytes(text.encode() + (raw if rows and rows[0] == [] else b""))
    parses_or_refuses(_read_centroids, path)


# ----------------------------------------------------------------------------------------------
# Model manifest and cards


def _manifest_stage():
    return {"weights": "w.safetensors", "card": "w.json", "sha256": "a" * 64, "card_sha256": "b" * 64}


@st.composite
def manifest_document(draw):
    stage = _manifest_stage()
    for key in draw(st.lists(st.sampled_from(sorted(stage) + ["url", "size_bytes"]), max_size=2, unique=True)):
        stage[key] = draw(wrong_types)
    pipeline = {"title": "t", "method": "payer", "modality": "ct", "stages": {"spine": stage}}
    for key in draw(st.lists(st.sampled_from(["title", "method", "modality", "stages"]), max_size=2, unique=True)):
        pipeline[key] = draw(wrong_types)
    doc = {"schema_version": 1, "pipelines": {"ct-full-spine": pipeline}}
    if draw(st.booleans()):
        doc["pipelines"] = draw(wrong_types)
    return doc


def _use_manifest(path: Path):
    """Everything the CLI asks of a manifest: pipelines, method, modality, title, each stage's entry."""
    manifest = Manifest.load(path)
    for name in manifest.pipelines:
        manifest.method(name)
        manifest.modality(name)
        manifest.title(name)
        for stage in manifest.method(name).stage_names:
            try:
                manifest.entry(name, stage)
            except SpineSegError as exc:
                if "has no model for stage" not in str(exc):
                    raise
    return manifest


@FUZZ
@given(document=manifest_document() | json_values, raw=st.none() | st.binary(max_size=30))
def test_model_manifest(document, raw):
    path = _tmp("_manifest.json")
    path.write_bytes(raw if raw is not None and len(raw) % 3 == 0 else json.dumps(document).encode())
    parses_or_refuses(_use_manifest, path)


def _valid_card() -> dict:
    return {
        "name": "ct-full-spine-spine",
        "stage": "spine",
        "network": {"architecture": "unet", "in_channels": 1, "out_channels": 1, "num_filters": 8, "num_levels": 4},
        "spacing_mm": [8.0, 8.0, 8.0],
        "input_size": [64, 64, 128],
        "intensity": {"kind": "ct_window", "shift": 0.0, "scale": 1.0},
        "labels": [],
        "params": {},
        "method": "payer",
    }


@FUZZ
@given(
    replaced=st.dictionaries(
        st.sampled_from(sorted(ModelCard.__dataclass_fields__) + ["unknown_key"]), wrong_types, max_size=3
    ),
    document=st.none() | json_values,
)
def test_model_card(replaced, document):
    path = _tmp(".json")
    card = document if document is not None else {**_valid_card(), **replaced}
    path.write_text(json.dumps(card))
    parsed = parses_or_refuses(ModelCard.read, path)
    if parsed is not None:  # an accepted card has the types the pipeline relies on
        assert isinstance(parsed.name, str) and isinstance(parsed.stage, str)
        assert isinstance(parsed.network, dict) and isinstance(parsed.intensity, dict)
        assert isinstance(parsed.params, dict) and isinstance(parsed.validation, dict)
        assert len(parsed.spacing_mm) == 3 and all(math.isfinite(s) and s > 0 for s in parsed.spacing_mm)
        assert len(parsed.input_size) == 3 and all(isinstance(n, int) and n > 0 for n in parsed.input_size)
        assert all(isinstance(v, int) for v in parsed.labels)
        assert all(isinstance(v, str) for v in parsed.real_cases)
