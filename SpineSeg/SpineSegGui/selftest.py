"""The module's "Reload and Test" workflow: run, check segments and terminology, move a point, shift labels.

A mixin for the module file's ScriptedLoadableModuleTest (Slicer finds the test class there); the logic
class is injected (``logicClass``) so the same steps run with the module's logic in Slicer and headless.
"""

import numpy as np
import slicer
from SpineSegSlicerLib import logic, measurements_table, models, nodes, terminology

from SpineSegLib import labels as L


class WorkflowTestMixin:
    """Runs the whole workflow on a synthetic lumbar CT with the installed models."""

    logicClass = None  # set by the module file: its SpineSegLogic

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_SpineSeg_workflow()

    def modelsReady(self):
        """(ready, reason): whether the default pipeline's models are installed."""
        try:
            ready = models.ModelManager().ready(logic.DEFAULT_PIPELINE)
            return ready, "the default pipeline's models are not installed"
        except Exception as exc:
            return False, str(exc)

    def loadTestVolume(self):
        """A synthetic lumbar CT from SpineSegLib's phantom generator (None when it is not available)."""
        try:
            from SpineSegLib.phantom import PhantomConfig, generate_phantom
        except ImportError:
            return None
        phantom = generate_phantom(1, PhantomConfig(region="lumbar", spacing=(2.0, 2.0, 2.0)))
        return nodes.volume_from_sitk(slicer.mrmlScene, phantom.image, "phantom")

    def _pointNames(self, markups):
        return [markups.GetNthControlPointLabel(i) for i in range(markups.GetNumberOfControlPoints())]

    def test_SpineSeg_workflow(self):
        ready, why = self.modelsReady()
        if not ready:
            self.delayDisplay(f"SpineSeg workflow test skipped: {why}")
            return
        self.delayDisplay("Loading a synthetic lumbar CT")
        volume = self.loadTestVolume()
        if volume is None:
            self.delayDisplay("SpineSeg workflow test skipped: SpineSegLib.phantom is not available")
            return

        self.delayDisplay("Running all stages")
        core = self.logicClass()
        outcome = core.process(volume)
        segmentation, markups, heat = outcome.segmentation, outcome.centroids, outcome.heatmap
        self.assertIsNotNone(heat)
        self.assertIsNotNone(markups)
        self.assertGreater(markups.GetNumberOfControlPoints(), 1)
        _, problems = nodes.centroids_from_markups(markups)
        self.assertEqual(problems, [])

        self.delayDisplay("Checking the segments")
        self.assertIsNotNone(segmentation)
        self.assertIs(nodes.reference_volume(segmentation), volume)
        names = nodes.segment_names(segmentation)
        self.assertGreater(len(names), 0)
        self.assertTrue(set(names) <= set(self._pointNames(markups)), "every segment belongs to a vertebra point")
        for name in names:
            label = L.id_of(name)
            segment = segmentation.GetSegmentation().GetSegment(nodes.segment_id_by_name(segmentation, name))
            self.assertEqual(segment.GetTerminology(), terminology.terminology_entry(label))
            self.assertTrue(np.allclose(segment.GetColor(), L.get(label).color_float, atol=1e-6))

        self.delayDisplay("Checking the measurements table")
        self.assertIsNotNone(outcome.measurements)
        self.assertEqual(measurements_table.level_names(outcome.measurements), names)

        self.delayDisplay("Moving one point and updating the segmentation")
        moved = markups.GetNthControlPointLabel(0)
        before = {n: nodes.segment_mask(segmentation, nodes.segment_id_by_name(segmentation, n), volume) for n in names}
        p = [0.0, 0.0, 0.0]
        markups.GetNthControlPointPosition(0, p)
        markups.SetNthControlPointPosition(0, p[0] + 3.0, p[1], p[2])
        update = core.update_segmentation(volume)
        self.assertEqual(update.edit.moved, [L.id_of(moved)])
        self.assertIs(update.measurements, outcome.measurements)
        self.assertEqual(measurements_table.level_names(update.measurements), names)
        for name, mask in before.items():
            if name != moved:
                after = nodes.segment_mask(segmentation, nodes.segment_id_by_name(segmentation, name), volume)
                self.assertTrue(np.array_equal(mask, after), f"segment {name} changed")

        self.delayDisplay("Shifting labels one way and back")
        pointNames = self._pointNames(markups)
        step = -1 if pointNames[-1] == "L6" else +1  # L6 cannot move further down
        core.shift_labels(volume, step)
        self.assertNotEqual(pointNames, self._pointNames(markups))
        core.shift_labels(volume, -step)
        self.assertEqual(pointNames, self._pointNames(markups))
        self.assertEqual(nodes.segment_names(segmentation), names)
        self.delayDisplay("SpineSeg workflow test passed")
