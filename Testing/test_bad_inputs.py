"""The bad-input suite (issue 16): every way a user's file or option can be wrong, through the real CLI.

Each case is one command a new user could type. It must end with exit code 2, exactly one line
``spineseg...: error: ...`` that names the file or option and says what is wrong (the needle), no
traceback, and no result written. The cases are built in one workspace from a small synthetic CT, its
label map and centroids, and the tiny model set (:mod:`slicer_fixtures`).
"""

from __future__ import annotations

import gzip
import json
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from slicer_fixtures import synthetic_lumbar_ct, write_tiny_resources

from SpineSegLib.cli import main
from SpineSegLib.io import write_centroids, write_image, write_labelmap


@dataclass
class Workspace:
    root: Path
    ct: Path
    gt: Path
    ctd: Path
    resources: Path
    outs: int = 0

    def file(self, name: str, data: bytes | str) -> Path:
        path = self.root / "cases" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path

    def image(self, name: str, array: np.ndarray, spacing=(2.0, 2.0, 2.0), components: bool = False) -> Path:
        img = sitk.GetImageFromArray(array, isVector=components)
        img.SetSpacing(spacing[: img.GetDimension()])
        path = self.root / "cases" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(img, str(path))
        return path

    def labels(self, name: str, array: np.ndarray) -> Path:
        img = sitk.GetImageFromArray(array)
        img.CopyInformation(sitk.ReadImage(str(self.gt)))
        path = self.root / "cases" / name
        write_labelmap(img, path)
        return path

    def out(self, name: str) -> Path:
        """A new output folder per call, so that each case is judged by what it wrote itself."""
        self.outs += 1
        return self.root / "out" / f"{name}{self.outs}"


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    spine = synthetic_lumbar_ct()
    ct, gt, ctd = root / "sub-ok_ct.nii.gz", root / "sub-ok_seg-vert_msk.nii.gz", root / "sub-ok_ctd.json"
    write_image(spine.image, ct)
    write_labelmap(spine.labels, gt)
    write_centroids(spine.centroids, ctd, reference=spine.image)
    resources = write_tiny_resources(root)
    old = os.environ.get("SPINESEG_RESOURCES")
    os.environ["SPINESEG_RESOURCES"] = str(resources)
    yield Workspace(root, ct, gt, ctd, resources)
    if old is None:
        os.environ.pop("SPINESEG_RESOURCES", None)
    else:
        os.environ["SPINESEG_RESOURCES"] = old


def run_args(ws: Workspace, image, name: str, *extra) -> list:
    return ["run", image, "-o", ws.out(name), "--device", "cpu", "--progress", "none", *extra]


def seg_args(ws: Workspace, centroids, name: str, *extra) -> list:
    return run_args(ws, ws.ct, name, "--stages", "segmentation", "--centroids", centroids, *extra)


def _nifti_bytes(ws: Workspace) -> bytes:
    return Path(ws.ct).read_bytes()


def _raw_nifti(ws: Workspace) -> bytearray:
    return bytearray(gzip.decompress(_nifti_bytes(ws)))


def _patched_nifti(ws: Workspace, name: str, offset: int, fmt: str, *values) -> Path:
    data = _raw_nifti(ws)
    struct.pack_into("<" + fmt, data, offset, *values)
    return ws.file(name, bytes(data))


def _dicom_series(ws: Workspace, name: str, z: list[float], blank: bool = False) -> Path:
    folder = ws.root / "cases" / name
    folder.mkdir(parents=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k, zk in enumerate(z):
        arr = np.zeros((8, 8), np.int16) if blank else np.full((8, 8), k * 10, np.int16)
        sl = sitk.GetImageFromArray(arr)
        for tag, value in {
            "0008|0060": "CT",
            "0020|000e": "1.2.3.4",
            "0008|0018": f"1.2.3.4.{k + 1}",
            "0020|0032": f"0\\0\\{zk}",
            "0020|0037": "1\\0\\0\\0\\1\\0",
        }.items():
            sl.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"s{k:03d}.dcm"))
        writer.Execute(sl)
    return folder


