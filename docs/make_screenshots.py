"""Render the SpineSeg screenshots of the docs and the Extensions Index with the Slicer core libraries.

    python docs/make_screenshots.py [--out docs] [--size 900] [--spacing 1.0] [--run-pipeline --seed S --region R]

No Slicer application and no display: the ``slicer-core`` wheel's MRML displayable managers draw
into an offscreen EGL render window (needs libegl1/libegl-mesa0). The scene is what the SpineSeg
module shows after a run: a synthetic lumbar CT (SpineSegLib.phantom), the vertebra segmentation and
points imported by the module's own results code, and the heatmaps as a foreground overlay.
Without ``--run-pipeline`` the "result" is the phantom's ground truth and the heatmaps are Gaussians
at its vertebra centres (fast, for the test); with it, the installed models segment the phantom.
The docs' images: ``--run-pipeline --seed 100003 --region cervical`` (a held-out seed).

Writes ``screenshot_slices.png`` (sagittal and coronal views side by side) and ``screenshot_3d.png``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

REPO = Path(__file__).resolve().parent.parent
for p in (REPO / "Testing", REPO / "SpineSeg", REPO):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402


def scene_input(spacing, seed, region, image_path, labels_path, run_pipeline):
    """(CT, label map, body centroids): a real CT with its ground truth, a phantom, or the tests' synthetic CT."""
    if image_path is not None:
        from SpineSegLib.body_centroids import body_centroids
        from SpineSegLib.io import read_image, read_labelmap

        if labels_path is None and not run_pipeline:
            raise SystemExit("--image without --labels needs --run-pipeline")
        labels = read_labelmap(labels_path) if labels_path else None
        return read_image(image_path), labels, body_centroids(labels) if labels is not None else None
    try:
        from SpineSegLib.phantom import PhantomConfig, generate_phantom
    except ImportError:  # the phantom generator is not there: the tests' simple synthetic CT
        from slicer_fixtures import synthetic_lumbar_ct

        synthetic = synthetic_lumbar_ct(spacing=(spacing,) * 3, size=tuple(round(s / spacing) for s in (80, 80, 168)))
        return synthetic.image, synthetic.labels, synthetic.centroids
    phantom = generate_phantom(seed, PhantomConfig(region=region, spacing=(spacing,) * 3, noise=0.5))
    return phantom.image, phantom.vertebra_labels, phantom.body_centroids


def build_scene(
    scene,
    spacing: float = 1.0,
    run_pipeline: bool = False,
    seed: int = 1,
    region: str = "lumbar",
    image_path: Path | None = None,
    labels_path: Path | None = None,
):
    """(volume, segmentation, markups, heatmap) of a CT as the module shows them.

    The CT is ``image_path`` (a real one; its ground truth ``labels_path`` stands in for the result
    without ``run_pipeline``) or else a synthetic CT of ``region``.
    """
    from SpineSegSlicerLib import logic, results
    from SpineSegSlicerLib import nodes as N

    from SpineSegLib import labels as L
    from SpineSegLib.geometry import Grid
    from SpineSegLib.heatmaps import gaussian_heatmap

    image, labels, centroids = scene_input(spacing, seed, region, image_path, labels_path, run_pipeline)
    volume = N.volume_from_sitk(scene, image, "CT")
    display = volume.GetDisplayNode()
    display.SetAutoWindowLevel(False)
    display.SetWindowLevel(1800, 400)
    if run_pipeline:
        outcome = logic.SpineSegLogic().process(volume)
        return volume, outcome.segmentation, outcome.centroids, outcome.heatmap
    # Heatmaps: one Gaussian per vertebra centre on a 2 mm grid, channel order HEATMAP_LABELS.
    grid = Grid.of(
        sitk.Resample(
            image,
            [int(np.ceil(s * sp / 2.0)) for s, sp in zip(image.GetSize(), image.GetSpacing())],
            sitk.Transform(),
            sitk.sitkLinear,
            image.GetOrigin(),
            (2.0, 2.0, 2.0),
            image.GetDirection(),
        )
    )
    channels = np.zeros((*grid.shape_kji, len(L.HEATMAP_LABELS)), np.float32)
    for label, point in centroids.items():
        if label in L.HEATMAP_LABELS:
            channels[..., L.HEATMAP_LABELS.index(label)] = gaussian_heatmap(
                grid.shape_kji, grid.physical_to_index(point)[0], 4.0
            )
    heat_image = grid.apply(sitk.GetImageFromArray(channels, isVector=True))
    store = results.HeatmapChannels.from_image(heat_image, list(L.HEATMAP_LABELS))
    heat = results.import_heatmaps(volume, store)
    segmentation, _ = results.import_segmentation(volume, labels)
    responses = {k: store.response(k, p) for k, p in centroids.items() if k in L.HEATMAP_LABELS}
    markups = results.import_centroids(volume, centroids, {k: v for k, v in responses.items() if v is not None})
    return volume, segmentation, markups, heat


