"""Tests of SpineSegLib.io image and label-map reading/writing, its checks and the atomic writer."""

from __future__ import annotations

import gzip
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.spatial.transform import Rotation

from SpineSegLib.errors import InputError
from SpineSegLib.geometry import Grid
from SpineSegLib.io import (
    as_labelmap,
    atomic_path,
    atomic_write,
    describe,
    read_image,
    read_labelmap,
    require_labels,
    write_image,
    write_json_atomic,
    write_labelmap,
    write_text_atomic,
)

ROTATION = Rotation.from_euler("xyz", [17.0, -23.0, 41.0], degrees=True).as_matrix()
SPACING = (0.7, 1.3, 2.9)
ORIGIN = (-101.3, 33.17, -512.9)


def oblique_image(array: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(SPACING)
    image.SetOrigin(ORIGIN)
    image.SetDirection(ROTATION.ravel().tolist())
    return image


def assert_message(excinfo: pytest.ExceptionInfo, path: Path, *fragments: str) -> None:
    """The error names the file and says what is wrong."""
    message = str(excinfo.value)
    assert str(path) in message, message
    for fragment in fragments:
        assert fragment in message, message


# ----------------------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.uint16])
def test_round_trip_keeps_voxels_and_oblique_geometry(tmp_path, suffix, dtype):
    rng = np.random.default_rng(7)
    array = (rng.normal(0, 800, (9, 11, 13))).astype(dtype)
    image = oblique_image(array)
    path = write_image(image, tmp_path / f"ct{suffix}")
    assert path.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary file left behind"

    back = read_image(path)
    reference = sitk.ReadImage(str(path))  # what SimpleITK itself reads from the file
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), array)
    assert back.GetPixelID() == image.GetPixelID()
    assert Grid.of(back) == Grid.of(reference)
    # NRRD and MetaImage store the geometry as decimal text: exact. NIfTI stores float32.
    tol = 1e-6 if suffix.startswith(".nii") else 1e-12
    np.testing.assert_allclose(back.GetSpacing(), SPACING, rtol=0, atol=tol)
    np.testing.assert_allclose(back.GetOrigin(), ORIGIN, rtol=0, atol=tol * 1000)
    np.testing.assert_allclose(back.GetDirection(), ROTATION.ravel(), rtol=0, atol=tol)


def test_written_files_are_compressed(tmp_path):
    array = np.zeros((40, 50, 60), np.int16)
    array[10:30, 10:40, 10:50] = 1000
    image = oblique_image(array)
    for suffix in (".nrrd", ".mha", ".nii.gz"):
        path = write_image(image, tmp_path / f"a{suffix}")
        assert path.stat().st_size < array.nbytes / 20, suffix
    with gzip.open(tmp_path / "a.nii.gz") as f:  # a real gzip stream
        assert len(f.read()) >= array.nbytes


def test_read_image_matches_simpleitk_for_real_files(real_data):
    for rel in (
        "totalseg_example_abdomen_ct/example_ct.nii.gz",
        "tptbox_spine_crops/sample_mri/sub-mri_label-6_T2w.nii.gz",
        "sct_t2_cervical_mr/t2.nii.gz",
    ):
        path = real_data / rel
        ours, theirs = read_image(path), sitk.ReadImage(str(path))
        assert Grid.of(ours) == Grid.of(theirs)
        np.testing.assert_array_equal(sitk.GetArrayViewFromImage(ours), sitk.GetArrayViewFromImage(theirs))


# ----------------------------------------------------------------------------------------
# DICOM


