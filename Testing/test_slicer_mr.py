"""The MR pipeline's results in Slicer: instances with discs and endplates, and the structure map.

The label maps are written as the MR pipeline writes them (vertebrae by VerSe id, discs 100+X,
endplates 200+X; structures by SPINEPS id) and imported through the module's own result code into
a real Slicer scene (slicer-core); they must come back voxel for voxel with names, colours and codes.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

pytest.importorskip("slicer", reason="the Slicer core libraries (pip install slicer-core vtk==9.6.2) are needed")

import slicer_headless as H

H.add_module_paths()

import slicer  # noqa: E402
from slicer_workflow import study_volume  # noqa: E402
from SpineSegSlicerLib import nodes as N  # noqa: E402
from SpineSegSlicerLib import results, terminology  # noqa: E402

from SpineSegLib import labels as L  # noqa: E402
from SpineSegLib.methods.spineps import semantic_ids as S  # noqa: E402


@pytest.fixture(scope="module")
def scene():
    return H.init()


def _volume(scene):
    image = sitk.GetImageFromArray(np.random.default_rng(0).integers(0, 400, (30, 24, 20)).astype(np.int16))
    image.SetSpacing((1.0, 0.8, 2.0))
    image.SetOrigin((-10.0, 5.0, 30.0))
    volume, _, _ = study_volume(scene, image, name="MR")
    return volume, image


def test_discs_and_endplates_are_segments_with_their_names_codes_and_order(scene):
    volume, image = _volume(scene)
    arr = np.zeros(sitk.GetArrayViewFromImage(image).shape, np.uint8)
    arr[2:8, 5:15, 5:15] = 21  # L2
    arr[8:9, 5:15, 5:15] = 221  # its endplate
    arr[9:11, 5:15, 5:15] = 121  # L2/L3 disc
    arr[11:17, 5:15, 5:15] = 20  # L1 (out of order on purpose)
    arr[17:18, 5:15, 5:15] = 128  # T13/L1 disc: no code
    labels = sitk.GetImageFromArray(arr)
    labels.CopyInformation(image)
    seg, messages = results.import_segmentation(volume, labels)
    assert messages == []
    # cranial to caudal: the disc below T13 comes before L1; each vertebra is followed by its endplate and disc
    assert N.segment_names(seg) == ["T13/L1 disc", "L1", "L2", "L2 endplate", "L2/L3 disc"]
    segmentation = seg.GetSegmentation()
    disc = segmentation.GetSegment(N.segment_id_by_name(seg, "L2/L3 disc"))
    entry = terminology.parse_entry(disc.GetTerminology())
    assert entry["type"] == ("SCT", "67459009", "L2/L3 disc")
    np.testing.assert_allclose(disc.GetColor(), L.structure(121).color_float, atol=1e-6)
    uncoded = segmentation.GetSegment(N.segment_id_by_name(seg, "T13/L1 disc"))
    assert terminology.parse_entry(uncoded.GetTerminology())["type"] == ("", "", "")
    ids = [N.segment_id_by_name(seg, n) for n in N.segment_names(seg)]
    back = N.labelmap_array_from_segmentation(seg, volume, segment_ids=ids)
    np.testing.assert_array_equal(back, arr)


def test_the_structure_map_becomes_its_own_segmentation_voxel_for_voxel(scene):
    volume, image = _volume(scene)
    arr = np.zeros(sitk.GetArrayViewFromImage(image).shape, np.uint8)
    arr[2:8, 5:12, 5:15] = S.CORPUS
    arr[2:8, 12:14, 5:15] = S.ARCUS
    arr[8:10, 5:12, 5:15] = S.DISC
    arr[2:20, 15:18, 8:12] = S.CANAL
    arr[2:20, 16:17, 9:11] = S.CORD
    semantic = sitk.GetImageFromArray(arr)
    semantic.CopyInformation(image)
    node = results.import_structures(volume, semantic)
    assert node.GetName() == "MR structures" and node is results.find_output(volume, results.ROLE_STRUCTURES)
    assert node is not results.find_output(volume, results.ROLE_SEGMENTATION)
    segmentation = node.GetSegmentation()
    names = N.segment_names(node)
    assert set(names) == {S.NAMES[v] for v in (S.CORPUS, S.ARCUS, S.DISC, S.CANAL, S.CORD)}
    for sid in (S.CORPUS, S.ARCUS, S.DISC, S.CANAL, S.CORD):
        segment_id = N.segment_id_by_name(node, S.NAMES[sid])
        mask = slicer.util.arrayFromSegmentBinaryLabelmap(node, segment_id, volume)
        np.testing.assert_array_equal(mask > 0, arr == sid)
        segment = segmentation.GetSegment(segment_id)
        assert terminology.get_tag(segment, terminology.STRUCTURE_TAG) == str(sid)
    cord = segmentation.GetSegment(N.segment_id_by_name(node, S.NAMES[S.CORD]))
    assert terminology.parse_entry(cord.GetTerminology())["type"] == ("SCT", "2748008", "Spinal cord")
    again = results.import_structures(volume, semantic)  # a second run replaces, not adds
    assert again is node and len(N.segment_names(node)) == 5