class Renderer:
    """An offscreen render window with Slicer's displayable managers, slice or 3D."""

    def __init__(self, app_logic, scene, size: tuple[int, int]):
        import vtk

        self.vtk = vtk
        self.app, self.scene = app_logic, scene
        self.window = vtk.vtkRenderWindow()
        self.window.SetOffScreenRendering(1)
        self.window.SetSize(*size)
        self.renderer = vtk.vtkRenderer()
        self.window.AddRenderer(self.renderer)
        self.interactor = vtk.vtkRenderWindowInteractor()
        self.interactor.SetRenderWindow(self.window)

    def png(self, path: Path) -> Path:
        vtk = self.vtk
        self.window.Render()
        grab = vtk.vtkWindowToImageFilter()
        grab.SetInput(self.window)
        grab.ReadFrontBufferOff()
        grab.Update()
        writer = vtk.vtkPNGWriter()
        writer.SetFileName(str(path))
        writer.SetInputConnection(grab.GetOutputPort())
        writer.Write()
        return path


def render_slice(
    app_logic, scene, volume, heat, segmentation, markups, orientation: str, size: tuple[int, int], path: Path
) -> Path:
    """One slice view (CT, heatmap overlay, segment outlines and fill, vertebra labels) through the spine."""
    import slicer
    from SpineSegSlicerLib import nodes as N

    r = Renderer(app_logic, scene, size)
    r.renderer.GetActiveCamera().ParallelProjectionOn()
    factory = slicer.vtkMRMLSliceViewDisplayableManagerFactory.GetInstance()
    factory.SetMRMLApplicationLogic(app_logic)
    for dm in ("vtkMRMLSegmentationsDisplayableManager2D", "vtkMRMLMarkupsDisplayableManager"):
        if not factory.IsDisplayableManagerRegistered(dm):
            factory.RegisterDisplayableManager(dm)
    group = slicer.vtkMRMLDisplayableManagerGroup()
    group.Initialize(factory, r.renderer)
    logic = slicer.vtkMRMLSliceLogic()
    logic.SetMRMLApplicationLogic(app_logic)
    app_logic.GetSliceLogics().AddItem(logic)
    logic.SetMRMLScene(scene)
    node = logic.AddSliceNode(orientation)
    node.SetOrientation(orientation)
    node.SetLayoutColor(0.0, 0.0, 0.0)
    group.SetMRMLDisplayableNode(node)
    composite = logic.GetSliceCompositeNode()
    composite.SetBackgroundVolumeID(volume.GetID())
    if heat is not None:
        composite.SetForegroundVolumeID(heat.GetID())
        composite.SetForegroundOpacity(0.45)
    logic.ResizeSliceNode(*size)
    logic.FitSliceToBackground()
    if segmentation is not None:  # centre on the spine and let it fill the view
        bounds = [0.0] * 6
        segmentation.GetRASBounds(bounds)
        lo, hi = np.array(bounds[0::2]), np.array(bounds[1::2])
        center = (lo + hi) / 2.0
        if markups is not None and markups.GetNumberOfControlPoints():  # through the vertebral bodies
            center = np.mean([p for _, _, p in N.markups_points(markups)], axis=0)
        node.JumpSliceByCentering(*center)
        in_plane = {"Sagittal": (1, 2), "Coronal": (0, 2), "Axial": (0, 1)}[orientation]
        extent = (hi - lo)[list(in_plane)] * 1.25
        aspect = size[0] / size[1]
        height = max(extent[1], extent[0] / aspect)
        fov = node.GetFieldOfView()
        node.SetFieldOfView(height * aspect, height, fov[2])
    mapper = r.vtk.vtkImageMapper()
    mapper.SetColorWindow(255)
    mapper.SetColorLevel(127.5)
    mapper.SetInputConnection(logic.GetImageDataConnection())
    actor = r.vtk.vtkActor2D()
    actor.SetMapper(mapper)
    actor.GetProperty().SetDisplayLocationToBackground()
    r.renderer.AddViewProp(actor)
    r.window.Render()
    out = r.png(path)
    app_logic.GetSliceLogics().RemoveItem(logic)
    return out