def test_dicom_series_folder_matches_its_segmentation_grid(real_data):
    folder = real_data / "totalseg_example_abdomen_ct/example_ct_dicom"
    ct = read_image(folder)
    assert ct.GetSize() == (512, 512, 20)
    assert ct.GetPixelID() == sitk.sitkInt16
    seg = sitk.ReadImage(str(real_data / "totalseg_example_abdomen_ct/example_seg_dicom.nii.gz"))
    # The NIfTI is stored with a flipped y axis (LAS); the same voxels in the series' axis order:
    seg_as_ct = sitk.DICOMOrient(seg, sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(ct.GetDirection()))
    assert Grid.of(seg_as_ct).same_as(Grid.of(ct), tol=1e-3)

    # Slices are sorted by position: slice k sits at the k-th smallest ImagePositionPatient z.
    positions = []
    for f in sorted(folder.iterdir()):
        r = sitk.ImageFileReader()
        r.SetFileName(str(f))
        r.ReadImageInformation()
        positions.append([float(v) for v in r.GetMetaData("0020|0032").split("\\")])
    positions = np.array(sorted(positions, key=lambda p: p[2]))
    centres = Grid.of(ct).index_to_physical(np.stack([np.zeros(20), np.zeros(20), np.arange(20)], axis=1))
    np.testing.assert_allclose(centres, positions, atol=1e-3)
    # The CT holds bone where TotalSegmentator found vertebrae (T11/T12: ids 32, 33).
    vertebrae = np.isin(sitk.GetArrayViewFromImage(seg_as_ct), [32, 33])
    hu = sitk.GetArrayViewFromImage(ct)[vertebrae]
    assert hu.size > 1000 and np.median(hu) > 150


def _write_dicom_series(folder: Path, uid: str, volume: np.ndarray, z0: float, order: list[int]) -> None:
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for n, k in enumerate(order):
        sl = sitk.GetImageFromArray(volume[k])
        sl.SetSpacing((0.75, 0.5))
        tags = {
            "0008|0060": "CT",
            "0020|000d": "1.2.826.0.1.9",
            "0020|000e": uid,
            "0008|0018": f"{uid}.{k + 1}",
            "0020|0013": str(k + 1),
            "0020|0032": f"-10\\20\\{z0 + 2.5 * k}",
            "0020|0037": "1\\0\\0\\0\\1\\0",
            "0018|0050": "2.5",
        }
        for tag, value in tags.items():
            sl.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{uid[-1]}_{n:03d}.dcm"))  # file names not in slice order
        writer.Execute(sl)


def test_dicom_folder_with_two_series_reads_the_larger_sorted_by_position(tmp_path):
    rng = np.random.default_rng(3)
    small = rng.integers(0, 1000, (3, 6, 5)).astype(np.int16)
    large = rng.integers(0, 1000, (5, 6, 5)).astype(np.int16)
    _write_dicom_series(tmp_path, "1.2.826.0.1.1", small, 0.0, [0, 1, 2])
    _write_dicom_series(tmp_path, "1.2.826.0.1.2", large, 100.0, [3, 0, 4, 1, 2])
    image = read_image(tmp_path)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), large)
    np.testing.assert_allclose(image.GetSpacing(), (0.75, 0.5, 2.5))
    np.testing.assert_allclose(image.GetOrigin(), (-10.0, 20.0, 100.0))


# ----------------------------------------------------------------------------------------
# Label maps


def test_float64_verse_mask_reads_as_the_uint8_release(real_data):
    as_float = real_data / "verse_masks_only_no_ct/anjany_verse_sample/sub-verse004_seg-vert_msk.nii.gz"
    as_uint8 = real_data / "verse_masks_only_no_ct/IndVertSeg_VerSe/sub-verse004_seg-vert_msk.nii.gz"
    assert sitk.ReadImage(str(as_float)).GetPixelID() == sitk.sitkFloat64
    labels = read_labelmap(as_float)
    assert labels.GetPixelID() == sitk.sitkUInt8
    raw = sitk.GetArrayFromImage(sitk.ReadImage(str(as_float)))
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(labels), np.round(raw).astype(np.uint8))
    assert Grid.of(labels) == Grid.of(sitk.ReadImage(str(as_float)))
    assert sorted(np.unique(sitk.GetArrayViewFromImage(labels)).tolist()) == [0, *range(16, 25)]
    other = read_labelmap(as_uint8)
    assert Grid.of(other).same_as(Grid.of(labels), tol=1e-3)


