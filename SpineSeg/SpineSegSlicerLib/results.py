"""Pipeline outputs -> MRML nodes, next to the input volume in its subject-hierarchy study.

Three output nodes per input volume, found again on the next run by their role attribute and their
reference to the input volume:

* a segmentation, one segment per vertebra (name, colour, SNOMED CT terminology from the label table),
  with the input's reference geometry and a source-volume reference (DICOM SEG export needs both);
* a markups point list "<volume> vertebrae" in RAS, one control point per vertebra labelled with its
  name, the heatmap response at the point as description;
* a heatmap scalar volume shown as a coloured foreground overlay: one vertebra's channel or the
  maximum over all channels (:class:`HeatmapChannels` keeps every channel, sparsely, to switch fast).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import slicer

from SpineSegLib import labels as L
from SpineSegLib.centroids import Centroids

from . import nodes as N
from .terminology import apply_structure_look, apply_vertebra_look

ROLE_ATTRIBUTE = "SpineSeg.Role"
SOURCE_REFERENCE = "SpineSegSourceVolume"
ROLE_SEGMENTATION = "segmentation"
ROLE_CENTROIDS = "centroids"
ROLE_HEATMAP = "heatmap"
ROLE_STRUCTURES = "structures"  # the MR pipeline's semantic map (SPINEPS structure ids)
ROLE_MEASUREMENTS = "measurements"  # per-vertebra measurements table (SpineSegSlicerLib.measurements_table)
#: Segment tag: fingerprint of the mask SpineSeg wrote, to recognise segments edited by hand since.
FINGERPRINT_TAG = "SpineSeg.Fingerprint"
#: Markups attribute: the centroids of the last run or update (JSON, LPS mm), to detect edits.
RUN_CENTROIDS_ATTRIBUTE = "SpineSeg.RunCentroids"
HEATMAP_CHANNEL_ATTRIBUTE = "SpineSeg.HeatmapChannel"
HEATMAP_FILE_ATTRIBUTE = "SpineSeg.HeatmapFile"
HEATMAP_COLOR_NODE = "vtkMRMLPETProceduralColorNodePET-Heat"
#: Heatmap values below this are transparent in the overlay.
HEATMAP_DISPLAY_THRESHOLD = 0.05
#: Channel values below this are dropped from the in-memory channel store.
_SPARSE_FLOOR = 1e-3

_NAME_SUFFIX = {
    ROLE_SEGMENTATION: "segmentation",
    ROLE_CENTROIDS: "vertebrae",
    ROLE_HEATMAP: "heatmap",
    ROLE_STRUCTURES: "structures",
    ROLE_MEASUREMENTS: "measurements",
}
_CLASS = {
    ROLE_SEGMENTATION: "vtkMRMLSegmentationNode",
    ROLE_STRUCTURES: "vtkMRMLSegmentationNode",
    ROLE_CENTROIDS: "vtkMRMLMarkupsFiducialNode",
    ROLE_HEATMAP: "vtkMRMLScalarVolumeNode",
    ROLE_MEASUREMENTS: "vtkMRMLTableNode",
}


# ----------------------------------------------------------------------------------------------
# Output nodes of a volume


def output_name(volume, role: str) -> str:
    return f"{volume.GetName()} {_NAME_SUFFIX[role]}"


def find_output(volume, role: str):
    """The existing output node of ``role`` made from ``volume`` (the most recent one), or None."""
    scene = volume.GetScene()
    found = None
    collection = scene.GetNodesByClass(_CLASS[role])
    collection.UnRegister(None)
    for i in range(collection.GetNumberOfItems()):
        node = collection.GetItemAsObject(i)
        if node.GetAttribute(ROLE_ATTRIBUTE) == role and node.GetNodeReferenceID(SOURCE_REFERENCE) == volume.GetID():
            found = node
    return found


def output_node(volume, role: str, node=None):
    """``node``, the existing output of ``role``, or a new one; tagged, referenced and placed in the study."""
    node = node or find_output(volume, role)
    if node is None:
        node = volume.GetScene().AddNewNodeByClass(_CLASS[role], output_name(volume, role))
    node.SetAttribute(ROLE_ATTRIBUTE, role)
    node.SetNodeReferenceID(SOURCE_REFERENCE, volume.GetID())
    if hasattr(node, "GetDisplayNode") and node.GetDisplayNode() is None:  # a table has no display node
        node.CreateDefaultDisplayNodes()
    place_in_study(volume, node)
    return node


def place_in_study(volume, node) -> None:
    """Put ``node`` under the subject-hierarchy parent (study) of ``volume``, if the volume has one."""
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(volume.GetScene())
    if sh is None:
        return
    volume_item = sh.GetItemByDataNode(volume)
    if not volume_item:
        return
    parent = sh.GetItemParent(volume_item)
    item = sh.GetItemByDataNode(node)
    if not item:
        sh.CreateItem(parent, node)
    elif sh.GetItemParent(item) != parent:
        sh.SetItemParent(item, parent)


# ----------------------------------------------------------------------------------------------
# Segmentation


def mask_fingerprint(mask: np.ndarray) -> str:
    """Short hash of a [k, j, i] binary mask (same mask <=> same fingerprint)."""
    packed = np.packbits(np.ascontiguousarray(mask, dtype=bool).ravel())
    h = hashlib.sha1(packed.tobytes())
    h.update(str(mask.shape).encode())
    return h.hexdigest()[:16]


def known_labels(array: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """(array with ids that are no VerSe label, disc or endplate set to 0, the ids that were dropped)."""
    present = [int(v) for v in np.unique(array) if v]
    unknown = [v for v in present if L.row_of(v) is None]
    if unknown:
        array = np.where(np.isin(array, unknown), 0, array).astype(array.dtype)
    return array, unknown


def import_segmentation(volume, labelmap: sitk.Image, node=None) -> tuple[object, list[str]]:
    """Replace the volume's SpineSeg segmentation by ``labelmap`` (VerSe ids on the volume's grid).

    Returns the segmentation node and messages (e.g. dropped unknown ids).
    """
    scene = volume.GetScene()
    messages = []
    array = sitk.GetArrayFromImage(labelmap)
    reference_shape = tuple(reversed(volume.GetImageData().GetDimensions()))
    if array.shape != reference_shape:
        raise ValueError(f"label map shape {array.shape} differs from the volume's {reference_shape}")
    array, unknown = known_labels(array)
    if unknown:
        messages.append(f"label map ids {unknown} are not vertebra labels and were left out")
    seg = output_node(volume, ROLE_SEGMENTATION, node)
    seg.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    seg.SetNodeReferenceID(seg.GetReferenceImageGeometryReferenceRole(), volume.GetID())
    segmentation = seg.GetSegmentation()
    table = N.vertebra_color_table(scene)
    label_node = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__spineseg_labels__")
    try:
        slicer.util.updateVolumeFromArray(label_node, np.ascontiguousarray(array, dtype=np.uint8))
        label_node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(N.ijk_to_ras(volume)))
        label_node.CreateDefaultDisplayNodes()
        label_node.GetDisplayNode().SetAndObserveColorNodeID(table.GetID())
        with slicer.util.NodeModify(seg):
            segmentation.RemoveAllSegments()
            if array.any() and not slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(
                label_node, seg
            ):
                raise RuntimeError("importing the vertebra label map into the segmentation failed")
            for i in range(segmentation.GetNumberOfSegments()):
                segment = segmentation.GetNthSegment(i)
                label = L.any_id_of(segment.GetName())
                apply_vertebra_look(segment, label)
                segment.SetTag(FINGERPRINT_TAG, mask_fingerprint(array == label))
    finally:
        display = label_node.GetDisplayNode()
        scene.RemoveNode(label_node)
        if display is not None:
            scene.RemoveNode(display)
    order_segments(seg)
    return seg, messages


def order_segments(segmentation_node) -> None:
    """Sort vertebra segments cranial to caudal, each followed by its endplates and the disc below it
    (other segments keep their place after them)."""
    segmentation = segmentation_node.GetSegmentation()
    ids = [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]

    def key(sid: str) -> tuple[int, int, int]:
        name = segmentation.GetSegment(sid).GetName()
        try:
            label = L.any_id_of(name)
        except KeyError:
            return (1, ids.index(sid), 0)
        row = L.structure(label)
        if row is None:
            return (0, L.get(label).order, 0)
        return (0, L.get(row.level).order, 1 if row.kind == "endplate" else 2)

    for index, sid in enumerate(sorted(ids, key=key)):
        segmentation.SetSegmentIndex(sid, index)


def import_structures(volume, semantic: sitk.Image, node=None):
    """Replace the volume's MR structure segmentation by ``semantic`` (SPINEPS ids on the volume's grid).

    One segment per structure present, named and coloured after ``SpineSegLib.methods.spineps.semantic_ids``
    (split endplates 52/53 shown as their own segments), with the SNOMED CT code where one exists.
    """
    from SpineSegLib.methods.spineps import semantic_ids as S

    array = sitk.GetArrayFromImage(semantic)
    reference_shape = tuple(reversed(volume.GetImageData().GetDimensions()))
    if array.shape != reference_shape:
        raise ValueError(f"structure map shape {array.shape} differs from the volume's {reference_shape}")
    seg = output_node(volume, ROLE_STRUCTURES, node)
    seg.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    segmentation = seg.GetSegmentation()
    present = [int(v) for v in np.unique(array) if v in S.NAMES]
    with slicer.util.NodeModify(seg):
        segmentation.RemoveAllSegments()
        for sid in present:
            name = S.NAMES[sid]
            segment_id = segmentation.AddEmptySegment(name, name)
            slicer.util.updateSegmentBinaryLabelmapFromArray(
                np.ascontiguousarray(array == sid, dtype=np.uint8), seg, segment_id, volume
            )
            color = tuple(c / 255.0 for c in S.COLORS.get(sid, (128, 128, 128)))
            apply_structure_look(segmentation.GetSegment(segment_id), sid, name, color)
    return seg


# ----------------------------------------------------------------------------------------------
# Centroids


def run_centroids(markups_node) -> Centroids | None:
    """The centroids of the last run or update stored on ``markups_node`` (None if never run)."""
    text = markups_node.GetAttribute(RUN_CENTROIDS_ATTRIBUTE)
    if not text:
        return None
    data = json.loads(text)
    return Centroids({int(k): v for k, v in data.items()})


def store_run_centroids(markups_node, centroids: Centroids) -> None:
    data = {str(k): [float(x) for x in v] for k, v in centroids.items()}
    markups_node.SetAttribute(RUN_CENTROIDS_ATTRIBUTE, json.dumps(data))


def import_centroids(
    volume,
    centroids: Centroids,
    responses: dict[int, float] | None = None,
    node=None,
    flags: dict[int, list[str]] | None = None,
):
    """Replace the volume's vertebra point list by ``centroids`` (labels C1..L5, T13/L6, S).

    Each point's description holds its heatmap response and its plausibility flags ("REVIEW: ..."),
    so a doubted vertebra says so where the user looks at it.
    """
    responses = responses or {}
    flags = flags or {}
    markups = output_node(volume, ROLE_CENTROIDS, node)
    descriptions = {}
    for k in centroids.labels:
        parts = [f"heatmap response {responses[k]:.3f}"] if k in responses else []
        parts += [f"REVIEW: {f}" for f in flags.get(k, [])]
        if parts:
            descriptions[k] = "; ".join(parts)
    N.set_markups_from_centroids(markups, centroids, descriptions)
    display = markups.GetDisplayNode()
    if display is not None:
        display.SetTextScale(3.0)
        display.SetGlyphScale(2.0)
        display.SetSliceProjection(True)  # every slice shows the whole chain (faded off-slice): easy to review
        display.SetSliceProjectionOpacity(0.5)
    store_run_centroids(markups, centroids)
    return markups


# ----------------------------------------------------------------------------------------------
# Heatmaps


@dataclass
class HeatmapChannels:
    """All heatmap channels of a run: the max image dense, each channel as a box of its positive part.

    A channel keeps the values above 1e-3 (float16) and reads 0 elsewhere, negative responses of the
    SpatialConfiguration-Net included; the max image keeps the raw maximum over the channels.
    """

    template: sitk.Image  # scalar float32 image with the heatmap grid (values: the max over channels)
    labels: list[int]  # channel -> VerSe id
    boxes: dict[int, tuple[tuple[slice, slice, slice], np.ndarray]]  # label -> (slices, float16 values)

    @classmethod
    def from_image(cls, heatmaps: sitk.Image, labels: list[int]) -> HeatmapChannels:
        array = sitk.GetArrayViewFromImage(heatmaps)  # (K, J, I, C)
        if array.ndim == 3:
            array = array[..., None]
        if array.shape[-1] != len(labels):
            raise ValueError(f"heatmap image has {array.shape[-1]} channels but {len(labels)} labels were given")
        boxes = {}
        for c, label in enumerate(labels):
            channel = array[..., c]
            keep = channel > _SPARSE_FLOOR
            where = np.argwhere(keep)
            if len(where):
                lo, hi = where.min(axis=0), where.max(axis=0) + 1
                sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
                boxes[label] = (sl, np.where(keep[sl], channel[sl], 0.0).astype(np.float16))
        template = sitk.GetImageFromArray(array.max(axis=-1).astype(np.float32))
        template.SetSpacing(heatmaps.GetSpacing())
        template.SetOrigin(heatmaps.GetOrigin())
        template.SetDirection(heatmaps.GetDirection())
        return cls(template, list(labels), boxes)

    def channel(self, label: int | None) -> sitk.Image:
        """One vertebra's heatmap, or the maximum over all channels (``label`` None)."""
        if label is None:
            return self.template
        out = np.zeros(sitk.GetArrayViewFromImage(self.template).shape, np.float32)
        if label in self.boxes:
            sl, values = self.boxes[label]
            out[sl] = values
        img = sitk.GetImageFromArray(out)
        img.CopyInformation(self.template)
        return img

    def response(self, label: int, point_lps) -> float | None:
        """The channel of ``label`` at an LPS point (linear interpolation); None outside the grid."""
        img = self.channel(label)
        index = np.array(img.TransformPhysicalPointToContinuousIndex([float(x) for x in point_lps]))
        size = np.array(img.GetSize())
        if np.any(index < 0) or np.any(index > size - 1):
            return None
        from scipy import ndimage

        array = sitk.GetArrayViewFromImage(img)
        return float(ndimage.map_coordinates(array, index[::-1].reshape(3, 1), order=1)[0])