def _verse(**entry) -> str:
    """A VerSe centroid file: the direction entry and one point (fields as given)."""
    direction = entry.pop("direction", ["P", "I", "R"])
    return json.dumps([{"direction": direction}, entry])


def _markups(points) -> str:
    return json.dumps({"markups": [{"type": "Fiducial", "coordinateSystem": "LPS", "controlPoints": points}]})


def _bad_manifest(ws: Workspace, name: str, edit: Callable[[dict], None]) -> Path:
    import shutil

    res = ws.root / "res" / name
    shutil.copytree(ws.resources, res)
    manifest = res / "models" / "manifest.json"
    data = json.loads(manifest.read_text())
    edit(data)
    manifest.write_text(json.dumps(data))
    return res


def _gt_volume(ws: Workspace) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(ws.gt)))


#: An sform (srow_x, srow_y, srow_z) on which ITK's NIfTI reader hung (found by the fuzzer).
HANGING_SROW = (2.6, 3.4e38, 184.7, 286.3, -0.0012, -451.4, -np.inf, -60968.0, 0.0, 1e30, -419.4, -643.4)

# Each case: (id, builder(ws) -> (argv, needle), environment overrides or None)
CASES: list[tuple[str, Callable[[Workspace], tuple[list, str]], dict | None]] = []


def case(name: str, env: Callable[[Workspace], dict] | None = None):
    def register(builder):
        CASES.append((name, builder, env))
        return builder

    return register


def simple(name: str, builder) -> None:
    CASES.append((name, builder, None))