def test_labelmap_pixel_type_follows_the_largest_label(tmp_path):
    small = np.zeros((4, 5, 6), np.float32)
    small[1, 2, 3] = 255.0004  # rounding noise below 1e-3 is accepted
    big = np.zeros((4, 5, 6), np.int32)
    big[0, 0, 0], big[3, 4, 5] = 256, 1
    write_image(oblique_image(small), tmp_path / "small.nrrd")
    write_image(oblique_image(big), tmp_path / "big.nii.gz")
    a = read_labelmap(tmp_path / "small.nrrd")
    b = read_labelmap(tmp_path / "big.nii.gz")
    assert a.GetPixelID() == sitk.sitkUInt8 and sitk.GetArrayViewFromImage(a)[1, 2, 3] == 255
    assert b.GetPixelID() == sitk.sitkUInt16
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(b), big)
    # write_labelmap stores the same conversion
    write_labelmap(oblique_image(small), tmp_path / "small_out.nii.gz")
    stored = sitk.ReadImage(str(tmp_path / "small_out.nii.gz"))
    assert stored.GetPixelID() == sitk.sitkUInt8
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(stored), np.round(small).astype(np.uint8))


def test_labelmap_errors_name_the_file_and_the_problem(tmp_path):
    frac = np.zeros((4, 5, 6), np.float32)
    frac[2, 3, 1] = 2.5
    write_image(oblique_image(frac), tmp_path / "frac.nii.gz")
    with pytest.raises(InputError) as e:
        read_labelmap(tmp_path / "frac.nii.gz")
    assert_message(e, tmp_path / "frac.nii.gz", "not a label map", "non-integer", "2.5", "(1, 3, 2)")

    neg = np.zeros((4, 5, 6), np.int16)
    neg[0, 0, 0] = -3
    write_image(oblique_image(neg), tmp_path / "neg.nrrd")
    with pytest.raises(InputError) as e:
        read_labelmap(tmp_path / "neg.nrrd")
    assert_message(e, tmp_path / "neg.nrrd", "negative labels", "-3")

    huge = np.zeros((4, 5, 6), np.int32)
    huge[0, 0, 0] = 70000
    write_image(oblique_image(huge), tmp_path / "huge.mha")
    with pytest.raises(InputError) as e:
        read_labelmap(tmp_path / "huge.mha")
    assert_message(e, tmp_path / "huge.mha", "70000", "65535")

    with pytest.raises(ValueError, match="non-integer"):
        as_labelmap(oblique_image(frac))


def test_require_labels_reports_an_empty_label_map(tmp_path):
    path = tmp_path / "empty_msk.nii.gz"
    write_labelmap(oblique_image(np.zeros((4, 5, 6), np.uint8)), path)
    empty = read_labelmap(path)
    with pytest.raises(InputError) as e:
        require_labels(empty, path)
    assert_message(e, path, "empty", "all voxels are 0")
    labelled = np.zeros((4, 5, 6), np.uint8)
    labelled[1, 1, 1] = 20
    assert require_labels(oblique_image(labelled), path) is not None


# ----------------------------------------------------------------------------------------
# Bad inputs: one clear message naming the file and the problem


def test_missing_file_and_empty_folder(tmp_path):
    with pytest.raises(InputError) as e:
        read_image(tmp_path / "nope.nii.gz")
    assert_message(e, tmp_path / "nope.nii.gz", "not found")
    (tmp_path / "notes.txt").write_text("not dicom")
    with pytest.raises(InputError) as e:
        read_image(tmp_path)
    assert_message(e, tmp_path, "no DICOM series")


def test_text_file_renamed_as_image(tmp_path):
    for suffix, fmt in ((".nii.gz", "NIfTI"), (".nrrd", "NRRD"), (".mha", "MetaImage")):
        path = tmp_path / f"notes{suffix}"
        path.write_text("patient notes, not an image\n")
        with pytest.raises(InputError) as e:
            read_image(path)
        assert_message(e, path, f"not a readable {fmt} image")


