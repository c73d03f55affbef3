"""Benchmark: CT appearance of the real labelled CTs next to phantoms (what the data engine imitates).

Per image: median and 10th-90th percentiles of the vertebra interior (mask eroded by 3 mm), the
median and 90th percentile of the one-voxel rim, soft-tissue noise (3x3x3 high-pass of -50..120 HU
voxels away from bone, white-noise gain 1.12) and the fraction of air. Real CTs from ../shared
(skipped with a message where it is absent), phantoms of one seed in each appearance.

Run: ``.venv/bin/python Testing/benchmarks/bench_ct_appearance.py [--shared ../shared] [--seed 7]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from SpineSegLib.phantom import PhantomConfig, generate_phantom  # noqa: E402

REAL = {
    "verse005": ("verse005_lumbar_ct/sub-verse005_ct.nii.gz", "verse005_lumbar_ct/sub-verse005_seg-vert_msk.nii.gz"),
    "verse006": ("verse006_lumbar_ct/sub-verse006_ct.nii.gz", "verse006_lumbar_ct/sub-verse006_seg-vert_msk.nii.gz"),
    "cta": ("totalseg_cta_crop/ct_cropped.nii.gz", "totalseg_cta_crop/vertebrae_T12.nii.gz"),
    "tptbox": (
        "tptbox_spine_crops/sample_ct/sub-ct_label-22_ct.nii.gz",
        "tptbox_spine_crops/sample_ct/sub-ct_seg-vert_label-22_msk.nii.gz",
    ),
    "ts_abdomen": (
        "totalseg_example_abdomen_ct/example_ct.nii.gz",
        "totalseg_example_abdomen_ct/derived_vert_verse-labels.nii.gz",
    ),
}


def appearance(image: sitk.Image, mask: sitk.Image) -> str:
    a = sitk.GetArrayFromImage(image).astype(np.float32)
    bone = np.rint(sitk.GetArrayFromImage(mask)) > 0
    radius = [max(1, round(3.0 / s)) for s in image.GetSpacing()[::-1]]
    core = ndimage.binary_erosion(bone, np.ones([2 * r + 1 for r in radius], bool))
    rim = bone & ~ndimage.binary_erosion(bone)
    soft = (a > -50) & (a < 120) & ~ndimage.binary_dilation(bone, iterations=3)
    noise = (a - ndimage.uniform_filter(a, 3))[soft].std() * 1.12
    p10, p50, p90 = np.percentile(a[core], [10, 50, 90])
    return (
        f"| {p50:.0f} ({p10:.0f}..{p90:.0f}) | {np.median(a[rim]):.0f} ({np.percentile(a[rim], 90):.0f}) "
        f"| {noise:.0f} | {100 * np.mean(a < -800):.0f} % |"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="phantoms at 2 mm (smoke test)")
    args = ap.parse_args()
    print("| image | interior median (p10..p90) HU | rim median (p90) HU | noise HU | air < -800 |")
    print("|---|---|---|---|---|")
    real = args.shared / "data" / "real"
    if real.is_dir():
        for name, (img, msk) in REAL.items():
            print(f"| {name} " + appearance(sitk.ReadImage(str(real / img)), sitk.ReadImage(str(real / msk))))
    else:
        print(f"(no {real}: real CTs skipped)")
    for look, field in (("classic", "wide"), ("real", "wide"), ("real", "tight")):
        spacing = (2.0, 2.0, 2.0) if args.quick else (1.0, 1.0, 1.0)
        ph = generate_phantom(args.seed, PhantomConfig(region="lumbar", spacing=spacing, appearance=look, field=field))
        print(f"| phantom {args.seed} {look} {field} " + appearance(ph.image, ph.vertebra_labels))
    return 0


if __name__ == "__main__":
    sys.exit(main())