# --- image files given to run ------------------------------------------------------------------
simple("missing file", lambda ws: (run_args(ws, ws.root / "nope_ct.nii.gz", "a"), "input not found"))
simple("empty .nii", lambda ws: (run_args(ws, ws.file("empty.nii", b""), "a"), "empty.nii"))
simple("empty .nii.gz", lambda ws: (run_args(ws, ws.file("empty.nii.gz", b""), "a"), "empty.nii.gz"))
simple("text as .nii.gz", lambda ws: (run_args(ws, ws.file("text.nii.gz", "hello"), "a"), "text.nii.gz"))
simple("text as .nrrd", lambda ws: (run_args(ws, ws.file("text.nrrd", "hello"), "a"), "text.nrrd"))
simple("text as .mha", lambda ws: (run_args(ws, ws.file("text.mha", "hello"), "a"), "text.mha"))
simple("notes.txt", lambda ws: (run_args(ws, ws.file("notes.txt", "x"), "a"), "notes.txt"))
simple("png", lambda ws: (run_args(ws, ws.file("shot.png", b"\x89PNG\r\n"), "a"), "shot.png"))
simple("zip", lambda ws: (run_args(ws, ws.file("cases.zip", b"PK\x03\x04"), "a"), "cases.zip"))
simple(
    "truncated .nii.gz",
    lambda ws: (run_args(ws, ws.file("cut.nii.gz", _nifti_bytes(ws)[: len(_nifti_bytes(ws)) // 2]), "a"), "cut.nii.gz"),
)
simple(
    "truncated .nii",
    lambda ws: (run_args(ws, ws.file("cut.nii", bytes(_raw_nifti(ws)[:2000])), "a"), "truncated"),
)
simple("header only .nii", lambda ws: (run_args(ws, ws.file("hdr.nii", bytes(_raw_nifti(ws)[:352])), "a"), "hdr.nii"))
simple("2D image", lambda ws: (run_args(ws, ws.image("flat.nii.gz", np.zeros((30, 40), np.int16)), "a"), "2D"))
simple(
    "4D image",
    lambda ws: (run_args(ws, ws.image("time.nii.gz", np.zeros((3, 8, 8, 8), np.int16), (2, 2, 2, 1)), "a"), "4D"),
)
simple(
    "vector image",
    lambda ws: (
        run_args(ws, ws.image("rgb.nrrd", np.zeros((8, 8, 8, 3), np.uint8), components=True), "a"),
        "rgb.nrrd",
    ),
)
simple(
    "NaN voxels",
    lambda ws: (run_args(ws, ws.image("nan.nii.gz", np.full((8, 8, 8), np.nan, np.float32)), "a"), "NaN"),
)
simple(
    "inf voxels nrrd",
    lambda ws: (run_args(ws, ws.image("inf.nrrd", np.full((8, 8, 8), np.inf, np.float32)), "a"), "infinite"),
)
simple(
    "spacing 20 mm",
    lambda ws: (run_args(ws, ws.image("thick.nii.gz", np.zeros((8, 8, 8), np.int16), (20, 20, 20)), "a"), "spacing"),
)
simple(
    "field of view 3 m",
    lambda ws: (run_args(ws, ws.image("long.nrrd", np.zeros((700, 4, 4), np.int16), (1, 1, 5)), "a"), "long.nrrd"),
)
simple(
    "zero pixdim",
    lambda ws: (run_args(ws, _patched_nifti(ws, "zero.nii", 80, "f", 0.0), "a"), "voxel size"),
)
simple(
    "negative pixdim",
    lambda ws: (run_args(ws, _patched_nifti(ws, "neg.nii", 80, "3f", -1.0, -1.0, -1.0), "a"), "neg.nii"),
)
simple("NaN pixdim", lambda ws: (run_args(ws, _patched_nifti(ws, "nanpix.nii", 84, "f", float("nan")), "a"), "nanpix"))
simple(
    "vox_offset inf",
    lambda ws: (run_args(ws, _patched_nifti(ws, "off.nii", 108, "f", float("inf")), "a"), "vox_offset"),
)
simple(
    "sform with infinite entries (ITK hangs on it)",
    lambda ws: (
        run_args(ws, _patched_nifti(ws, "sform.nii", 280, "12f", *HANGING_SROW), "a"),
        "sform",
    ),
)
simple(
    "qform with NaN quaternion",
    lambda ws: (run_args(ws, _patched_nifti(ws, "qform.nii", 256, "3f", np.nan, 0.0, 0.0), "a"), "qform"),
)
simple(
    "dim claims 30000^3",
    lambda ws: (run_args(ws, _patched_nifti(ws, "huge.nii", 42, "3h", 30000, 30000, 30000), "a"), "huge.nii"),
)
simple(
    "dim negative",
    lambda ws: (run_args(ws, _patched_nifti(ws, "negdim.nii", 42, "h", -5), "a"), "negdim.nii"),
)
simple(
    "mhd without its raw file",
    lambda ws: (
        run_args(
            ws,
            ws.file(
                "lost.mhd",
                "ObjectType = Image\nNDims = 3\nDimSize = 4 4 4\nElementSpacing = 1 1 1\n"
                "ElementType = MET_SHORT\nElementDataFile = lost.raw\n",
            ),
            "a",
        ),
        "lost.mhd",
    ),
)
simple(
    "mha cut short",
    lambda ws: (
        run_args(
            ws,
            ws.file(
                "short.mha",
                "ObjectType = Image\nNDims = 3\nDimSize = 40 40 40\nElementSpacing = 1 1 1\n"
                "ElementType = MET_SHORT\nElementDataFile = LOCAL\n" + "x" * 100,
            ),
            "a",
        ),
        "short.mha",
    ),
)
simple(
    "mha negative NDims (ITK hangs on it)",
    lambda ws: (
        run_args(ws, ws.file("ndims.mha", "ObjectType = Image\nNDims = -1\nElementDataFile = LOCAL\n"), "a"),
        "NDims",
    ),
)
simple(
    "mha zero spacing",
    lambda ws: (
        run_args(
            ws,
            ws.file(
                "zsp.mha",
                "ObjectType = Image\nNDims = 3\nDimSize = 4 4 4\nElementSpacing = 0 1 1\n"
                "ElementType = MET_SHORT\nElementDataFile = LOCAL\n" + "\0" * 128,
            ),
            "a",
        ),
        "zsp.mha",
    ),
)
simple(
    "a single DICOM file",
    lambda ws: (run_args(ws, _dicom_series(ws, "one", [0.0]) / "s000.dcm", "a"), "pass the folder"),
)
simple("folder without DICOM", lambda ws: (run_args(ws, ws.file("nodicom/readme.txt", "x").parent, "a"), "nodicom"))
simple("DICOM single slice", lambda ws: (run_args(ws, _dicom_series(ws, "single", [0.0]), "a"), "single"))
simple(
    "DICOM missing slice",
    lambda ws: (run_args(ws, _dicom_series(ws, "gap", [0, 2, 4, 8, 10]), "a"), "missing slice"),
)
simple("DICOM duplicate slice", lambda ws: (run_args(ws, _dicom_series(ws, "dup", [0, 2, 2, 4]), "a"), "duplicate"))
simple(
    "DICOM irregular",
    lambda ws: (run_args(ws, _dicom_series(ws, "irr", [0, 2, 4, 7.1, 9.1]), "a"), "irregular"),
)
simple(
    "DICOM blank",
    lambda ws: (run_args(ws, _dicom_series(ws, "blank", [0, 2, 4, 6], blank=True), "a"), "blank"),
)
simple(
    "DICOM unknown --series",
    lambda ws: (run_args(ws, _dicom_series(ws, "uid", [0, 2, 4, 6]), "a", "--series", "9.9"), "no series with UID"),
)
simple(
    "--dicom-seg on a file",
    lambda ws: (run_args(ws, ws.ct, "a", "--dicom-seg"), "--dicom-seg needs DICOM folder inputs"),
)

# --- options of run ----------------------------------------------------------------------------
simple("unknown stage", lambda ws: (run_args(ws, ws.ct, "b", "--stages", "spine,heart"), "heart"))
simple("empty stages", lambda ws: (run_args(ws, ws.ct, "b", "--stages", ","), "stage"))
simple("stages out of order", lambda ws: (run_args(ws, ws.ct, "b", "--stages", "segmentation,spine"), "stage"))
simple("unknown label name", lambda ws: (run_args(ws, ws.ct, "b", "--labels", "L9"), "L9"))
simple("label id out of range", lambda ws: (run_args(ws, ws.ct, "b", "--labels", "999"), "999"))
simple("empty labels", lambda ws: (run_args(ws, ws.ct, "b", "--labels", ""), "--labels is empty"))
simple("labels only commas", lambda ws: (run_args(ws, ws.ct, "b", "--labels", ",,"), "--labels is empty"))
simple("--series with a file input", lambda ws: (run_args(ws, ws.ct, "b", "--series", "1.2"), "--series"))
simple("input is a device file", lambda ws: (run_args(ws, Path("/dev/null"), "b"), "/dev/null"))
simple(
    "measure image is text", lambda ws: (["measure", "--labels", ws.gt, "--image", ws.file("it.nii", "x")], "it.nii")
)
simple("unknown pipeline", lambda ws: (run_args(ws, ws.ct, "b", "--pipeline", "ct-nope"), "ct-nope"))
simple(
    "centroids with two inputs",
    lambda ws: (
        ["run", ws.ct, ws.file("sub-two_ct.nii.gz", ws.ct.read_bytes()), "-o", ws.out("b"), "--centroids", ws.ctd],
        "exactly one input",
    ),
)
simple("centroids missing", lambda ws: (seg_args(ws, ws.root / "nope_ctd.json", "b"), "centroid file not found"))
simple(
    "output folder is a file",
    lambda ws: (["run", ws.ct, "-o", ws.file("blocker", "x") / "out", "--device", "cpu"], "cannot create"),
)
simple("no inputs", lambda ws: (["run", "-o", ws.out("c")], "required"))
simple("no output", lambda ws: (["run", ws.ct], "-o/--output"))
simple("device bogus", lambda ws: (run_args(ws, ws.ct, "c", "--device", "tpu"), "tpu"))
simple("progress bogus", lambda ws: (["run", ws.ct, "-o", ws.out("c"), "--progress", "loud"], "loud"))
simple("unknown option", lambda ws: (run_args(ws, ws.ct, "c", "--fast"), "--fast"))
simple("unknown command", lambda ws: (["segment", ws.ct], "segment"))

# --- centroid files given to run ---------------------------------------------------------------
simple("centroids empty json", lambda ws: (seg_args(ws, ws.file("e_ctd.json", ""), "d"), "e_ctd.json"))
simple("centroids invalid json", lambda ws: (seg_args(ws, ws.file("i_ctd.json", "{label"), "d"), "not valid JSON"))
simple("centroids json number", lambda ws: (seg_args(ws, ws.file("n_ctd.json", "42"), "d"), "n_ctd.json"))
simple("centroids json object", lambda ws: (seg_args(ws, ws.file("o_ctd.json", '{"a": 1}'), "d"), "o_ctd.json"))
simple("centroids empty list", lambda ws: (seg_args(ws, ws.file("l_ctd.json", "[]"), "d"), "l_ctd.json"))
simple(
    "verse label unknown",
    lambda ws: (
        seg_args(
            ws,
            ws.file("u_ctd.json", json.dumps([{"direction": ["P", "I", "R"]}, {"label": 77, "X": 1, "Y": 1, "Z": 1}])),
            "d",
        ),
        "u_ctd.json",
    ),
)
simple(
    "verse coordinate text",
    lambda ws: (
        seg_args(
            ws,
            ws.file(
                "t_ctd.json", json.dumps([{"direction": ["P", "I", "R"]}, {"label": 20, "X": "a", "Y": 1, "Z": 1}])
            ),
            "d",
        ),
        "t_ctd.json",
    ),
)
simple(
    "verse missing Z",
    lambda ws: (
        seg_args(
            ws, ws.file("z_ctd.json", json.dumps([{"direction": ["P", "I", "R"]}, {"label": 20, "X": 1, "Y": 1}])), "d"
        ),
        "z_ctd.json",
    ),
)
simple(
    "verse bad direction",
    lambda ws: (
        seg_args(
            ws,
            ws.file(
                "dir_ctd.json", json.dumps([{"direction": ["P", "P", "R"]}, {"label": 20, "X": 1, "Y": 1, "Z": 1}])
            ),
            "d",
        ),
        "dir_ctd.json",
    ),
)
simple("verse not UTF-8", lambda ws: (seg_args(ws, ws.file("b_ctd.json", b"\xff\xfe\x00["), "d"), "b_ctd.json"))
simple(
    "markups without points",
    lambda ws: (seg_args(ws, ws.file("p.mrk.json", _markups([])), "d"), "p.mrk.json"),
)
simple(
    "markups position text",
    lambda ws: (seg_args(ws, ws.file("q.mrk.json", _markups([{"label": "L1", "position": "x"}])), "d"), "q.mrk.json"),
)
simple(
    "markups unknown label",
    lambda ws: (
        seg_args(ws, ws.file("r.mrk.json", _markups([{"label": "Q7", "position": [0, 0, 0]}])), "d"),
        "r.mrk.json",
    ),
)
simple(
    "markups bad coordinate system",
    lambda ws: (
        seg_args(
            ws,
            ws.file(
                "s.mrk.json",
                json.dumps(
                    {
                        "markups": [
                            {"coordinateSystem": "XYZ", "controlPoints": [{"label": "L1", "position": [0, 0, 0]}]}
                        ]
                    }
                ),
            ),
            "d",
        ),
        "s.mrk.json",
    ),
)
simple("markups not a list", lambda ws: (seg_args(ws, ws.file("t.mrk.json", '{"markups": 3}'), "d"), "t.mrk.json"))
simple("csv empty", lambda ws: (seg_args(ws, ws.file("e.csv", ""), "d"), "e.csv"))
simple("csv header only", lambda ws: (seg_args(ws, ws.file("h.csv", "label,x,y,z\n"), "d"), "h.csv"))
simple("csv text coordinates", lambda ws: (seg_args(ws, ws.file("c.csv", "label,x,y,z\nL1,a,b,c\n"), "d"), "c.csv"))
simple("csv missing column", lambda ws: (seg_args(ws, ws.file("m.csv", "label,x,y\nL1,1,2\n"), "d"), "m.csv"))
simple("csv unknown label", lambda ws: (seg_args(ws, ws.file("u.csv", "label,x,y,z\nZZ,1,2,3\n"), "d"), "u.csv"))
simple("csv NaN coordinate", lambda ws: (seg_args(ws, ws.file("n.csv", "label,x,y,z\nL1,nan,2,3\n"), "d"), "n.csv"))
simple("csv binary", lambda ws: (seg_args(ws, ws.file("bin.csv", b"\x00\xff\x00\xfe"), "d"), "bin.csv"))
simple("centroids .txt", lambda ws: (seg_args(ws, ws.file("points.txt", "L1 1 2 3"), "d"), "points.txt"))
simple("centroids folder", lambda ws: (seg_args(ws, ws.file("ctdfolder/x", "x").parent, "d"), "ctdfolder"))
simple(
    "centroids outside the image",
    lambda ws: (seg_args(ws, ws.file("far.csv", "label,x,y,z\nL1,5000,5000,5000\n"), "d"), "far.csv"),
)
simple(
    "centroids without a point of --labels",
    lambda ws: (seg_args(ws, ws.ctd, "d", "--labels", "C1"), "has no point of --labels"),
)

# --- evaluate ---------------------------------------------------------------------------------
simple("evaluate pred missing", lambda ws: (["evaluate", "--pred", ws.root / "p.nii.gz", "--gt", ws.gt], "p.nii.gz"))
simple("evaluate gt missing", lambda ws: (["evaluate", "--pred", ws.gt, "--gt", ws.root / "g.nii.gz"], "g.nii.gz"))
simple(
    "evaluate pred is text",
    lambda ws: (["evaluate", "--pred", ws.file("pt.nii.gz", "x"), "--gt", ws.gt], "pt.nii.gz"),
)
simple(
    "evaluate fractional labels",
    lambda ws: (
        ["evaluate", "--pred", ws.image("frac.nii.gz", np.full((84, 40, 40), 0.5, np.float32)), "--gt", ws.gt],
        "frac.nii.gz",
    ),
)
simple(
    "evaluate other grid",
    lambda ws: (
        ["evaluate", "--pred", ws.image("small.nii.gz", np.zeros((10, 10, 10), np.uint8)), "--gt", ws.gt],
        "--resample-pred",
    ),
)
simple(
    "evaluate negative labels",
    lambda ws: (
        ["evaluate", "--pred", ws.image("neglab.nii.gz", np.full((84, 40, 40), -3, np.int16)), "--gt", ws.gt],
        "neglab",
    ),
)
simple(
    "evaluate 2D pred",
    lambda ws: (["evaluate", "--pred", ws.image("p2d.nii.gz", np.zeros((40, 40), np.uint8)), "--gt", ws.gt], "2D"),
)
simple(
    "evaluate bad pred ctd",
    lambda ws: (
        ["evaluate", "--pred", ws.gt, "--gt", ws.gt, "--pred-ctd", ws.file("x_ctd.json", "{"), "--gt-ctd", ws.ctd],
        "x_ctd.json",
    ),
)
simple(
    "evaluate unwritable json",
    lambda ws: (["evaluate", "--pred", ws.gt, "--gt", ws.gt, "--json", ws.file("jblock", "x") / "m.json"], "m.json"),
)
for _value in ("-1", "0", "nan", "inf", "x"):
    simple(
        f"evaluate id threshold {_value}",
        lambda ws, v=_value: (["evaluate", "--pred", ws.gt, "--gt", ws.gt, "--id-threshold", v], "--id-threshold"),
    )
simple("evaluate ignore bogus", lambda ws: (["evaluate", "--pred", ws.gt, "--gt", ws.gt, "--ignore", "Q5"], "Q5"))

# --- measure ----------------------------------------------------------------------------------
simple("measure labels missing", lambda ws: (["measure", "--labels", ws.root / "none.nii.gz"], "none.nii.gz"))
simple("measure labels text", lambda ws: (["measure", "--labels", ws.file("lt.nii.gz", "x")], "lt.nii.gz"))
simple(
    "measure image other grid",
    lambda ws: (
        ["measure", "--labels", ws.gt, "--image", ws.image("og.nii.gz", np.zeros((9, 9, 9), np.int16))],
        "og.nii.gz",
    ),
)
simple(
    "measure image missing",
    lambda ws: (["measure", "--labels", ws.gt, "--image", ws.root / "ghost.nii.gz"], "ghost.nii.gz"),
)
simple(
    "measure empty label map",
    lambda ws: (["measure", "--labels", ws.labels("zero_msk.nii.gz", np.zeros_like(_gt_volume(ws)))], "zero_msk"),
)
simple(
    "measure csv into a file's folder",
    lambda ws: (["measure", "--labels", ws.gt, "--csv", ws.file("cblock", "x") / "m.csv"], "m.csv"),
)

# --- phantom ----------------------------------------------------------------------------------
simple("phantom number 0", lambda ws: (["phantom", "-o", ws.out("ph"), "--number", "0"], "--number"))
simple("phantom number -2", lambda ws: (["phantom", "-o", ws.out("ph"), "--number", "-2"], "--number"))
simple("phantom spacing 0", lambda ws: (["phantom", "-o", ws.out("ph"), "--spacing", "0", "1", "1"], "--spacing"))
simple("phantom spacing nan", lambda ws: (["phantom", "-o", ws.out("ph"), "--spacing", "nan", "1", "1"], "--spacing"))
simple("phantom spacing two values", lambda ws: (["phantom", "-o", ws.out("ph"), "--spacing", "1", "1"], "--spacing"))
simple("phantom region bogus", lambda ws: (["phantom", "-o", ws.out("ph"), "--region", "tail"], "tail"))
simple("phantom modality bogus", lambda ws: (["phantom", "-o", ws.out("ph"), "--modality", "pet"], "pet"))
simple(
    "phantom output is a file",
    lambda ws: (["phantom", "-o", ws.file("pblock", "x") / "p", "--number", "1"], "pblock"),
)

# --- series -----------------------------------------------------------------------------------
simple("series of a file", lambda ws: (["series", ws.ct], "is not a folder"))
simple("series of an empty folder", lambda ws: (["series", ws.file("empty_dir/x.txt", "x").parent], "no DICOM"))


# --- models and resources ---------------------------------------------------------------------
def _spine_stage(**changes):
    return lambda d: d["pipelines"]["ct-full-spine"]["stages"]["spine"].update(**changes)


def _pipeline(**changes):
    return lambda d: d["pipelines"]["ct-full-spine"].update(**changes)


for _name, _edit, _needle in (
    ("manifest empty sha", _spine_stage(sha256=""), "sha256"),
    ("manifest unknown method", _pipeline(method="nope"), "nope"),
    ("manifest stages null", _pipeline(stages=None), "stages"),
    ("manifest card path escapes", _spine_stage(card="../x.json"), "x.json"),
    ("manifest no pipelines", lambda d: d.pop("pipelines"), "pipelines"),
    ("manifest weights missing", _spine_stage(weights="gone.safetensors"), "gone"),
):
    CASES.append(
        (
            _name,
            lambda ws, n=_name: (run_args(ws, ws.ct, "m" + n.replace(" ", "_")), ""),
            {"edit": _edit, "needle": _needle},
        )
    )
simple("resources folder missing", lambda ws: (run_args(ws, ws.ct, "r"), "resources"))


def _env_for(ws: Workspace, name: str, spec) -> dict:
    if spec is None:
        return {}
    res = _bad_manifest(ws, name.replace(" ", "_"), spec["edit"])
    return {"SPINESEG_RESOURCES": str(res)}


@pytest.mark.parametrize(("name", "builder", "env"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clean_refusal(ws, name, builder, env, capsys, monkeypatch):
    argv, needle = builder(ws)
    if env is not None:
        monkeypatch.setenv("SPINESEG_RESOURCES", _env_for(ws, name, env)["SPINESEG_RESOURCES"])
        needle = env["needle"]
    if name == "resources folder missing":
        monkeypatch.setenv("SPINESEG_RESOURCES", str(ws.root / "no_such_resources"))
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own refusals
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2, f"exit {rc}; stderr: {err}"
    assert "Traceback" not in err
    errors = [ln for ln in err.splitlines() if ": error: " in ln]
    assert len(errors) == 1, err
    assert needle in errors[0], errors[0]
    argv = [str(a) for a in argv]
    out = Path(argv[argv.index("-o") + 1]) if "-o" in argv else None
    assert out is None or not out.exists() or not [p for p in out.iterdir() if not p.name.startswith(".")]


def test_the_suite_is_at_least_120_cases():
    assert len(CASES) >= 120, len(CASES)