def test_unsupported_suffix_and_single_dicom_file(tmp_path, real_data):
    path = tmp_path / "scan.png"
    path.write_bytes(b"\x89PNG")
    with pytest.raises(InputError) as e:
        read_image(path)
    assert_message(e, path, "unsupported image format", ".png")
    one_slice = next((real_data / "totalseg_example_abdomen_ct/example_ct_dicom").iterdir())
    with pytest.raises(InputError) as e:
        read_image(one_slice)
    assert_message(e, one_slice, "single DICOM file", "folder")


def test_2d_4d_and_multicomponent_images(tmp_path):
    cases = {
        "flat.nii.gz": (sitk.Image([30, 40], sitk.sitkInt16), ["is 2D (30x40)", "needs a 3D volume"]),
        "time.nii.gz": (sitk.Image([8, 9, 10, 3], sitk.sitkInt16), ["is 4D (8x9x10x3", "one 3D volume"]),
        "rgb.nrrd": (sitk.Image([8, 9, 10], sitk.sitkVectorUInt8, 3), ["3 components per voxel", "one 3D volume"]),
        "slice.nii.gz": (sitk.Image([30, 40, 1], sitk.sitkInt16), ["single slice", "3D volume"]),
    }
    for name, (image, fragments) in cases.items():
        sitk.WriteImage(image, str(tmp_path / name))
        with pytest.raises(InputError) as e:
            read_image(tmp_path / name)
        assert_message(e, tmp_path / name, *fragments)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_and_infinite_voxels(tmp_path, suffix, dtype):
    for bad in (np.nan, np.inf, -np.inf):
        array = np.zeros((40, 50, 60), dtype)
        array[1, 1, 1] = bad
        array[39, 49, 59] = bad  # the very last value, past any chunk boundary
        path = tmp_path / f"bad_{bad}{suffix}"
        sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
        with pytest.raises(InputError) as e:
            read_image(path)
        assert_message(e, path, "2 NaN or infinite voxel values")
    clean = tmp_path / f"clean{suffix}"
    array = np.random.default_rng(0).normal(size=(40, 50, 60)).astype(dtype)
    sitk.WriteImage(sitk.GetImageFromArray(array), str(clean))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read_image(clean)), array)


def test_zero_and_negative_spacing(tmp_path):
    base = tmp_path / "base.mha"
    sitk.WriteImage(sitk.Image([4, 5, 6], sitk.sitkInt16), str(base), False)
    header = base.read_bytes()
    assert b"ElementSpacing = 1 1 1" in header
    for bad in (b"0 1 1", b"1 -2 1"):
        path = tmp_path / f"spacing_{bad.decode().replace(' ', '_')}.mha"
        path.write_bytes(header.replace(b"ElementSpacing = 1 1 1", b"ElementSpacing = " + bad))
        with pytest.raises(InputError) as e:
            read_image(path)
        assert_message(e, path, "zero, negative or invalid voxel spacing")


def test_a_zero_voxel_size_in_a_nifti_header_is_refused_not_read_as_1mm(tmp_path):
    import struct

    image = sitk.Image([6, 5, 4], sitk.sitkInt16)
    image.SetSpacing((0.8, 0.8, 2.0))
    good = tmp_path / "good.nii"
    sitk.WriteImage(image, str(good))
    raw = bytearray(good.read_bytes())
    assert struct.unpack_from("<3f", raw, 80) == pytest.approx((0.8, 0.8, 2.0))  # pixdim[1..3]
    struct.pack_into("<f", raw, 84, 0.0)  # pixdim[2] = 0: ITK alone reads it as 1 mm
    for name, data in (("zero.nii", bytes(raw)), ("zero.nii.gz", gzip.compress(bytes(raw)))):
        path = tmp_path / name
        path.write_bytes(data)
        assert sitk.ReadImage(str(path)).GetSpacing()[1] == 1.0  # what we guard against
        with pytest.raises(InputError) as e:
            read_image(path)
        assert_message(e, path, "zero or invalid voxel size in its NIfTI header (pixdim 0.8, 0, 2)")
    assert read_image(good).GetSpacing() == pytest.approx((0.8, 0.8, 2.0))


