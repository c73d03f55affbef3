"""DICOM folders: which series a run takes and why, and series whose slices are refused.

Series are written slice by slice with SimpleITK (file names shuffled, as PACS exports name them), with
gaps, duplicates, a shear, a damaged file or several series in one folder; the geometry a read returns is
compared with the positions written.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from SpineSegLib.cli import main
from SpineSegLib.errors import InputError
from SpineSegLib.io import read_image
from SpineSegLib.io.dicom_series import choose_series, list_series, slice_problem


def write_series(
    folder: Path,
    uid: str,
    volume: np.ndarray,
    z: list[float],
    *,
    modality: str = "CT",
    image_type: str = "ORIGINAL\\PRIMARY\\AXIAL",
    number: int = 2,
    description: str = "",
    y_shift: float = 0.0,
) -> list[Path]:
    """Slice k of ``volume`` at height z[k] (LPS mm), its origin moved y_shift mm per slice; files in shuffled order."""
    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    order = np.random.default_rng(len(z)).permutation(len(z))
    paths = []
    for n, k in enumerate(order):
        sl = sitk.GetImageFromArray(volume[k])
        sl.SetSpacing((0.75, 0.5))
        tags = {
            "0008|0060": modality,
            "0008|0008": image_type,
            "0008|103e": description,
            "0020|000d": "1.2.826.0.1.9",
            "0020|000e": uid,
            "0020|0011": str(number),
            "0008|0018": f"{uid}.{k + 1}",
            "0020|0013": str(k + 1),
            "0020|0032": f"-10\\{20 + y_shift * k}\\{z[k]}",
            "0020|0037": "1\\0\\0\\0\\1\\0",
        }
        for tag, value in tags.items():
            sl.SetMetaData(tag, value)
        path = folder / f"{uid.rsplit('.', 1)[-1]}_{n:03d}.dcm"
        writer.SetFileName(str(path))
        writer.Execute(sl)
        paths.append(path)
    return paths


def volume(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-1000, 1500, (n, 6, 5)).astype(np.int16)


def regular(n: int, step: float = 2.5, z0: float = 0.0) -> list[float]:
    return [z0 + step * k for k in range(n)]


def test_a_regular_series_reads_with_the_positions_written(tmp_path):
    vol = volume(8)
    write_series(tmp_path, "1.2.3.1", vol, regular(8, 1.25, -40.0))
    image = read_image(tmp_path)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), vol)
    np.testing.assert_allclose(image.GetOrigin(), (-10.0, 20.0, -40.0))
    np.testing.assert_allclose(image.GetSpacing(), (0.75, 0.5, 1.25))
    (series,) = list_series(tmp_path)
    assert slice_problem(series) is None and len(series.slices) == 8


def test_a_missing_slice_is_refused_and_named(tmp_path):
    z = regular(10)
    del z[4]  # slice at 10 mm lost: ITK would stack the rest 2.5 mm apart and move everything above it
    write_series(tmp_path, "1.2.3.1", volume(9), z)
    with pytest.raises(InputError) as err:
        read_image(tmp_path)
    message = str(err.value)
    assert str(tmp_path) in message
    assert "1 missing slice" in message and "5.00 mm" in message and "2.50 mm apart" in message


def test_several_missing_slices_are_counted(tmp_path):
    z = regular(12)
    z = z[:3] + z[6:]  # three lost in one gap
    write_series(tmp_path, "1.2.3.1", volume(len(z)), z)
    with pytest.raises(InputError, match="3 missing slice"):
        read_image(tmp_path)


def test_duplicate_slice_positions_are_refused(tmp_path):
    z = regular(6)
    z[3] = z[2]
    write_series(tmp_path, "1.2.3.1", volume(6), z)
    with pytest.raises(InputError, match="duplicate slice position"):
        read_image(tmp_path)


def test_irregular_spacing_is_refused(tmp_path):
    z = [0.0, 2.5, 5.0, 8.1, 10.6, 13.1, 15.6]  # one step of 3.1 mm: not a whole number of slices
    write_series(tmp_path, "1.2.3.1", volume(7), z)
    with pytest.raises(InputError, match="irregular slice spacing: steps from 2.50 to 3.10 mm"):
        read_image(tmp_path)


def test_small_float_noise_in_positions_is_accepted(tmp_path):
    z = [k * 2.5 + (0.01 if k % 2 else -0.01) for k in range(6)]
    write_series(tmp_path, "1.2.3.1", volume(6), z)
    assert read_image(tmp_path).GetSize() == (5, 6, 6)


def test_a_sheared_gantry_tilt_series_is_refused(tmp_path):
    write_series(tmp_path, "1.2.3.1", volume(6), regular(6), y_shift=0.8)
    with pytest.raises(InputError, match="sheared"):
        read_image(tmp_path)


def test_a_damaged_slice_file_is_found_and_named(tmp_path):
    paths = write_series(tmp_path, "1.2.3.1", volume(8), regular(8))
    by_position = sorted(paths, key=lambda p: sitk.ReadImage(str(p)).GetOrigin()[2])
    damaged = by_position[3]
    damaged.write_bytes(damaged.read_bytes()[:200])  # a header cut short: GDCM leaves the file out
    with pytest.raises(InputError) as err:
        read_image(tmp_path)
    assert "missing slice" in str(err.value) and damaged.name in str(err.value)


def test_a_blank_series_is_refused(tmp_path):
    write_series(tmp_path, "1.2.3.1", np.full((5, 6, 5), -1024, np.int16), regular(5))
    with pytest.raises(InputError, match="blank"):
        read_image(tmp_path)


@pytest.fixture
def mixed_folder(tmp_path):
    """A CT (6 slices, ORIGINAL), its 10-slice DERIVED reformat, an MR of 12, a one-slice scout."""
    write_series(tmp_path, "1.2.3.1", volume(6, 1), regular(6), number=2, description="CT 2.5")
    write_series(tmp_path, "1.2.3.2", volume(10, 2), regular(10, 1.5), number=3, image_type="DERIVED\\SECONDARY\\AXIAL")
    write_series(tmp_path, "1.2.3.3", volume(12, 3), regular(12, 1.0), modality="MR", number=4)
    write_series(tmp_path, "1.2.3.4", volume(1, 4), [0.0], number=1, image_type="ORIGINAL\\PRIMARY\\LOCALIZER")
    return tmp_path


def test_the_pipelines_modality_and_original_images_are_taken_first(mixed_folder):
    ct, why = choose_series(mixed_folder, modality="CT")
    assert ct.uid == "1.2.3.1" and "of 4 series" in why
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read_image(mixed_folder, modality="CT")), volume(6, 1))
    assert choose_series(mixed_folder, modality="MR")[0].uid == "1.2.3.3"
    assert choose_series(mixed_folder)[0].uid == "1.2.3.3"  # no modality asked: ORIGINAL, then the most slices


def test_series_uid_picks_any_and_an_unknown_uid_lists_the_series(mixed_folder):
    image = read_image(mixed_folder, series="1.2.3.2")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), volume(10, 2))
    assert image.GetSpacing()[2] == pytest.approx(1.5)
    with pytest.raises(InputError) as err:
        read_image(mixed_folder, series="9.9.9")
    assert "no series with UID 9.9.9" in str(err.value)
    assert all(uid in str(err.value) for uid in ("1.2.3.1", "1.2.3.2", "1.2.3.3", "1.2.3.4"))


def test_a_series_with_a_gap_gives_way_to_a_regular_one_and_is_refused_when_asked_for(tmp_path):
    z = regular(14)
    del z[7]
    write_series(tmp_path, "1.2.3.1", volume(13, 1), z)
    write_series(tmp_path, "1.2.3.2", volume(6, 2), regular(6, 3.0, 200.0))
    series, why = choose_series(tmp_path, modality="CT")
    assert series.uid == "1.2.3.2" and "regular slices first" in why
    with pytest.raises(InputError, match="missing slice"):
        read_image(tmp_path, series="1.2.3.1")


def test_spineseg_series_lists_every_series_and_marks_the_one_taken(mixed_folder, capsys):
    assert main(["series", str(mixed_folder), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["uid"] for r in rows] == ["1.2.3.3", "1.2.3.2", "1.2.3.1", "1.2.3.4"]  # largest first
    assert [r["taken"] for r in rows] == [False, False, True, False]
    assert rows[3]["slices"] == 1 and "LOCALIZER" in rows[3]["image_type"]
    assert main(["series", str(mixed_folder), "--modality", "MR"]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].startswith("* 1.2.3.3")


def test_spineseg_run_refuses_a_series_with_a_gap_in_one_line(tmp_path, capsys):
    z = regular(10)
    del z[5]
    write_series(tmp_path / "dicom", "1.2.3.1", volume(9), z)
    rc = main(["run", str(tmp_path / "dicom"), "-o", str(tmp_path / "out"), "--device", "cpu", "--progress", "none"])
    err = capsys.readouterr().err
    assert rc == 2
    lines = [ln for ln in err.splitlines() if ln.startswith("spineseg: error")]
    assert len(lines) == 1 and "missing slice" in lines[0] and "Traceback" not in err
    assert not list((tmp_path / "out").glob("*_seg-vert_msk.nii.gz"))
