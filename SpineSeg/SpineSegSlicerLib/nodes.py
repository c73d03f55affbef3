"""MRML nodes <-> SpineSeg's data types: SimpleITK images (LPS) and Centroids (LPS mm).

Slicer's world frame is RAS, ITK's and SpineSeg's is LPS: the conversions flip x and y exactly
(no resampling), so a volume exported here and read by SpineSegLib has the same voxels and the same
physical geometry. Every function takes the scene from the nodes it gets (never a global scene).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import slicer
import vtk

from SpineSegLib import labels as L
from SpineSegLib.centroids import Centroids

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
COLOR_TABLE_NAME = "SpineSeg vertebrae"
COLOR_TABLE_ATTRIBUTE = "SpineSeg.VertebraColorTable"


# ----------------------------------------------------------------------------------------------
# Volumes


def ijk_to_ras(node) -> np.ndarray:
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])


def sitk_from_volume(node) -> sitk.Image:
    """The volume as a SimpleITK image in LPS (scalar; vector volumes keep their components)."""
    image_data = node.GetImageData()
    if image_data is None:
        raise ValueError(f"volume {node.GetName()!r} has no image data")
    array = slicer.util.arrayFromVolume(node)
    is_vector = array.ndim == 4
    img = sitk.GetImageFromArray(np.array(array, copy=True), isVector=is_vector)
    a = ijk_to_ras(node)
    spacing = np.linalg.norm(a[:3, :3], axis=0)
    img.SetSpacing(spacing.tolist())
    img.SetDirection((LPS_TO_RAS @ (a[:3, :3] / spacing)).ravel().tolist())
    img.SetOrigin((LPS_TO_RAS @ a[:3, 3]).tolist())
    return img


def ijk_to_ras_of(image: sitk.Image) -> np.ndarray:
    a = np.eye(4)
    a[:3, :3] = (LPS_TO_RAS @ np.array(image.GetDirection()).reshape(3, 3)) * np.array(image.GetSpacing())
    a[:3, 3] = LPS_TO_RAS @ np.array(image.GetOrigin())
    return a


def set_volume_from_sitk(node, image: sitk.Image) -> None:
    """Replace ``node``'s voxels and geometry with ``image``'s (LPS -> RAS, exact)."""
    slicer.util.updateVolumeFromArray(node, sitk.GetArrayFromImage(image))
    node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(ijk_to_ras_of(image)))


def volume_from_sitk(scene, image: sitk.Image, name: str, class_name: str = "vtkMRMLScalarVolumeNode"):
    """A new volume node in ``scene`` holding ``image``."""
    node = scene.AddNewNodeByClass(class_name, name)
    set_volume_from_sitk(node, image)
    node.CreateDefaultDisplayNodes()
    return node


def same_geometry(a, b, tol: float = 1e-4) -> bool:
    """Whether two volume nodes have the same voxel grid."""
    da, db = a.GetImageData(), b.GetImageData()
    if da is None or db is None or da.GetDimensions() != db.GetDimensions():
        return False
    return bool(np.allclose(ijk_to_ras(a), ijk_to_ras(b), atol=tol, rtol=0))


# ----------------------------------------------------------------------------------------------
# Colour table: index = VerSe id, colour name = vertebra name (so label value <-> segment name)


def vertebra_color_table(scene):
    """The scene's SpineSeg colour table (created once): entry i is VerSe id i, named and coloured as in the table.

    Entries 100+X and 200+X are the discs and endplates of vertebra X (the MR pipeline's instances).
    """
    nodes = scene.GetNodesByClass("vtkMRMLColorTableNode")
    nodes.UnRegister(None)
    for i in range(nodes.GetNumberOfItems()):
        node = nodes.GetItemAsObject(i)
        if node.GetAttribute(COLOR_TABLE_ATTRIBUTE) == "1":
            return node
    node = scene.AddNewNodeByClass("vtkMRMLColorTableNode", COLOR_TABLE_NAME)
    node.SetAttribute(COLOR_TABLE_ATTRIBUTE, "1")
    node.SetTypeToUser()
    top = L.ENDPLATE_OFFSET + max(L.LABELS)
    node.SetNumberOfColors(top + 1)
    node.SetColor(0, "Background", 0.0, 0.0, 0.0, 0.0)
    for i in range(1, top + 1):
        row = L.row_of(i)
        if row is not None:
            node.SetColor(i, row.name, *row.color_float, 1.0)
        else:
            node.SetColor(i, f"unused {i}", 0.5, 0.5, 0.5, 0.0)
    return node


# ----------------------------------------------------------------------------------------------
# Segmentations


def segment_id_by_name(segmentation_node, name: str) -> str | None:
    segmentation = segmentation_node.GetSegmentation()
    for i in range(segmentation.GetNumberOfSegments()):
        sid = segmentation.GetNthSegmentID(i)
        if segmentation.GetSegment(sid).GetName() == name:
            return sid
    return None


def segment_names(segmentation_node) -> list[str]:
    segmentation = segmentation_node.GetSegmentation()
    return [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]


def reference_volume(segmentation_node):
    """The volume a segmentation was made on (its reference-geometry node reference), or None."""
    role = slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole()
    return segmentation_node.GetNodeReference(role)


def _string_array(values) -> vtk.vtkStringArray:
    arr = vtk.vtkStringArray()
    for v in values:
        arr.InsertNextValue(v)
    return arr


def labelmap_array_from_segmentation(segmentation_node, reference, segment_ids=None) -> np.ndarray:
    """[k, j, i] uint8 array of VerSe ids on ``reference``'s grid from the segments named like vertebrae.

    Export goes through the SpineSeg colour table, so a segment's label value is the id of its name;
    segments with other names are left out. Overlapping segments: the later segment wins (Slicer's rule).
    """
    scene = segmentation_node.GetScene()
    table = vertebra_color_table(scene)
    segmentation = segmentation_node.GetSegmentation()
    if segment_ids is None:
        segment_ids = [
            segmentation.GetNthSegmentID(i)
            for i in range(segmentation.GetNumberOfSegments())
            if _is_vertebra_name(segmentation.GetNthSegment(i).GetName())
        ]
    shape = tuple(reversed(reference.GetImageData().GetDimensions()))
    if not segment_ids:
        return np.zeros(shape, np.uint8)
    out = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__spineseg_export__")
    try:
        ok = slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
            segmentation_node,
            _string_array(segment_ids),
            out,
            reference,
            slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY,
            table,
        )
        if not ok:
            raise RuntimeError(f"exporting segmentation {segmentation_node.GetName()!r} to a label map failed")
        array = np.array(slicer.util.arrayFromVolume(out), dtype=np.uint8, copy=True)
    finally:
        display = out.GetDisplayNode()
        scene.RemoveNode(out)
        if display is not None:
            scene.RemoveNode(display)
    if array.shape != shape:
        raise RuntimeError(f"exported label map has shape {array.shape}, expected {shape}")
    return array


def labelmap_from_segmentation(segmentation_node, reference=None) -> sitk.Image:
    """The vertebra segments as a uint8 VerSe-id label map (SimpleITK, LPS) on the reference volume's grid."""
    reference = reference or reference_volume(segmentation_node)
    if reference is None:
        raise ValueError(
            f"segmentation {segmentation_node.GetName()!r} has no reference volume; choose the volume it belongs to"
        )
    image = sitk.GetImageFromArray(labelmap_array_from_segmentation(segmentation_node, reference))
    geometry = sitk_geometry_of(reference)
    image.CopyInformation(geometry)
    return image


def sitk_geometry_of(volume) -> sitk.Image:
    """A 1-byte-per-voxel SimpleITK image with ``volume``'s grid (for CopyInformation)."""
    dims = volume.GetImageData().GetDimensions()
    img = sitk.Image([int(d) for d in dims], sitk.sitkUInt8)
    a = ijk_to_ras(volume)
    spacing = np.linalg.norm(a[:3, :3], axis=0)
    img.SetSpacing(spacing.tolist())
    img.SetDirection((LPS_TO_RAS @ (a[:3, :3] / spacing)).ravel().tolist())
    img.SetOrigin((LPS_TO_RAS @ a[:3, 3]).tolist())
    return img


def segment_mask(segmentation_node, segment_id: str, reference) -> np.ndarray:
    """[k, j, i] bool mask of one segment on ``reference``'s grid."""
    scene = segmentation_node.GetScene()
    out = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__spineseg_segment__")
    try:
        ok = slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
            segmentation_node,
            _string_array([segment_id]),
            out,
            reference,
            slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY,
        )
        if not ok:
            raise RuntimeError(f"exporting segment {segment_id!r} failed")
        return np.array(slicer.util.arrayFromVolume(out)) > 0
    finally:
        display = out.GetDisplayNode()
        scene.RemoveNode(out)
        if display is not None:
            color = display.GetColorNode()
            scene.RemoveNode(display)
            if color is not None and color.GetName().startswith("__spineseg_segment__"):
                scene.RemoveNode(color)


def set_segment_mask(segmentation_node, segment_id: str, mask: np.ndarray, reference) -> None:
    """Replace one segment's binary labelmap by ``mask`` ([k, j, i] on ``reference``'s grid)."""
    scene = segmentation_node.GetScene()
    label = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__spineseg_import__")
    try:
        slicer.util.updateVolumeFromArray(label, np.ascontiguousarray(mask, dtype=np.uint8))
        label.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(ijk_to_ras(reference)))
        segmentation = segmentation_node.GetSegmentation()
        segment = segmentation.GetSegment(segment_id)
        # Empty the segment first: importing an empty label map would otherwise leave the old voxels.
        was_empty = not np.any(mask)
        ok = slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(
            label, segmentation_node, _string_array([segment_id])
        )
        if not ok:
            raise RuntimeError(f"importing the mask of segment {segment.GetName()!r} failed")
        if was_empty:
            slicer.vtkSlicerSegmentationsModuleLogic.ClearSegment(segmentation_node, segment_id)
    finally:
        scene.RemoveNode(label)