def test_implausible_spacing_extent_and_memory_are_refused_before_reading(tmp_path, monkeypatch):
    from SpineSegLib.io import images

    for spacing, size, needle in (
        ((20.0, 20.0, 20.0), (8, 8, 8), "voxel spacing of 20 mm (20, 20, 20), above 10 mm"),
        ((1.0, 1.0, 9.0), (8, 8, 300), "spans 2700 mm (8 x 8 x 2700 mm), more than a body"),
    ):
        path = tmp_path / f"s{spacing[0]:g}_{size[2]}.nrrd"
        image = sitk.Image(list(size), sitk.sitkInt16)
        image.SetSpacing(spacing)
        sitk.WriteImage(image, str(path))
        with pytest.raises(InputError) as e:
            read_image(path)
        assert_message(e, path, needle)
    path = tmp_path / "ok.nrrd"
    sitk.WriteImage(sitk.Image([40, 30, 20], sitk.sitkInt16), str(path))
    assert read_image(path).GetSize() == (40, 30, 20)
    monkeypatch.setattr(images, "machine_memory_bytes", lambda: 100_000)  # the OS's answer, a tiny machine
    with pytest.raises(InputError) as e:
        read_image(path)
    assert_message(e, path, "a run would need about 0.0 GiB of memory, more than this machine has")


def test_truncated_nifti_is_reported_not_zero_filled(tmp_path):
    array = (np.arange(40 * 50 * 60) % 251).astype(np.uint8).reshape(40, 50, 60)
    for suffix, fragment in ((".nii.gz", "truncated or damaged"), (".nii", "is truncated")):
        whole = tmp_path / f"whole{suffix}"
        sitk.WriteImage(sitk.GetImageFromArray(array), str(whole))
        data = whole.read_bytes()
        cut = tmp_path / f"cut{suffix}"
        cut.write_bytes(data[: len(data) // 2])
        # SimpleITK alone reads the cut file without complaint: the check is ours.
        assert sitk.ReadImage(str(cut)).GetSize() == (60, 50, 40)
        with pytest.raises(InputError) as e:
            read_image(cut)
        assert_message(e, cut, fragment)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(read_image(whole)), array)


def test_nifti_checks_handle_chunk_edges_multimember_gzip_and_plain_files(tmp_path, monkeypatch):
    from SpineSegLib.io import nifti_check

    monkeypatch.setattr(nifti_check, "_CHUNK", 1001)  # chunks that split float64 values
    array = np.zeros((20, 30, 40), np.float64)
    flat = array.reshape(-1)
    flat[[0, 124, 125, 126, 3000, flat.size - 1]] = [np.nan, np.inf, np.nan, -np.inf, np.nan, np.nan]
    path = tmp_path / "nan.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    with pytest.raises(InputError) as e:
        read_image(path)
    assert_message(e, path, "has 6 NaN or infinite voxel values")

    # A gzip file of two members (as some tools write): its trailer holds only the last member's size.
    labels = (np.arange(20 * 30 * 40) % 7).astype(np.uint8).reshape(20, 30, 40)
    plain = tmp_path / "labels.nii"
    sitk.WriteImage(sitk.GetImageFromArray(labels), str(plain))
    raw = plain.read_bytes()
    multi = tmp_path / "multi.nii.gz"
    multi.write_bytes(gzip.compress(raw[:5000]) + gzip.compress(raw[5000:]))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read_image(multi)), labels)
    # An uncompressed NIfTI named .nii.gz, which SimpleITK reads.
    misnamed = tmp_path / "misnamed.nii.gz"
    misnamed.write_bytes(raw)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read_image(misnamed)), labels)


def test_two_file_formats_are_read(tmp_path):
    array = np.random.default_rng(2).integers(-1000, 1000, (5, 6, 7)).astype(np.int16)
    image = oblique_image(array)
    for name in ("a.mhd", "b.nhdr"):
        sitk.WriteImage(image, str(tmp_path / name))
        back = read_image(tmp_path / name)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(back), array)
        assert Grid.of(back).same_as(Grid.of(image), tol=1e-9)


