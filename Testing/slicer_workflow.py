"""Helpers of the Slicer workflow tests: logic on the tiny models, direct pipeline runs, seeded outputs."""

from __future__ import annotations

import stat
import sys

import numpy as np
import SimpleITK as sitk
import slicer_headless

slicer_headless.add_module_paths()

import slicer  # noqa: E402
from slicer_fixtures import synthetic_lumbar_ct  # noqa: E402
from SpineSegSlicerLib import logic as LG  # noqa: E402
from SpineSegSlicerLib import nodes as N  # noqa: E402
from SpineSegSlicerLib import results  # noqa: E402

from SpineSegLib.pipeline import Pipeline  # noqa: E402


def make_logic(resources, tmp_path, **kwargs) -> LG.SpineSegLogic:
    return LG.SpineSegLogic(environment={"SPINESEG_RESOURCES": str(resources)}, work_root=tmp_path / "work", **kwargs)


def study_volume(scene, image: sitk.Image, name: str = "CT"):
    """A volume node under patient -> study in the subject hierarchy, as Slicer's DICOM or Data module makes."""
    volume = N.volume_from_sitk(scene, image, name)
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    patient = sh.CreateSubjectItem(sh.GetSceneItemID(), "patient")
    study = sh.CreateStudyItem(patient, "study")
    sh.CreateItem(study, volume)
    return volume, sh, study


def direct_run(image: sitk.Image, models, **kwargs):
    return Pipeline(device="cpu", models=models).run(image, **kwargs)


def seeded(scene, models, name: str):
    """A volume with SpineSeg outputs imported from an in-process Pipeline run (the start state of edit tests)."""
    volume = N.volume_from_sitk(scene, synthetic_lumbar_ct().image, name)
    direct = direct_run(N.sitk_from_volume(volume), models)
    segmentation, _ = results.import_segmentation(volume, direct.labelmap)
    markups = results.import_centroids(volume, direct.centroids)
    return volume, segmentation, markups


def segment_masks(segmentation, reference) -> dict[str, np.ndarray]:
    return {
        n: N.segment_mask(segmentation, N.segment_id_by_name(segmentation, n), reference)
        for n in N.segment_names(segmentation)
    }


def moved(markups, name: str, delta_ras) -> None:
    i = markups.GetControlPointIndexByLabel(name)
    p = [0.0, 0.0, 0.0]
    markups.GetNthControlPointPosition(i, p)
    markups.SetNthControlPointPosition(i, *(np.array(p) + np.asarray(delta_ras, float)))


def wrapper_python(folder) -> tuple[str, object]:
    """A 'python' that starts the real one as a child (a process tree) and records the child's pid."""
    pidfile = folder / "child.pid"
    script = folder / "python-wrapper.sh"
    script.write_text(f'#!/bin/sh\n"{sys.executable}" "$@" &\necho $! > "{pidfile}"\nwait $!\n', encoding="utf-8")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script), pidfile


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False