def _is_vertebra_name(name: str) -> bool:
    try:
        L.id_of(name)
    except KeyError:
        return False
    return True


# ----------------------------------------------------------------------------------------------
# Markups


def markups_points(markups_node) -> list[tuple[int, str, np.ndarray]]:
    """(index, label text, RAS position) of every control point (positions in the node's own frame)."""
    out = []
    for i in range(markups_node.GetNumberOfControlPoints()):
        p = [0.0, 0.0, 0.0]
        markups_node.GetNthControlPointPosition(i, p)
        out.append((i, markups_node.GetNthControlPointLabel(i).strip(), np.array(p, float)))
    return out


def centroids_from_markups(markups_node) -> tuple[Centroids, list[str]]:
    """The control points as Centroids (LPS mm) and the problems that kept points out.

    A point counts when its label is a vertebra name (C1..L5, T13, L6, S, Co; case-insensitive);
    points with unknown or repeated labels are reported, not guessed.
    """
    points: dict[int, np.ndarray] = {}
    problems: list[str] = []
    seen: dict[int, str] = {}
    for i, text, ras in markups_points(markups_node):
        try:
            label = L.id_of(text)
        except KeyError:
            problems.append(f"point {i + 1} has the label {text!r}, which is not a vertebra name (C1..L5, T13, L6, S)")
            continue
        if label in seen:
            problems.append(f"two points are labelled {L.name_of(label)} (points {seen[label]} and {i + 1})")
            continue
        seen[label] = str(i + 1)
        points[label] = ras
    return Centroids.from_ras(points), problems


def set_markups_from_centroids(markups_node, centroids: Centroids, descriptions: dict[int, str] | None = None) -> None:
    """Replace the control points by one point per centroid (RAS), labelled with the vertebra name."""
    descriptions = descriptions or {}
    with slicer.util.NodeModify(markups_node):
        markups_node.RemoveAllControlPoints()
        for label, ras in centroids.ras().items():
            i = markups_node.AddControlPoint(vtk.vtkVector3d(*ras), L.name_of(label))
            if label in descriptions:
                markups_node.SetNthControlPointDescription(i, descriptions[label])