_CHANNEL_STORE: dict[tuple[int, str], HeatmapChannels] = {}


def channels_of(heat_node) -> HeatmapChannels | None:
    """The channel store of a heatmap node (from memory, else re-read from the run's heatmap file)."""
    key = (id(heat_node.GetScene()), heat_node.GetID())
    if key in _CHANNEL_STORE:
        return _CHANNEL_STORE[key]
    path = heat_node.GetAttribute(HEATMAP_FILE_ATTRIBUTE)
    if not path or not Path(path).is_file():
        return None
    channels = read_heatmap_file(Path(path))
    _CHANNEL_STORE[key] = channels
    return channels


def read_heatmap_file(path: Path) -> HeatmapChannels:
    """A ``<case>_heatmaps.nii.gz`` file (and its ``_heatmaps.json`` channel list when present)."""
    image = sitk.ReadImage(str(path))
    meta = path.with_name(path.name.replace("_heatmaps.nii.gz", "_heatmaps.json"))
    labels = list(L.HEATMAP_LABELS)
    if meta.is_file():
        labels = [int(x) for x in json.loads(meta.read_text(encoding="utf-8")).get("labels", labels)]
    return HeatmapChannels.from_image(image, labels)


def import_heatmaps(volume, channels: HeatmapChannels, node=None, label: int | None = None, source_file=None):
    """Create or update the volume's heatmap node showing ``label``'s channel (None: max of all)."""
    heat = output_node(volume, ROLE_HEATMAP, node)
    _CHANNEL_STORE[(id(heat.GetScene()), heat.GetID())] = channels
    if source_file:
        heat.SetAttribute(HEATMAP_FILE_ATTRIBUTE, str(source_file))
    show_heatmap_channel(heat, label, channels)
    display = heat.GetDisplayNode()
    display.SetAndObserveColorNodeID(HEATMAP_COLOR_NODE)
    display.SetAutoWindowLevel(False)
    display.SetWindowLevelMinMax(0.0, 1.0)
    display.SetApplyThreshold(True)
    display.SetLowerThreshold(HEATMAP_DISPLAY_THRESHOLD)
    display.SetUpperThreshold(1e6)
    display.SetInterpolate(True)
    return heat


