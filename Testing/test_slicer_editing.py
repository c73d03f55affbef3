"""Review and correction in the SpineSeg module logic: moved/added/renamed/removed points, hand edits, shifts.

Every run goes through the real subprocess (``python -m SpineSegLib run``) with the tiny hand-set model
set of :mod:`slicer_fixtures`; results are compared voxel by voxel with SpineSegLib's Pipeline run
directly on the same image with the same models.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import SimpleITK as sitk

pytest.importorskip("slicer", reason="the Slicer core libraries (pip install slicer-core vtk==9.6.2) are needed")

import slicer_headless as H
from slicer_fixtures import synthetic_lumbar_ct, tiny_models, write_tiny_resources

H.add_module_paths()

from slicer_workflow import direct_run, make_logic, moved, seeded, segment_masks, wrapper_python  # noqa: E402
from SpineSegSlicerLib import editing, terminology  # noqa: E402
from SpineSegSlicerLib import logic as LG  # noqa: E402
from SpineSegSlicerLib import nodes as N  # noqa: E402

from SpineSegLib import labels as L  # noqa: E402
from SpineSegLib.centroids import Centroids  # noqa: E402


@pytest.fixture(scope="module")
def scene():
    """One scene for the module; each test makes its own volume (outputs are found per volume)."""
    return H.init()


@pytest.fixture(scope="module")
def resources(tmp_path_factory):
    return write_tiny_resources(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def models():
    return tiny_models()


def test_moving_one_point_re_segments_only_that_vertebra(scene, resources, models, tmp_path):
    volume, seg, markups = seeded(scene, models, "moved")
    logic = make_logic(resources, tmp_path)
    before = segment_masks(seg, volume)
    labels_before = N.labelmap_array_from_segmentation(seg, volume)
    moved(markups, "L3", (4.0, 0.0, 2.0))
    current, edit, problems = editing.detect_edits(markups)
    assert (edit.moved, edit.added, edit.removed, edit.renamed, problems) == ([22], [], [], {}, [])

    update = logic.update_segmentation(volume, device="cpu")
    assert update.merge.replaced == [22] and update.merge.kept_edited == []
    after = segment_masks(seg, volume)
    for name in ("L1", "L2", "L4", "L5"):
        np.testing.assert_array_equal(after[name], before[name])
    redo = sitk.GetArrayFromImage(
        direct_run(
            N.sitk_from_volume(volume), models, stages=("segmentation",), centroids=current, labels=[22]
        ).labelmap
    )
    expected = (redo == 22) & ((labels_before == 0) | (labels_before == 22))
    np.testing.assert_array_equal(after["L3"], expected)
    assert not np.array_equal(after["L3"], before["L3"])
    assert editing.detect_edits(markups)[1].any is False  # the update is now the reference

    # Running the vertebrae stage again puts L3 back where the network sees it; the segments are still
    # those of the moved point, so the moved-back point must show up as an edit to update.
    logic.process(volume, stages=("spine", "vertebrae"), device="cpu")
    _, edit, _ = editing.detect_edits(markups)
    assert edit.moved == [22] and not (edit.added or edit.removed or edit.renamed)
    np.testing.assert_array_equal(N.segment_mask(seg, N.segment_id_by_name(seg, "L3"), volume), after["L3"])


def test_hand_edited_segment_is_kept_unless_overwrite_is_asked(scene, resources, models, tmp_path):
    volume, seg, markups = seeded(scene, models, "hand-edited")
    logic = make_logic(resources, tmp_path)
    sid = N.segment_id_by_name(seg, "L4")
    edited = N.segment_mask(seg, sid, volume)
    edited[np.argwhere(edited)[0][0]] = False  # the user erased one slice of L4
    N.set_segment_mask(seg, sid, edited, volume)
    assert editing.is_hand_edited(seg, sid, volume)
    assert not editing.is_hand_edited(seg, N.segment_id_by_name(seg, "L2"), volume)
    moved(markups, "L4", (0.0, 3.0, 0.0))
    update = logic.update_segmentation(volume, device="cpu")
    assert update.merge.kept_edited == [23] and update.merge.replaced == []
    np.testing.assert_array_equal(N.segment_mask(seg, sid, volume), edited)
    moved(markups, "L4", (0.0, -3.0, 0.0))
    update = logic.update_segmentation(volume, device="cpu", overwriteEdited=True)
    assert update.merge.replaced == [23]
    assert not np.array_equal(N.segment_mask(seg, sid, volume), edited)
    assert not editing.is_hand_edited(seg, sid, volume)


def test_renamed_and_removed_points_rename_and_remove_segments_without_a_run(scene, models, tmp_path):
    volume, seg, markups = seeded(scene, models, "renamed")
    before = segment_masks(seg, volume)
    markups.SetNthControlPointLabel(markups.GetControlPointIndexByLabel("L5"), "L6")
    markups.RemoveNthControlPoint(markups.GetControlPointIndexByLabel("L1"))
    logic = LG.SpineSegLogic(python_executable="/nonexistent/python", work_root=tmp_path)  # must not be started
    update = logic.update_segmentation(volume)
    assert update.edit.renamed == {24: 25} and update.edit.removed == [20]
    assert N.segment_names(seg) == ["L2", "L3", "L4", "L6"]
    l6 = seg.GetSegmentation().GetSegment(N.segment_id_by_name(seg, "L6"))
    assert terminology.parse_entry(l6.GetTerminology())["type"] == ("SCT", "51282000", "Vertebra")
    assert terminology.parse_entry(l6.GetTerminology())["region"] == ("SCT", "122496007", "Lumbar spine")
    np.testing.assert_allclose(l6.GetColor(), np.array(L.get(25).color) / 255.0, atol=1e-6)
    np.testing.assert_array_equal(N.segment_mask(seg, N.segment_id_by_name(seg, "L6"), volume), before["L5"])
    assert editing.detect_edits(markups)[1].any is False


def test_shift_labels_renames_points_and_segments_consistently(scene, models, tmp_path):
    volume, seg, markups = seeded(scene, models, "shifted")
    logic = LG.SpineSegLogic(python_executable="/nonexistent/python", work_root=tmp_path)  # no run needed
    masks = segment_masks(seg, volume)
    report = logic.shift_labels(volume, -1)
    assert report.mapping == {20: 19, 21: 20, 22: 21, 23: 22, 24: 23} and report.problems == []
    assert [t for _, t, _ in N.markups_points(markups)] == ["T12", "L1", "L2", "L3", "L4"]
    assert N.segment_names(seg) == ["T12", "L1", "L2", "L3", "L4"]
    for old, new in report.mapping.items():
        segment = seg.GetSegmentation().GetSegment(N.segment_id_by_name(seg, L.name_of(new)))
        assert segment.GetTerminology() == terminology.terminology_entry(new)
        np.testing.assert_array_equal(
            N.segment_mask(seg, N.segment_id_by_name(seg, L.name_of(new)), volume), masks[L.name_of(old)]
        )
    assert editing.detect_edits(markups)[1].any is False  # a shift is not an edit to re-segment
    logic.shift_labels(volume, +1)
    logic.shift_labels(volume, +1)
    assert N.segment_names(seg) == ["L2", "L3", "L4", "L5", "L6"]
    logic.shift_labels(volume, -1)
    assert N.segment_names(seg) == ["L1", "L2", "L3", "L4", "L5"]


def test_shift_mapping_handles_transitional_vertebrae_and_the_ends():
    assert editing.shift_mapping([19, 28, 20], +1) == {19: 28, 28: 20, 20: 21}
    assert editing.shift_mapping([19, 28, 20], -1) == {19: 18, 28: 19, 20: 28}
    assert editing.shift_mapping([19, 20], +1) == {19: 20, 20: 21}  # no T13 in the chain: T12 -> L1
    assert editing.shift_mapping([24, 26], +1) == {24: 25, 26: 26}  # L5 -> L6, the sacrum keeps its name
    with pytest.raises(ValueError, match="C1"):
        editing.shift_mapping([1, 2], -1)
    with pytest.raises(ValueError, match="L6"):
        editing.shift_mapping([24, 25], +1)


def test_implausible_chain_is_flagged():
    # LPS z is superior: L3 placed above L2, and L4 only 5 mm below L3
    centroids = Centroids({20: [0, 0, 60], 21: [0, 0, 30], 22: [0, 0, 45], 23: [0, 0, 40]})
    assert editing.chain_problems(centroids) == ["L3 is above L2", "L3-L4: 5.0 mm apart (< 12.5 mm)"]
    assert editing.chain_problems(Centroids({20: [0, 0, 60], 21: [0, 0, 30]})) == []


@pytest.mark.skipif(sys.platform != "linux", reason="uses a shell wrapper as the Python executable")
def test_cancelled_update_changes_no_segment(scene, resources, models, tmp_path):
    volume, seg, markups = seeded(scene, models, "cancelled update")
    masks = segment_masks(seg, volume)
    moved(markups, "L2", (3.0, 0.0, 0.0))
    markups.SetNthControlPointLabel(markups.GetControlPointIndexByLabel("L5"), "L6")
    python, _ = wrapper_python(tmp_path)
    run = make_logic(resources, tmp_path, python_executable=python).update_segmentation(
        volume, device="cpu", waitForCompletion=False
    )
    run.cancel()
    with pytest.raises(LG.CancelledRun):
        make_logic(resources, tmp_path).finish(run)
    assert N.segment_names(seg) == ["L1", "L2", "L3", "L4", "L5"]  # the rename waits for a successful update
    for name, mask in masks.items():
        np.testing.assert_array_equal(N.segment_mask(seg, N.segment_id_by_name(seg, name), volume), mask)
    _, edit, _ = editing.detect_edits(markups)
    assert edit.moved == [21] and edit.renamed == {24: 25}  # still pending


def test_run_needs_points_for_the_segmentation_stage_alone(scene, tmp_path):
    volume = N.volume_from_sitk(scene, synthetic_lumbar_ct().image, "CT")
    with pytest.raises(ValueError, match="vertebrae stage first"):
        LG.SpineSegLogic(work_root=tmp_path).process(volume, stages=("segmentation",))
    assert os.listdir(tmp_path) == []


def test_segmentation_stage_alone_uses_the_edited_points(scene, resources, models, tmp_path):
    volume = N.volume_from_sitk(scene, synthetic_lumbar_ct().image, "CT")
    logic = make_logic(resources, tmp_path)
    outcome = logic.process(volume, stages=("spine", "vertebrae"), device="cpu")
    assert outcome.segmentation is None and outcome.centroids is not None and outcome.heatmap is not None
    markups = outcome.centroids
    markups.RemoveNthControlPoint(markups.GetControlPointIndexByLabel("L5"))
    moved(markups, "L2", (2.0, 0.0, 0.0))
    outcome = logic.process(volume, stages=("segmentation",), device="cpu")
    points, _ = N.centroids_from_markups(markups)
    direct = direct_run(N.sitk_from_volume(volume), models, stages=("segmentation",), centroids=points)
    np.testing.assert_array_equal(
        N.labelmap_array_from_segmentation(outcome.segmentation, volume), sitk.GetArrayFromImage(direct.labelmap)
    )
    assert N.segment_names(outcome.segmentation) == ["L1", "L2", "L3", "L4"]
    assert editing.detect_edits(markups)[1].any is False