def render_3d(app_logic, scene, segmentation, markups, size: tuple[int, int], path: Path) -> Path:
    """Segment surfaces and vertebra labels in a 3D view, seen from the patient's left-anterior side."""
    import slicer

    segmentation.CreateClosedSurfaceRepresentation()
    r = Renderer(app_logic, scene, size)
    factory = slicer.vtkMRMLThreeDViewDisplayableManagerFactory.GetInstance()
    factory.SetMRMLApplicationLogic(app_logic)
    for dm in (
        "vtkMRMLCameraDisplayableManager",
        "vtkMRMLViewDisplayableManager",
        "vtkMRMLModelDisplayableManager",
        "vtkMRMLSegmentationsDisplayableManager3D",
        "vtkMRMLMarkupsDisplayableManager",
    ):
        if not factory.IsDisplayableManagerRegistered(dm):
            factory.RegisterDisplayableManager(dm)
    group = slicer.vtkMRMLDisplayableManagerGroup()
    group.Initialize(factory, r.renderer)
    view_logic = slicer.vtkMRMLViewLogic()
    view_logic.SetMRMLApplicationLogic(app_logic)
    app_logic.GetViewLogics().AddItem(view_logic)
    view_logic.SetMRMLScene(scene)
    view = view_logic.AddViewNode("1")
    view.SetBoxVisible(False)
    view.SetAxisLabelsVisible(False)
    view.SetBackgroundColor(0.12, 0.14, 0.2)
    view.SetBackgroundColor2(0.3, 0.33, 0.4)
    group.SetMRMLDisplayableNode(view)
    bounds = [0.0] * 6
    segmentation.GetRASBounds(bounds)
    center = np.array([(bounds[2 * a] + bounds[2 * a + 1]) / 2.0 for a in range(3)])
    extent = max(bounds[5] - bounds[4], bounds[3] - bounds[2], bounds[1] - bounds[0])
    camera = r.renderer.GetActiveCamera()
    camera.SetFocalPoint(*center)
    camera.SetPosition(*(center + np.array([-1.75, 1.4, 0.25]) * extent))
    camera.SetViewUp(0.0, 0.0, 1.0)
    r.renderer.ResetCameraClippingRange()
    display = markups.GetDisplayNode()
    display.SetTextScale(4.0)
    display.SetOccludedVisibility(True)  # the points sit inside the bodies: show their labels anyway
    display.SetOccludedOpacity(1.0)
    out = r.png(path)
    app_logic.GetViewLogics().RemoveItem(view_logic)
    return out


def side_by_side(paths: list[Path], target: Path) -> Path:
    from PIL import Image

    images = [Image.open(p).convert("RGB") for p in paths]
    out = Image.new("RGB", (sum(i.width for i in images), max(i.height for i in images)))
    x = 0
    for image in images:
        out.paste(image, (x, 0))
        x += image.width
    out.save(target)
    return target


def make_screenshots(
    out: Path,
    size: int = 900,
    spacing: float = 1.0,
    run_pipeline: bool = False,
    seed: int = 1,
    region: str = "lumbar",
    image_path: Path | None = None,
    labels_path: Path | None = None,
) -> list[Path]:
    import slicer_headless as H

    scene = H.init()
    app = H.app_logic()
    volume, segmentation, markups, heat = build_scene(
        scene, spacing, run_pipeline, seed, region, image_path, labels_path
    )
    out.mkdir(parents=True, exist_ok=True)
    parts = [
        render_slice(
            app,
            scene,
            volume,
            heat,
            segmentation,
            markups,
            orientation,
            (size // 2, size),
            out / f"_slice_{orientation}.png",
        )
        for orientation in ("Sagittal", "Coronal")
    ]
    slices = side_by_side(parts, out / "screenshot_slices.png")
    for p in parts:
        p.unlink()
    view3d = render_3d(app, scene, segmentation, markups, (size, size), out / "screenshot_3d.png")
    return [slices, view3d]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=REPO / "docs")
    p.add_argument("--size", type=int, default=900, help="image height in pixels (default 900)")
    p.add_argument("--spacing", type=float, default=1.0, help="voxel spacing of the synthetic CT in mm")
    p.add_argument("--run-pipeline", action="store_true", help="segment with the installed models")
    p.add_argument("--seed", type=int, default=1, help="phantom seed (>= 100000: never used in training)")
    p.add_argument("--region", default="lumbar", help="phantom region: full, cervical, thoracic, lumbar")
    p.add_argument("--image", type=Path, help="a real CT instead of a phantom (e.g. the bundled VerSe case)")
    p.add_argument("--labels", type=Path, help="its ground-truth vertebra mask (shown without --run-pipeline)")
    args = p.parse_args(argv)
    shots = make_screenshots(
        args.out, args.size, args.spacing, args.run_pipeline, args.seed, args.region, args.image, args.labels
    )
    for path in shots:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