def show_heatmap_channel(heat_node, label: int | None, channels: HeatmapChannels | None = None) -> None:
    """Show one vertebra's channel (VerSe id) or the maximum over all (None) in the heatmap node."""
    channels = channels or channels_of(heat_node)
    if channels is None:
        raise ValueError(f"the channels of heatmap {heat_node.GetName()!r} are no longer available; run again")
    if label is not None and label not in channels.labels:
        raise ValueError(f"the heatmap has no channel for {L.name_of(label)}")
    N.set_volume_from_sitk(heat_node, channels.channel(label))
    heat_node.SetAttribute(HEATMAP_CHANNEL_ATTRIBUTE, "max" if label is None else L.name_of(label))


def show_overlay(volume, heat_node, opacity: float = 0.5) -> None:
    """Every slice view: ``volume`` in the background, the heatmap as foreground overlay."""
    scene = volume.GetScene()
    composites = scene.GetNodesByClass("vtkMRMLSliceCompositeNode")
    composites.UnRegister(None)
    for i in range(composites.GetNumberOfItems()):
        composite = composites.GetItemAsObject(i)
        composite.SetBackgroundVolumeID(volume.GetID())
        composite.SetForegroundVolumeID(heat_node.GetID())
        composite.SetForegroundOpacity(opacity)
