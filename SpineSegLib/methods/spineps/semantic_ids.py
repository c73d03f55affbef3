"""SPINEPS semantic label ids (TPTBox conventions) and the instance network's input channels."""

from __future__ import annotations

import numpy as np

ARCUS = 41
SPINOSUS = 42
COSTAL_L, COSTAL_R = 43, 44
SUP_ARTICULAR_L, SUP_ARTICULAR_R = 45, 46
INF_ARTICULAR_L, INF_ARTICULAR_R = 47, 48
CORPUS_BORDER = 49
CORPUS = 50
DENS = 51
ENDPLATE_SUP, ENDPLATE_INF = 52, 53
CORD = 60
CANAL = 61
ENDPLATE = 62
DISC = 100
SACRUM = 26

#: Structure id -> name, in the order of the paper's 14 structures (plus dens and split endplates).
NAMES: dict[int, str] = {
    ARCUS: "arcus vertebrae",
    SPINOSUS: "spinous process",
    COSTAL_L: "costal/transverse process left",
    COSTAL_R: "costal/transverse process right",
    SUP_ARTICULAR_L: "superior articular process left",
    SUP_ARTICULAR_R: "superior articular process right",
    INF_ARTICULAR_L: "inferior articular process left",
    INF_ARTICULAR_R: "inferior articular process right",
    CORPUS_BORDER: "vertebral body border",
    CORPUS: "vertebral body",
    DENS: "dens axis",
    ENDPLATE: "endplate",
    ENDPLATE_SUP: "superior endplate",
    ENDPLATE_INF: "inferior endplate",
    DISC: "intervertebral disc",
    CANAL: "spinal canal",
    CORD: "spinal cord",
    SACRUM: "sacrum",
}

#: Display colour (RGB 0..255) of each structure, as SPINEPS's snapshots tell them apart: bone warm,
#: discs and endplates light, canal and cord blue.
COLORS: dict[int, tuple[int, int, int]] = {
    ARCUS: (230, 160, 90),
    SPINOSUS: (200, 120, 60),
    COSTAL_L: (240, 200, 80),
    COSTAL_R: (220, 180, 60),
    SUP_ARTICULAR_L: (170, 210, 90),
    SUP_ARTICULAR_R: (140, 190, 70),
    INF_ARTICULAR_L: (110, 200, 150),
    INF_ARTICULAR_R: (90, 170, 130),
    CORPUS_BORDER: (250, 230, 190),
    CORPUS: (240, 200, 150),
    DENS: (255, 150, 150),
    ENDPLATE: (255, 255, 160),
    ENDPLATE_SUP: (255, 255, 160),
    ENDPLATE_INF: (255, 240, 120),
    DISC: (120, 200, 255),
    CANAL: (60, 90, 220),
    CORD: (250, 250, 250),
    SACRUM: (210, 180, 140),
}

#: Semantic ids that belong to a vertebra instance (everything but disc, canal, cord, sacrum).
VERTEBRA_IDS = (
    ARCUS,
    SPINOSUS,
    COSTAL_L,
    COSTAL_R,
    SUP_ARTICULAR_L,
    SUP_ARTICULAR_R,
    INF_ARTICULAR_L,
    INF_ARTICULAR_R,
    CORPUS_BORDER,
    CORPUS,
    DENS,
    ENDPLATE,
    ENDPLATE_SUP,
    ENDPLATE_INF,
)
BODY_IDS = (CORPUS_BORDER, CORPUS, DENS, ENDPLATE, ENDPLATE_SUP, ENDPLATE_INF)

#: The semantic network's output channels: channel -> SPINEPS id (0 = background). The split
#: endplates (52/53) are not classes of their own: an endplate is 62. The dens is (it marks C2).
CLASSES = (0, *range(ARCUS, INF_ARTICULAR_R + 1), CORPUS_BORDER, CORPUS, DENS, ENDPLATE, DISC, CANAL, CORD, SACRUM)


def class_to_id(classes: np.ndarray) -> np.ndarray:
    """SPINEPS ids (uint8) from the semantic network's arg-max channel indices."""
    return np.asarray(CLASSES, np.uint8)[classes]


def id_to_class(semantic: np.ndarray) -> np.ndarray:
    """Channel indices (int64) of a SPINEPS semantic mask; ids outside :data:`CLASSES` map to background."""
    lut = np.zeros(256, np.int64)
    for channel, sid in enumerate(CLASSES):
        lut[sid] = channel
    lut[ENDPLATE_SUP] = lut[ENDPLATE_INF] = CLASSES.index(ENDPLATE)
    return lut[np.clip(semantic, 0, 255).astype(np.int64)]


#: The instance network's 10 input channels: 0 background (and sacrum), 1-8 the posterior elements,
#: 9 the body (border, interior, dens). Endplates count as body.
INSTANCE_CHANNELS = 10
_CHANNEL = {**{i: i - 40 for i in range(ARCUS, INF_ARTICULAR_R + 1)}, **{i: 9 for i in BODY_IDS}}


def instance_channels(semantic: np.ndarray) -> np.ndarray:
    """Channel index (0..9) per voxel of a semantic mask; disc, canal, cord and sacrum are background."""
    lut = np.zeros(256, np.uint8)
    for sid, ch in _CHANNEL.items():
        lut[sid] = ch
    return lut[np.clip(semantic, 0, 255).astype(np.int64)]


def one_hot(channels: np.ndarray) -> np.ndarray:
    """(10, *shape) float32 one-hot of :func:`instance_channels`' output."""
    return (np.arange(INSTANCE_CHANNELS, dtype=np.uint8)[(...,) + (None,) * channels.ndim] == channels).astype(
        np.float32
    )
