"""The body around the spine: outline, fat, muscle, lungs, airway, vessels, organs, head.

Everything here is a function of the world height z (tables at 1 mm, built from per-level
anchors at the body centres) plus the in-plane offset from the spine: the body outline is
an ellipse around the spine whose width, depth and fat layer change from neck to pelvis,
and organs are ellipses placed relative to the vertebral bodies. None of it is labelled,
so cheap axial cross-sections are good enough; what is labelled (canal, cord, discs) is
evaluated in the vertebra frames by :mod:`.segments`.

Why per-z tables: when the grid axes are (signed) permutations of LPS, each world
coordinate depends on one voxel index only, table lookups are per slice and a structure
costs ~3 array operations per voxel. Oblique grids get the map of an axis-aligned grid
around them, resampled with nearest neighbour (see :meth:`BodyModel.classify`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy.ndimage import gaussian_filter1d

from ..geometry import Grid, resample_to_grid
from .anatomy import ATLAS, LUMBAR, SACRUM, THORACIC, LevelSpec
from .curve import Spine
from .raster import Raster
from .tissues import Tissue
from .vertebrae import POST_WALL, arch_geometry

F32 = np.float32
_REGION_TISSUE = {0: Tissue.MUSCLE, 1: Tissue.MUSCLE, 2: Tissue.ORGAN, 3: Tissue.ORGAN, 4: Tissue.ORGAN}


@dataclass(frozen=True)
class Habitus:
    """Body build of one subject (drawn from the anatomy stream)."""

    width: float  # outline width factor
    belly: float  # abdominal depth factor
    fat_mm: float  # subcutaneous fat of the trunk
    muscle: float  # muscle bulk factor
    visceral: float  # 0..1, intra-abdominal fat
    gas: np.ndarray  # (N, 4) bowel gas bubbles: x offset, y offset (mm from spine), z, radius


def posterior_tip(spec: LevelSpec) -> float:
    """How far behind the body centre the spinous process (or its equivalent) ends (mm)."""
    s = spec.scale
    if spec.kind == ATLAS:
        return 34.0 * s
    g = arch_geometry(spec)
    if spec.kind == SACRUM:
        return POST_WALL * spec.body_d / 2 + spec.canal_d + 14.0 * s
    phi = np.deg2rad(spec.sp_angle)
    return g.yc + g.bc + 0.5 * spec.lam_t + (spec.sp_len + spec.lam_t) * np.cos(phi) + 3.0 * s


def transverse_tip_y(spec: LevelSpec) -> float:
    """Posterior position of the transverse process tip (where the ribs turn around the chest)."""
    g = arch_geometry(spec)
    root_x = g.ac + 0.5 * (g.ao - g.ac)
    return g.yc - 0.2 * g.bc + (spec.tp_x - root_x) * np.tan(np.deg2rad(spec.tp_angle))


class ZTable:
    """Columns sampled every ``dz`` mm from ``z0``; lookup by interpolation or nearest bin."""

    def __init__(self, z0: float, dz: float, columns: dict[str, np.ndarray]):
        self.z0, self.dz = float(z0), float(dz)
        self.columns = {k: np.asarray(v, dtype=F32) for k, v in columns.items()}
        self.n = len(next(iter(self.columns.values())))
        self.z = self.z0 + self.dz * np.arange(self.n)

    def at(self, z: np.ndarray | float, name: str) -> np.ndarray:
        z = np.asarray(z)
        col = self.columns[name]
        if z.size <= 65536:
            return np.interp(z, self.z, col).astype(F32)
        idx = np.clip(((z - F32(self.z0)) * F32(1.0 / self.dz) + F32(0.5)).astype(np.int32), 0, self.n - 1)
        return col[idx]

    def nonzero_range(self, name: str) -> tuple[float, float]:
        """z-range where a column is non-zero (structures are skipped outside it)."""
        nz = np.flatnonzero(self.columns[name] > 0)
        if nz.size == 0:
            return (np.inf, -np.inf)
        return (float(self.z[nz[0]] - self.dz), float(self.z[nz[-1]] + self.dz))


def sample_habitus(rng: np.random.Generator, spine: Spine, levels: list[LevelSpec]) -> Habitus:
    """Draw the body build: width, belly, fat, muscle, visceral fat and a few bowel-gas bubbles."""
    width = float(rng.uniform(0.9, 1.12))
    belly = float(rng.uniform(0.9, 1.35))
    fat = float(rng.uniform(3.0, 35.0))
    muscle = float(rng.uniform(0.75, 1.25))
    visceral = float(rng.uniform(0.0, 1.0))
    n_gas = int(min(rng.poisson(3.0), 8))
    names = [lv.name for lv in levels]
    z_top = spine.frames[names.index("L1")].origin[2]
    z_bot = spine.frames[names.index("S")].origin[2] - 40.0
    gas = np.stack(
        [
            rng.uniform(-70.0, 70.0, n_gas),
            -rng.uniform(50.0, 110.0, n_gas),
            rng.uniform(z_bot, z_top, n_gas),
            rng.uniform(6.0, 20.0, n_gas),
        ],
        axis=1,
    )
    return Habitus(width, belly, fat, muscle, visceral, gas.reshape(-1, 4))


def _level_anchor(spec: LevelSpec, k_thor: int, n_thor: int) -> dict[str, float]:
    """Lean body dimensions at one level (mm); habitus is applied afterwards."""
    n = spec.name
    s = spec.scale
    a, b = spec.body_w / 2, spec.body_d / 2
    if spec.kind in (ATLAS, "axis", "cervical"):
        width = {"C1": 52.0, "C7": 62.0}.get(n, 50.0)
        ant = {"C1": 40.0, "C2": 42.0, "C7": 52.0}.get(n, 45.0)
        cover = 35.0 if n in ("C1", "C2") else (15.0 if n == "C7" else 25.0)
        region = 1
    elif spec.kind == THORACIC:
        width = [140.0, 148.0][k_thor] if k_thor < 2 else (142.0 if k_thor < 8 else 138.0)
        ant = [72.0, 95.0, 115.0][k_thor] if k_thor < 3 else (130.0 if k_thor < 8 else 135.0)
        cover = 12.0
        region = 2 if k_thor < n_thor - 2 else 3
    elif spec.kind == LUMBAR:
        width = 128.0 if n in ("L1", "L2", "L3") else 135.0
        ant = 115.0 if n in ("L1", "L2") else 105.0
        cover = 18.0
        region = 3
    else:
        width, ant, cover, region = 150.0, 110.0, 15.0, 4
    out = {"A": width * s, "ant": ant * s, "post": posterior_tip(spec) + cover * s, "region": float(region)}
    out["a"], out["b"] = a, b
    out["rc_post"] = (transverse_tip_y(spec) + 16.0 * s) if spec.kind == THORACIC else 0.0
    # Paraspinal muscles start behind the body, in the chest only behind the rib angles (lungs reach there).
    out["para_front"] = (transverse_tip_y(spec) - 2.0 * s) if spec.kind == THORACIC else 0.6 * b
    # Lungs: apex at T1, full from T3, shrinking over the last three rib levels (diaphragm).
    lung = 0.0
    if spec.kind == THORACIC:
        if k_thor == 0:
            lung = 0.55
        elif k_thor == 1:
            lung = 0.8
        else:
            lung = {n_thor - 1: 0.3, n_thor - 2: 0.65, n_thor - 3: 0.9}.get(k_thor, 1.0)
    out["lung"] = lung
    out["med"] = (22.0 if k_thor < 4 else 28.0) * s if spec.kind == THORACIC else 0.0
    heart = {4: 0.4, 5: 0.8, 6: 1.0, 7: 1.0, 8: 0.8, 9: 0.3}.get(k_thor, 0.0) if spec.kind == THORACIC else 0.0
    out["heart"] = heart
    airway = {
        "C1": (14, 5, 9),
        "C2": (15, 6, 9),
        "C3": (14, 6, 11),
        "C4": (12, 9, 18),
        "C5": (11, 9, 22),
        "C6": (9, 8, 24),
        "C7": (9, 8, 23),
        "T1": (9, 8.5, 22),
        "T2": (9, 9, 20),
        "T3": (8.5, 9, 18),
    }.get(n, (0.0, 0.0, 0.0))
    out["air_rx"], out["air_ry"], out["air_dy"] = airway[0] * s, airway[1] * s, -(b + airway[2] * s)
    ao = 0.0
    if spec.kind == THORACIC and k_thor >= 3:
        ao = 12.0 * s
        out["ao_dx"], out["ao_dy"] = a + 0.3 * ao, -0.45 * b
    elif spec.kind == LUMBAR and n in ("L1", "L2", "L3", "L4"):
        ao = 10.0 * s
        out["ao_dx"], out["ao_dy"] = 0.35 * a + 4.0 * s, -(b + ao + 3.0 * s)
    else:
        out["ao_dx"], out["ao_dy"] = a, -b
    out["ao_r"] = ao
    ivc = 11.0 * s if (spec.kind == LUMBAR and n in ("L1", "L2", "L3", "L4")) else 0.0
    out["ivc_r"], out["ivc_dx"], out["ivc_dy"] = ivc, -(0.45 * a + 6.0 * s), -(b + ivc + 4.0 * s)
    psoas = {"L1": 7.0, "L2": 11.0, "L3": 15.0, "L4": 19.0, "L5": 21.0, "L6": 21.0, "S": 18.0}.get(n, 0.0) * s
    out["ps_r"], out["ps_dx"], out["ps_dy"] = psoas, a + 0.8 * psoas, (-b if n == "S" else 0.1 * b)
    kidney = {"L1": 1.0, "L2": 1.0, "L3": 0.6}.get(n, 0.0)
    if spec.kind == THORACIC and k_thor == n_thor - 1:
        kidney = 0.7
    out["kid"] = kidney
    liver = {"L1": 0.8, "L2": 0.4}.get(n, 0.0)
    if spec.kind == THORACIC:
        liver = {n_thor - 1: 1.0, n_thor - 2: 1.0, n_thor - 3: 1.0, n_thor - 4: 0.6}.get(k_thor, 0.0)
    out["liv"] = liver
    return out


class BodyModel:
    """Per-z tables of the body around one spine, and the classification of voxels into tissues."""

    def __init__(self, levels: list[LevelSpec], spine: Spine, habitus: Habitus, skull: tuple | None):
        self.habitus = habitus
        self.skull = skull  # (centre (3,), inner radius) of the brain, or None
        names = [lv.name for lv in levels]
        thor = [n for n in names if n.startswith("T")]
        anchors = []
        for i, spec in enumerate(levels):
            k = thor.index(spec.name) if spec.name in thor else -1
            d = _level_anchor(spec, k, len(thor))
            d["z"] = float(spine.frames[i].origin[2])
            anchors.append(d)
        c1, sac = anchors[0], anchors[-1]
        s = levels[0].scale
        head = dict(c1, z=c1["z"] + 30.0, A=70.0 * s, ant=85.0 * s, post=95.0 * s, region=0.0)
        head_top = dict(head, z=c1["z"] + 400.0)
        pelvis = dict(sac, z=sac["z"] - 60.0 * s, A=160.0 * s, ant=110.0 * s, region=4.0, ps_r=0.0)
        pelvis_low = dict(pelvis, z=sac["z"] - 500.0)
        all_anchors = sorted([*anchors, head, head_top, pelvis, pelvis_low], key=lambda d: d["z"])
        zs = np.array([d["z"] for d in all_anchors])
        z0 = float(zs.min())
        zgrid = np.arange(z0, float(zs.max()) + 1.0, 1.0)
        cols = {key: np.interp(zgrid, zs, [d[key] for d in all_anchors]) for key in anchors[0] if key != "z"}
        xs, ys = spine.centre_at_z(zgrid)
        hb = habitus
        region = np.rint(cols["region"])

        def smooth(v: np.ndarray, sigma: float = 10.0) -> np.ndarray:
            # Skin contours are smooth: level-to-level steps of the anchors would show as stairs.
            return gaussian_filter1d(np.asarray(v, float), sigma=sigma, mode="nearest")

        fat = smooth(
            hb.fat_mm * np.where(region <= 1, np.where(region == 0, 0.3, 0.45), np.where(region == 4, 1.1, 1.0))
        )
        belly = np.where(region >= 3, hb.belly, np.where(region == 2, 1.0 + 0.4 * (hb.belly - 1.0), 1.0))
        width = np.where(region >= 2, hb.width, 1.0 + 0.5 * (hb.width - 1.0))
        cols["A"] = smooth(cols["A"] * width) + fat
        ant = smooth(cols["ant"] * belly) + fat
        post = smooth(cols["post"] * np.where(region >= 2, hb.muscle**0.3, 1.0)) + fat
        cols["cy"] = (post - ant) / 2.0
        cols["B"] = (post + ant) / 2.0
        cols["ant"] = ant
        cols["fat"] = fat
        cols["wall"] = smooth(np.where(region >= 2, 12.0 * hb.muscle, 6.0) * s, 5.0)
        cols["para"] = np.interp(region, [0, 1, 2, 3, 4], [0.0, 30.0, 42.0, 55.0, 60.0]) * s * hb.muscle
        cols["visc"] = np.where(region >= 3, hb.visceral * 22.0, 0.0)
        cols["rc_ant"] = ant - fat - cols["wall"] - 5.0
        cols["xs"], cols["ys"] = xs, ys
        cols["brain"] = (region == 0).astype(float)
        self.table = ZTable(z0, 1.0, cols)

    # ------------------------------------------------------------------------------------
    def rib_cage(self, z: float) -> tuple[float, float, float, float]:
        """Rib-cage ellipse at height z: centre (x, y) and half-axes (LR, AP), LPS mm.

        Laterally and in front it hugs the inside of the chest wall; behind it passes the
        transverse-process tips (the rib angles).
        """
        t = self.table
        xs, ys = float(t.at(z, "xs")), float(t.at(z, "ys"))
        inner_a = float(t.at(z, "A") - t.at(z, "fat") - t.at(z, "wall")) - 5.0
        post = ys + float(t.at(z, "rc_post"))
        front = ys - float(t.at(z, "rc_ant"))
        return xs, (post + front) / 2.0, inner_a, (post - front) / 2.0

    def anterior_wall(self, z: float) -> tuple[float, float]:
        """(x, y) of the inside of the anterior chest wall in the midline at height z."""
        t = self.table
        return float(t.at(z, "xs")), float(t.at(z, "ys") - t.at(z, "ant") + t.at(z, "fat") + 0.5 * t.at(z, "wall"))

    def classify(self, raster: Raster, max_chunk_voxels: int = 3_000_000) -> np.ndarray:
        """Tissue map (uint8, array shape of the grid) of the soft tissues.

        On grids whose axes are (signed) permutations of LPS each world coordinate depends
        on one index only, and the map is computed directly. On oblique grids it is
        computed on an axis-aligned grid around them (at >= 1 mm) and resampled with
        nearest neighbour: far cheaper than per-voxel table lookups, and none of these
        tissues is labelled (canal, cord and discs are painted on the output grid).
        """
        d = raster.grid.direction_matrix
        if np.allclose(np.abs(d), np.round(np.abs(d)), atol=1e-9):
            return self._classify_direct(raster, max_chunk_voxels)
        corners = raster.grid.corners()
        sp = max(float(min(raster.grid.spacing)), 1.0)
        lo, hi = corners.min(axis=0), corners.max(axis=0)
        size = np.ceil((hi - lo) / sp).astype(int) + 1
        aux = Grid(tuple(int(v) for v in size), (sp, sp, sp), tuple(float(v) for v in lo))
        tissue = self._classify_direct(Raster(aux), max_chunk_voxels)
        image = aux.apply(sitk.GetImageFromArray(tissue))
        return sitk.GetArrayFromImage(resample_to_grid(image, raster.grid, interpolator="nearest"))

    def _classify_direct(self, raster: Raster, max_chunk_voxels: int) -> np.ndarray:
        nk, nj, ni = raster.shape_kji
        out = np.zeros((nk, nj, ni), dtype=np.uint8)
        step = max(1, max_chunk_voxels // max(ni * nj, 1))
        for k0 in range(0, nk, step):
            k1 = min(nk, k0 + step)
            box = (slice(k0, k1), slice(0, nj), slice(0, ni))
            x, y, z = raster.world_coords(box)
            self._classify_chunk(out[k0:k1], x, y, z)
        return out

    def _classify_chunk(self, out: np.ndarray, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> None:
        t = self.table
        zmin, zmax = float(np.min(z)), float(np.max(z))

        def col(name):
            return t.at(z, name)

        def active(name):
            lo, hi = t.nonzero_range(name)
            return hi >= zmin and lo <= zmax

        def inside(dx, dy, cx, cy, rx, ry):
            rx = np.maximum(rx, F32(1e-3))
            ry = np.maximum(ry, F32(1e-3))
            u = (dx - cx) / rx
            v = (dy - cy) / ry
            return u * u + v * v <= F32(1.0)

        dx = x - col("xs")
        dy = y - col("ys")
        a_out, b_out, cy, fat, wall = col("A"), col("B"), col("cy"), col("fat"), col("wall")
        outline = inside(dx, dy, 0.0, cy, a_out, b_out)
        np.copyto(out, np.uint8(Tissue.FAT), where=outline)
        under_fat = inside(dx, dy, 0.0, cy, a_out - fat, b_out - fat)
        np.copyto(out, np.uint8(Tissue.MUSCLE), where=under_fat)
        ai, bi = a_out - fat - wall, b_out - fat - wall
        interior = inside(dx, dy, 0.0, cy, ai, bi)
        region = np.rint(col("region")).astype(np.uint8)
        lut = np.array([_REGION_TISSUE[r] for r in range(5)], dtype=np.uint8)
        np.copyto(out, np.broadcast_to(lut[region], out.shape), where=interior)
        if active("visc"):
            visc = col("visc")
            lining = interior & ~inside(dx, dy, 0.0, cy, ai - visc, bi - visc)
            np.copyto(out, np.uint8(Tissue.FAT), where=lining)
        a, b = col("a"), col("b")
        if active("liv"):
            f = np.sqrt(col("liv"))
            liver = inside(dx, dy, -0.42 * ai, cy - 0.1 * bi, 0.5 * ai * f, 0.62 * bi * f) & interior
            np.copyto(out, np.uint8(Tissue.LIVER), where=liver)
        if active("kid"):
            f = np.sqrt(col("kid"))
            s = F32(1.0)
            for side in (1.0, -1.0):
                cx = side * (a + 45.0 * s)
                capsule = inside(dx, dy, cx, 0.2 * b, 33.0 * f, 37.0 * f)  # perirenal fat, 9 mm
                np.copyto(out, np.uint8(Tissue.FAT), where=capsule)
                np.copyto(out, np.uint8(Tissue.ORGAN), where=inside(dx, dy, cx, 0.2 * b, 24.0 * f, 28.0 * f))
        if active("lung"):
            f = np.sqrt(col("lung"))
            med = col("med")
            front = cy - bi + 6.0
            back = np.maximum(b + 18.0, col("rc_post") - 12.0)  # paravertebral gutters, up to the rib angles
            ly, ry = (front + back) / 2.0, (back - front) / 2.0
            spine_zone = (np.abs(dx) < a + 8.0) & (dy > -(b + 8.0))
            keep = interior & (np.abs(dx) > med) & ~spine_zone
            for side in (1.0, -1.0):
                lung = inside(dx, dy, side * 0.5 * ai, ly, 0.47 * ai * f, ry * f) & keep
                np.copyto(out, np.uint8(Tissue.LUNG), where=lung)
        if active("heart"):
            f = np.sqrt(col("heart"))
            np.copyto(out, np.uint8(Tissue.BLOOD), where=inside(dx, dy, 25.0, -b - 55.0, 50.0 * f, 42.0 * f) & interior)
        if active("air_rx"):
            np.copyto(out, np.uint8(Tissue.AIR), where=inside(dx, dy, 0.0, col("air_dy"), col("air_rx"), col("air_ry")))
        for name in ("ao", "ivc"):
            if active(f"{name}_r"):
                r = col(f"{name}_r")
                np.copyto(out, np.uint8(Tissue.BLOOD), where=inside(dx, dy, col(f"{name}_dx"), col(f"{name}_dy"), r, r))
        if active("ps_r"):
            r, pdx, pdy = col("ps_r"), col("ps_dx"), col("ps_dy")
            for side in (1.0, -1.0):
                np.copyto(out, np.uint8(Tissue.MUSCLE), where=inside(dx, dy, side * pdx, pdy, r, r))
        para = (np.abs(dx) < col("para")) & (dy > col("para_front")) & under_fat
        np.copyto(out, np.uint8(Tissue.MUSCLE), where=para)
        for gx, gy, gz, gr in self.habitus.gas:
            if gz + gr < zmin or gz - gr > zmax:
                continue
            dz = z - F32(gz)
            bubble = ((dx - F32(gx)) ** 2 + (dy - F32(gy)) ** 2 + dz * dz <= F32(gr * gr)) & interior
            np.copyto(out, np.uint8(Tissue.AIR), where=bubble)
        if self.skull is not None and active("brain"):
            c, r = self.skull
            inside_skull = (x - F32(c[0])) ** 2 + (y - F32(c[1])) ** 2 + (z - F32(c[2])) ** 2 <= F32(r * r)
            np.copyto(out, np.uint8(Tissue.BRAIN), where=inside_skull & outline)
