"""Vertebra centroids as they cross module boundaries: label -> physical LPS millimetres.

Voxel indices never leave the function that made them; files in voxel conventions (VerSe
``_ctd.json``) are converted on read and write by :mod:`SpineSegLib.io`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np

from . import labels as L

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def _label_key(label: object) -> int:
    """``label`` as an int key; integral floats (from float masks) and digit strings (JSON keys) pass."""
    try:
        key = int(label)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"label {label!r} is not an integer") from None
    if not isinstance(label, str) and key != label:
        raise ValueError(f"label {label!r} is not an integer")
    return key


def _order_key(label: int) -> tuple[int, int]:
    return (0, L.get(label).order) if L.is_known(label) else (1, label)


class Centroids(Mapping[int, np.ndarray]):
    """An immutable mapping VerSe label -> (3,) LPS point in mm, with optional confidence.

    Iteration is in anatomical order (cranial to caudal). ``confidence`` holds, for example,
    the heatmap response of a predicted landmark; ground-truth centroids have none.
    """

    __slots__ = ("_confidence", "_points")
    __hash__ = None  # type: ignore[assignment]  # mutable-looking mapping: not hashable

    def __init__(
        self,
        points: Mapping[int, Sequence[float]] | Iterable[tuple[int, Sequence[float]]] = (),
        confidence: Mapping[int, float] | None = None,
    ):
        items = points.items() if isinstance(points, Mapping) else points
        pts: dict[int, np.ndarray] = {}
        for label, p in items:
            key = _label_key(label)
            # A copy: a view of the caller's array would let the caller change our "immutable" point.
            arr = np.array(p, dtype=np.float64).reshape(-1)
            if arr.shape != (3,):
                raise ValueError(f"centroid of label {label} must have 3 coordinates, got {arr.shape[0]}")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"centroid of label {label} is not finite: {arr.tolist()}")
            if key in pts:
                raise ValueError(f"two centroids given for label {key}")
            arr.setflags(write=False)
            pts[key] = arr
        # Known labels cranial to caudal, then any others by id: one order whatever the input order.
        self._points = {k: pts[k] for k in sorted(pts, key=_order_key)}
        conf: dict[int, float] = {}
        for k, v in (confidence or {}).items():
            c = float(v)
            if not np.isfinite(c):
                raise ValueError(f"confidence of label {k} is not finite: {c}")
            conf[_label_key(k)] = c
        unknown = set(conf) - set(pts)
        if unknown:
            raise ValueError(f"confidence given for labels without a centroid: {sorted(unknown)}")
        self._confidence = {k: conf[k] for k in self._points if k in conf}

    # Mapping protocol -------------------------------------------------------------
    def __getitem__(self, label: int) -> np.ndarray:
        try:
            return self._points[_label_key(label)]
        except ValueError:
            raise KeyError(label) from None

    def __iter__(self) -> Iterator[int]:
        return iter(self._points)

    def __len__(self) -> int:
        return len(self._points)

    def __repr__(self) -> str:
        body = ", ".join(f"{L.name_of(k) if L.is_known(k) else k}: {np.round(v, 2).tolist()}" for k, v in self.items())
        return f"Centroids({{{body}}})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Centroids):
            return NotImplemented
        return (
            list(self) == list(other)
            and all(np.array_equal(self[k], other[k]) for k in self)
            and self._confidence == other._confidence
        )

    # Accessors ----------------------------------------------------------------------
    @property
    def labels(self) -> list[int]:
        return list(self._points)

    @property
    def confidence(self) -> dict[int, float]:
        return dict(self._confidence)

    def confidence_of(self, label: int) -> float | None:
        return self._confidence.get(_label_key(label))

    def array(self, labels: Iterable[int] | None = None) -> np.ndarray:
        """(N, 3) LPS points of ``labels`` (default: all, anatomical order)."""
        keys = self.labels if labels is None else [_label_key(k) for k in labels]
        if not keys:
            return np.zeros((0, 3))
        return np.stack([self._points[k] for k in keys])

    def ras(self) -> dict[int, np.ndarray]:
        """The same points in RAS (Slicer's world frame)."""
        return {k: LPS_TO_RAS @ v for k, v in self._points.items()}

    @classmethod
    def from_ras(
        cls, points: Mapping[int, Sequence[float]], confidence: Mapping[int, float] | None = None
    ) -> Centroids:
        return cls({k: LPS_TO_RAS @ np.asarray(v, float) for k, v in points.items()}, confidence)

    # Derived copies -------------------------------------------------------------------
    def subset(self, labels: Iterable[int]) -> Centroids:
        keep = {_label_key(k) for k in labels}
        return Centroids(
            {k: v for k, v in self._points.items() if k in keep},
            {k: v for k, v in self._confidence.items() if k in keep},
        )

    def relabelled(self, mapping: Mapping[int, int]) -> Centroids:
        """A copy with labels renamed by ``mapping`` (labels not in it are kept)."""
        new = {k: _label_key(mapping.get(k, k)) for k in self._points}
        if len(set(new.values())) != len(new):
            raise ValueError("relabelling maps two centroids onto the same label")
        return Centroids({new[k]: v for k, v in self._points.items()}, {new[k]: v for k, v in self._confidence.items()})
