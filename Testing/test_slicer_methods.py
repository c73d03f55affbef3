"""The Slicer module with several methods: each pipeline's buttons come from its method, and ct-lumbar runs.

Runs go through the real subprocess on the Slicer core libraries, with the tiny model sets of
:mod:`slicer_fixtures` (the random tiny ct-lumbar models make a well-formed, meaningless result);
the module's result is compared voxel by voxel with the library's runner on the same image.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

pytest.importorskip("slicer", reason="the Slicer core libraries (pip install slicer-core vtk==9.6.2) are needed")

import slicer_headless as H
from slicer_fixtures import tiny_lumbar_models, write_tiny_resources

H.add_module_paths()

from slicer_workflow import make_logic, study_volume  # noqa: E402
from SpineSegSlicerLib import logic as LG  # noqa: E402
from SpineSegSlicerLib import nodes as N  # noqa: E402
from SpineSegSlicerLib import results  # noqa: E402

from SpineSegLib.methods import get_method  # noqa: E402
from SpineSegLib.methods.lu_lumbar.runner import LumbarPipeline  # noqa: E402
from SpineSegLib.phantom import PhantomConfig, generate_phantom  # noqa: E402


def test_stage_actions_offer_what_each_method_supports():
    payer = LG.stage_actions(get_method("payer"))
    assert payer.run_all == ("spine", "vertebrae", "segmentation") and payer.run_first == ("spine",)
    assert payer.run_points == ("spine", "vertebrae") and payer.segment_from_points == ("segmentation",)
    assert payer.resegment_edited and payer.heatmaps
    lumbar = LG.stage_actions(get_method("lu_lumbar"))
    assert lumbar.run_all == ("localisation", "segmentation")
    assert lumbar.run_first is lumbar.run_points is lumbar.segment_from_points is None
    assert not lumbar.resegment_edited and not lumbar.heatmaps


@pytest.fixture(scope="module")
def lumbar_run(tmp_path_factory):
    scene = H.init()
    resources = write_tiny_resources(tmp_path_factory.mktemp("tiny"), lumbar=True)
    image = generate_phantom(11, PhantomConfig(region="lumbar", spacing=(2.0, 2.0, 2.5))).image
    volume, _, _ = study_volume(scene, image, "lumbar CT")
    logic = make_logic(resources, tmp_path_factory.mktemp("run"))
    outcome = logic.process(volume, pipeline="ct-lumbar", device="cpu")
    direct = LumbarPipeline("ct-lumbar", device="cpu", models=tiny_lumbar_models()).run(N.sitk_from_volume(volume))
    return dict(logic=logic, volume=volume, outcome=outcome, direct=direct)


def test_ct_lumbar_runs_in_the_module_and_gives_the_library_result(lumbar_run):
    volume, outcome, direct = lumbar_run["volume"], lumbar_run["outcome"], lumbar_run["direct"]
    assert lumbar_run["logic"].method_of("ct-lumbar").name == "lu_lumbar"
    assert outcome.timings["stages"] == ["localisation", "segmentation"]
    expected = sitk.GetArrayFromImage(direct.labelmap)
    assert expected.any()  # the random tiny networks do segment something here, so the comparison means something
    exported = N.labelmap_array_from_segmentation(outcome.segmentation, volume)
    np.testing.assert_array_equal(exported, expected)
    assert outcome.heatmap is None and results.find_output(volume, results.ROLE_HEATMAP) is None
    names = [m for m in outcome.vertebrae]
    assert names == [f"L{i}" for i in range(1, 7) if (expected == 19 + i).any()]


def test_ct_lumbar_refuses_stages_and_points_it_does_not_have(lumbar_run):
    logic, volume = lumbar_run["logic"], lumbar_run["volume"]
    with pytest.raises(ValueError, match="the stages of lu_lumbar are localisation, segmentation"):
        logic.start(volume, ("spine", "vertebrae"), pipeline="ct-lumbar", device="cpu")