def test_truncated_nrrd_is_reported(tmp_path):
    array = (np.arange(40 * 50 * 60) % 251).astype(np.uint8).reshape(40, 50, 60)
    whole = tmp_path / "whole.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(array), str(whole), True)
    cut = tmp_path / "cut.nrrd"
    cut.write_bytes(whole.read_bytes()[:-2000])
    with pytest.raises(InputError) as e:
        read_image(cut)
    assert_message(e, cut, "damaged")


def test_describe_lists_size_spacing_orientation_and_type(real_data):
    ct = read_image(real_data / "totalseg_example_abdomen_ct/example_ct_dicom")
    text = describe(ct)
    code = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(ct.GetDirection())
    assert "512x512x20 voxels" in text
    assert "spacing 0.9766x0.9766x2 mm" in text
    assert f"orientation {code}" in text
    assert ct.GetPixelIDTypeAsString() in text
    pir = read_image(real_data / "tptbox_spine_crops/sample_ct/sub-ct_label-22_ct.nii.gz")
    assert "orientation PIR" in describe(pir)


# ----------------------------------------------------------------------------------------
# Writing errors and atomicity


def test_write_image_refuses_two_file_formats_and_missing_folders(tmp_path):
    image = oblique_image(np.zeros((3, 4, 5), np.int16))
    with pytest.raises(InputError) as e:
        write_image(image, tmp_path / "a.mhd")
    assert_message(e, tmp_path / "a.mhd", "cannot write images as '.mhd'")
    with pytest.raises(InputError) as e:
        write_image(image, tmp_path / "no" / "such" / "a.nii.gz")
    assert_message(e, tmp_path / "no" / "such" / "a.nii.gz", "does not exist")


def test_atomic_write_replaces_only_on_success(tmp_path):
    path = tmp_path / "result.json"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomic_write(path) as f:
        f.write("half a new fi")
        assert path.read_text() == "old"  # not visible before the block completes
        raise RuntimeError("boom")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]

    with atomic_write(path) as f:
        f.write("new")
        assert path.read_text() == "old"
    assert path.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]


def test_failed_json_image_and_labelmap_writes_leave_the_old_file(tmp_path):
    js = tmp_path / "metrics.json"
    write_json_atomic({"dice": 0.9}, js)
    with pytest.raises(ValueError):
        write_json_atomic({"dice": float("nan")}, js)  # NaN is not JSON
    assert json.loads(js.read_text()) == {"dice": 0.9}

    msk = tmp_path / "seg_msk.nii.gz"
    good = np.zeros((3, 4, 5), np.uint8)
    good[1, 1, 1] = 7
    write_labelmap(oblique_image(good), msk)
    bad = np.full((3, 4, 5), 0.5, np.float32)
    with pytest.raises(ValueError, match="non-integer"):
        write_labelmap(oblique_image(bad), msk)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read_labelmap(msk)), good)

    # An image write that fails inside SimpleITK (after the temporary file exists).
    with pytest.raises(RuntimeError, match="interrupted"), atomic_path(msk) as tmp:
        sitk.WriteImage(oblique_image(bad), str(tmp))
        assert tmp.name.startswith(".") and tmp.name.endswith(".nii.gz") and tmp.parent == msk.parent
        raise RuntimeError("interrupted")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read_labelmap(msk)), good)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "seg_msk.nii.gz"]


def test_atomic_files_get_ordinary_permissions(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    ours = write_text_atomic("y", tmp_path / "ours.txt")
    assert stat.S_IMODE(os.stat(ours).st_mode) == stat.S_IMODE(os.stat(plain).st_mode)
    os.chmod(ours, 0o640)
    write_text_atomic("z", ours)  # replacing keeps the existing file's mode
    assert stat.S_IMODE(os.stat(ours).st_mode) == 0o640
    assert ours.read_text() == "z"
