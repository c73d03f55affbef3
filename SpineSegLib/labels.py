"""The one vertebra label table of SpineSeg (VerSe ids).

Every module that names, colours, orders or codes a vertebra reads it from here, so the
CLI, the training package and the Slicer module can never disagree about what label 20 is.

VerSe ids: 1-7 C1-C7, 8-19 T1-T12, 20-24 L1-L5, 25 L6, 26 sacrum, 27 coccyx, 28 T13.
Anatomical order puts T13 between T12 and L1 and L6 after L5.
SNOMED CT codes are those of DICOM / Slicer's anatomy lists; T13 and L6 have no code of
their own and use "Vertebra" (51282000) with the region as anatomic-region modifier.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

CERVICAL = "cervical"
THORACIC = "thoracic"
LUMBAR = "lumbar"
SACRAL = "sacral"
COCCYGEAL = "coccygeal"


@dataclass(frozen=True)
class SnomedCode:
    """A coded concept (scheme, value, meaning) as DICOM SEG and Slicer terminologies use it."""

    value: str
    meaning: str
    scheme: str = "SCT"


@dataclass(frozen=True)
class VertebraLabel:
    """One row of the label table."""

    id: int
    name: str
    region: str
    order: int  # position in anatomical order, cranial to caudal
    color: tuple[int, int, int]  # display colour, RGB 0..255
    snomed: SnomedCode
    region_snomed: SnomedCode | None = None  # anatomic region modifier (T13, L6 only)

    @property
    def color_float(self) -> tuple[float, float, float]:
        return tuple(c / 255.0 for c in self.color)  # type: ignore[return-value]


_REGION_CODES = {
    THORACIC: SnomedCode("122495006", "Thoracic spine"),
    LUMBAR: SnomedCode("122496007", "Lumbar spine"),
}
_VERTEBRA = SnomedCode("51282000", "Vertebra")

# (id, name, region, SNOMED value, SNOMED meaning, colour) in anatomical order.
_ROWS: list[tuple[int, str, str, str | None, str | None, tuple[int, int, int]]] = [
    (1, "C1", CERVICAL, "14806007", "C1 vertebra", (255, 235, 80)),
    (2, "C2", CERVICAL, "39976000", "C2 vertebra", (120, 190, 255)),
    (3, "C3", CERVICAL, "113205007", "C3 vertebra", (255, 160, 60)),
    (4, "C4", CERVICAL, "5329002", "C4 vertebra", (60, 120, 230)),
    (5, "C5", CERVICAL, "36978003", "C5 vertebra", (240, 120, 200)),
    (6, "C6", CERVICAL, "36054005", "C6 vertebra", (80, 220, 200)),
    (7, "C7", CERVICAL, "87391001", "C7 vertebra", (200, 80, 80)),
    (8, "T1", THORACIC, "64864005", "T1 vertebra", (170, 255, 120)),
    (9, "T2", THORACIC, "53733008", "T2 vertebra", (150, 90, 220)),
    (10, "T3", THORACIC, "1626008", "T3 vertebra", (255, 210, 150)),
    (11, "T4", THORACIC, "73071006", "T4 vertebra", (40, 160, 120)),
    (12, "T5", THORACIC, "56401006", "T5 vertebra", (255, 110, 110)),
    (13, "T6", THORACIC, "45296009", "T6 vertebra", (110, 150, 255)),
    (14, "T7", THORACIC, "62487009", "T7 vertebra", (230, 230, 40)),
    (15, "T8", THORACIC, "11068009", "T8 vertebra", (200, 120, 255)),
    (16, "T9", THORACIC, "82687006", "T9 vertebra", (90, 240, 90)),
    (17, "T10", THORACIC, "7610001", "T10 vertebra", (255, 140, 200)),
    (18, "T11", THORACIC, "12989004", "T11 vertebra", (60, 200, 255)),
    (19, "T12", THORACIC, "23215003", "T12 vertebra", (240, 170, 40)),
    (28, "T13", THORACIC, None, None, (140, 200, 60)),
    (20, "L1", LUMBAR, "66794005", "L1 vertebra", (130, 100, 255)),
    (21, "L2", LUMBAR, "14293000", "L2 vertebra", (255, 90, 60)),
    (22, "L3", LUMBAR, "36470004", "L3 vertebra", (70, 230, 170)),
    (23, "L4", LUMBAR, "11994002", "L4 vertebra", (230, 80, 160)),
    (24, "L5", LUMBAR, "49668003", "L5 vertebra", (100, 170, 60)),
    (25, "L6", LUMBAR, None, None, (240, 0, 240)),  # not tan: it touches the sacrum (tan) when present
    (26, "S", SACRAL, "54735007", "Sacrum", (210, 180, 140)),
    (27, "Co", COCCYGEAL, "64688005", "Coccyx", (160, 160, 160)),
]

LABELS: dict[int, VertebraLabel] = {}
for _order, (_id, _name, _region, _code, _meaning, _color) in enumerate(_ROWS):
    LABELS[_id] = VertebraLabel(
        id=_id,
        name=_name,
        region=_region,
        order=_order,
        color=_color,
        snomed=SnomedCode(_code, _meaning) if _code else _VERTEBRA,
        region_snomed=None if _code else _REGION_CODES[_region],
    )

_BY_NAME = {lab.name.upper(): lab for lab in LABELS.values()}
_BY_NAME["SACRUM"] = LABELS[26]
_BY_NAME["S1"] = LABELS[26]
_BY_NAME["COCCYX"] = LABELS[27]

#: Labels of the localisation heatmap channels (Payer et al. 2020: C1..L6 and T13), channel
#: order = VerSe id order 1..25 then 28, so channel index = id - 1 except T13 -> 25.
HEATMAP_LABELS: tuple[int, ...] = tuple(range(1, 26)) + (28,)
#: Transitional vertebrae: a spine may or may not have them.
TRANSITIONAL_LABELS: frozenset[int] = frozenset({25, 28})
#: Vertebra ids (everything but sacrum and coccyx).
VERTEBRA_LABELS: tuple[int, ...] = tuple(i for i in LABELS if i not in (26, 27))


def _row(label: object) -> VertebraLabel | None:
    """The row of ``label``, or None. Integral floats (3.0, from a float mask) are ids; 3.5 or "3" are not."""
    try:
        lab = int(label)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        return None
    return LABELS.get(lab) if lab == label else None


def is_known(label: int) -> bool:
    return _row(label) is not None


def get(label: int) -> VertebraLabel:
    """The table row of a VerSe id; ``KeyError`` names the id when it is unknown."""
    row = _row(label)
    if row is None:
        raise KeyError(f"unknown vertebra label id {label!r} (VerSe ids are 1..28)")
    return row


def name_of(label: int) -> str:
    return get(label).name


def id_of(name: str) -> int:
    """VerSe id of a vertebra name such as "L1", "t13" or "sacrum"."""
    row = _BY_NAME.get(name.strip().upper()) if isinstance(name, str) else None
    if row is None:
        raise KeyError(f"unknown vertebra name {name!r}")
    return row.id


def parse_list(text: str) -> list[int]:
    """VerSe ids of a comma-separated list of names or ids, such as "L1,L2", "20,21" or "S"."""
    out = []
    for item in text.split(","):
        item = item.strip()
        if item:
            out.append(get(int(item)).id if item.isdigit() else id_of(item))
    return out


def region_of(label: int) -> str:
    return get(label).region


def anatomical_order(labels: Iterable[int]) -> list[int]:
    """Sort label ids cranial to caudal (T13 after T12, L6 after L5)."""
    return [get(i).id for i in sorted(labels, key=lambda i: get(i).order)]


def neighbours_in_order(label: int) -> tuple[int | None, int | None]:
    """The labels right before and after ``label`` in anatomical order (None at the ends)."""
    order = [r[0] for r in _ROWS]
    k = order.index(get(label).id)
    return (order[k - 1] if k > 0 else None, order[k + 1] if k + 1 < len(order) else None)


def from_totalsegmentator(ts_id: int) -> int:
    """VerSe id of a TotalSegmentator v2 'total' spine id (25 sacrum, 26..50 S1, L5..C1).

    TS 27..50 are L5..C1 and map by VerSe = 51 - TS. TS 26 is S1: the formula would give 25
    (L6), which TS never predicts, so S1 maps to the VerSe sacrum (26), as in the remapped
    TotalSegmentator example (Testing/data/real/totalseg_example_abdomen_ct); TS 25, the rest
    of the sacrum, maps there too.
    """
    ts_id = int(ts_id)
    if ts_id in (25, 26):
        return 26  # TS "sacrum" and "vertebrae_S1" are both parts of the VerSe sacrum.
    if 27 <= ts_id <= 50:
        return 51 - ts_id
    raise KeyError(f"TotalSegmentator id {ts_id} is not a spine label (TotalSegmentator spine ids are 25..50)")


# Discs and endplates (SPINEPS instance ids): 100+X is the disc below vertebra X, 200+X the endplate(s)
# of vertebra X. Named after the standard sequence (T12/L1, L5/S1): in a spine with T13 or L6 the disc
# below T12 or L5 takes the name of the standard one. SNOMED CT codes: DICOM CID 7604 (Intervertebral
# Disc); a disc that list has no code for (below C1, T13, L6) and the endplates have none.
DISC_OFFSET = 100
ENDPLATE_OFFSET = 200

_DISC_CODES: dict[int, str] = {
    2: "1078209008",
    3: "58820006",
    4: "49400002",
    5: "73959003",
    6: "75095006",
    7: "37414007",
    8: "40908007",
    9: "6004007",
    10: "2620004",
    11: "82965004",
    12: "72692000",
    13: "74401007",
    14: "28693002",
    15: "9188009",
    16: "113209001",
    17: "34959001",
    18: "1537001",
    19: "76206002",
    20: "80064006",
    21: "67459009",
    22: "62551000",
    23: "84020006",
    24: "715056000",
}
#: The vertebra right below each vertebra in a standard spine (T13 -> L1, L5 and L6 -> S1).
_STANDARD_NEXT = {**{i: i + 1 for i in range(1, 24)}, 24: 26, 25: 26, 28: 20}


@dataclass(frozen=True)
class StructureLabel:
    """A disc (100+X) or an endplate (200+X) of vertebra X: name, colour and code where one exists."""

    id: int
    name: str
    kind: str  # "disc" or "endplate"
    level: int  # the vertebra X
    color: tuple[int, int, int]
    snomed: SnomedCode | None

    @property
    def color_float(self) -> tuple[float, float, float]:
        return tuple(c / 255.0 for c in self.color)  # type: ignore[return-value]


def structure(label: int) -> StructureLabel | None:
    """The disc or endplate row of an instance id (100+X, 200+X with X a vertebra), else None."""
    row = _row(label - DISC_OFFSET) if DISC_OFFSET < label < ENDPLATE_OFFSET else None
    kind = "disc"
    if row is None and ENDPLATE_OFFSET < label < ENDPLATE_OFFSET + 100:
        row, kind = _row(label - ENDPLATE_OFFSET), "endplate"
    if row is None or row.id not in VERTEBRA_LABELS:
        return None
    r, g, b = row.color
    if kind == "disc":
        below = LABELS[_STANDARD_NEXT[row.id]].name if row.id in _STANDARD_NEXT else "?"
        code = _DISC_CODES.get(row.id)
        name = f"{row.name}/{'S1' if below == 'S' else below} disc"
        # discs: the vertebra's colour lightened towards white, so disc and vertebra tell apart
        colour = (r + (255 - r) * 2 // 3, g + (255 - g) * 2 // 3, b + (255 - b) * 2 // 3)
        return StructureLabel(int(label), name, kind, row.id, colour, SnomedCode(code, name) if code else None)
    return StructureLabel(int(label), f"{row.name} endplate", kind, row.id, (r // 2, g // 2, b // 2), None)


def row_of(label: int) -> VertebraLabel | StructureLabel | None:
    """The table row of any instance id: a vertebra (VerSe id), a disc (100+X) or an endplate (200+X)."""
    return get(label) if is_known(label) else structure(label)


def any_id_of(name: str) -> int:
    """The id of a vertebra name ("L1"), a disc ("L1/L2 disc") or an endplate ("L1 endplate")."""
    text = name.strip() if isinstance(name, str) else ""
    for offset, suffix in ((DISC_OFFSET, " disc"), (ENDPLATE_OFFSET, " endplate")):
        if text.lower().endswith(suffix):
            for vid in VERTEBRA_LABELS:
                row = structure(offset + vid)
                if row is not None and row.name.lower() == text.lower():
                    return row.id
            raise KeyError(f"unknown structure name {name!r}")
    return id_of(text)
