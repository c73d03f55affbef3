"""``spineseg-train``: train the stages of a SpineSeg pipeline on VerSe-layout data.

    spineseg-train all --data DATA_ROOT --out runs/ct            # spine, vertebrae, segmentation
    spineseg-train all --method lu_lumbar --data DATA_ROOT --out runs/lumbar  # Lu et al.: both stages
    spineseg-train export --method lu_lumbar --out runs/lumbar --to models --manifest models/manifest.json \
        --name-prefix ct-lumbar
    spineseg-train vertebrae --data DATA_ROOT --out runs/ct --iterations 20000
    spineseg-train segmentation --data DATA_ROOT --out runs/ft --init model.safetensors --lr 3e-4  # fine-tune
    spineseg-train export --out runs/ct --to Resources/models --manifest Resources/models/manifest.json
    spineseg-train export --out runs/ft --to models --manifest models/manifest.json --params-from Resources/models
    spineseg-train calibrate --data DATA_ROOT --out runs/ct --to Resources/models  # thresholds on validation
    spineseg-train calibrate --data CALIB_ROOT --val 1000 --out runs/ct --to Resources/models  # on a separate set
    spineseg-train phantoms --out data/phantoms --seeds 0 120        # a synthetic training set
    spineseg-train paint --masks VERSE_MASKS --out data/painted --draws 4  # CTs painted on real label maps
    spineseg-train cache --data data/phantoms --out runs/ct          # resample every case once (optional)
    spineseg-train pack --data DATA_ROOT --out runs/ct --stage vertebrae  # a compact pack for a GPU machine

Every stage resumes from its last checkpoint when re-run with the same --out.
Several GPUs: ``torchrun --nproc_per_node=N -m spineseg_training.cli vertebrae ...``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from SpineSegLib.errors import SpineSegError
from SpineSegLib.methods import DEFAULT_METHOD, DEFAULT_PIPELINE, get_method

from .config import PRESETS, STAGE_KEYS, stage_config
from .data import find_cases, split_cases

STAGES = get_method(DEFAULT_METHOD).stage_names


def method_keys(method: str) -> tuple[str, ...]:
    """The training keys of ``method``'s stages, in run order (Payer: the bare stage names)."""
    spec = get_method(method)
    return tuple(s if spec.name == DEFAULT_METHOD else f"{spec.name}-{s}" for s in spec.stage_names)


def training_modality(args: argparse.Namespace) -> str:
    """The modality of the method a training command trains (a stage key names its method: ``spineps-semantic``)."""
    method = args.method
    if args.command in STAGE_KEYS and "-" in args.command:
        method = args.command.split("-", 1)[0]
    elif args.command in STAGE_KEYS:
        method = DEFAULT_METHOD
    return get_method(method).modalities[0]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="spineseg-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = ("all", "export", "calibrate", "phantoms", "paint", "real", "cache", "pack")
    p.add_argument("command", choices=(*STAGE_KEYS, *commands))
    p.add_argument(
        "--method",
        default=DEFAULT_METHOD,
        help=f"all/export: the method whose stages to train or export (default {DEFAULT_METHOD}; e.g. lu_lumbar)",
    )
    p.add_argument("--data", nargs="+", type=Path, help="VerSe/BIDS dataset root(s) (rawdata/, derivatives/)")
    p.add_argument("--out", required=True, type=Path, help="run folder; one subfolder per stage")
    p.add_argument("--preset", default="small", choices=sorted(PRESETS), help="network sizes (default small: CPU)")
    p.add_argument("--iterations", type=int, help="override the preset's iterations")
    p.add_argument("--lr", type=float, help="override the preset's initial learning rate")
    p.add_argument(
        "--init",
        type=Path,
        help="start one stage from exported weights (.safetensors with its .json card): fine-tuning; "
        "a run that resumes from its checkpoint ignores it",
    )
    p.add_argument(
        "--val",
        type=int,
        default=3,
        help="number of validation cases held out (default 3); calibrate: N >= the number of cases in --data "
        "calibrates on all of them (a separate calibration set)",
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=1, help="sampling worker processes (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", type=Path, help="cache folder of resampled cases (default <out>/cache)")
    p.add_argument(
        "--modality",
        choices=("ct", "mr"),
        help="the image modality to read or make (default: the trained method's, e.g. mr for spineps; phantoms: ct)",
    )
    p.add_argument("--to", type=Path, help="export: folder for the weights and cards")
    p.add_argument("--manifest", type=Path, help="export: manifest to register the weights in")
    p.add_argument(
        "--name-prefix", default=DEFAULT_PIPELINE, help="export: the pipeline name in the manifest and the file prefix"
    )
    p.add_argument("--training-data", default="", help="export: description of the training data for the card")
    p.add_argument("--fp32", action="store_true", help="train in float32 (default: mixed precision where supported)")
    p.add_argument("--seeds", nargs=2, type=int, metavar=("FIRST", "STOP"), help="phantoms: seed range")
    p.add_argument("--kind", default="train", choices=("train", "benchmark"), help="phantoms: scan-setting mix")
    p.add_argument("--masks", type=Path, help="paint: folder of VerSe *_seg-vert_msk.nii.gz with *_ctd.json")
    p.add_argument("--draws", type=int, default=4, help="paint: appearances per label map (default 4)")
    p.add_argument("--image", type=Path, help="real: the labelled real CT")
    p.add_argument("--labels", type=Path, help="real: its vertebra mask (VerSe ids, or --remap)")
    p.add_argument("--subject", help="real: the case's subject name in the output tree")
    p.add_argument("--remap", nargs="+", metavar="FILE:VERSE", help="real: mask values to VerSe ids, e.g. 1:19")
    p.add_argument("--stage", choices=STAGES, help="pack: the stage to pack the training cases for")
    p.add_argument("--pack", type=Path, help="pack: output folder (default <out>/pack-<stage>)")
    p.add_argument(
        "--max-mib",
        type=float,
        default=36.0,
        help="pack: size budget in MiB, kept by rounding HU per item (default 36; 0: lossless)",
    )
    p.add_argument("--vertebrae-per-case", type=int, default=1, help="pack: adjacent vertebrae per case (segmentation)")
    p.add_argument(
        "--params-from",
        type=Path,
        help="export: folder of the cards whose post-processing parameters (calibrated thresholds, test-time "
        "passes) the new cards keep, e.g. the weights a fine-tune started from (default: the preset's)",
    )
    p.add_argument(
        "--real-cases",
        nargs="*",
        default=[],
        help="export: names of the real (patient) cases whose images were trained on, for the model cards",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "export":
            return _export(args)
        if args.command == "phantoms":
            from .phantom_data import make_dataset

            if not args.seeds:
                raise SpineSegError("phantoms needs --seeds FIRST STOP")
            make_dataset(args.out, range(*args.seeds), args.kind, args.modality or "ct")
            return 0
        if args.command == "paint":
            from .label_data import paint_dataset

            if not args.masks:
                raise SpineSegError("paint needs --masks FOLDER")
            paint_dataset(args.masks, args.out, args.draws, first_seed=args.seeds[0] if args.seeds else 0)
            return 0
        if args.command == "real":
            from .real_data import import_real_case, parse_remap

            if not (args.image and args.labels and args.subject):
                raise SpineSegError("real needs --image, --labels and --subject")
            import_real_case(args.image, args.labels, args.out, args.subject, parse_remap(args.remap))
            return 0
        if not args.data:
            raise SpineSegError("--data is required for training")
        modality = args.modality or training_modality(args)
        cases = [c for root in args.data for c in find_cases(root, modality)]
        if args.command == "cache":  # build the resampled-case cache once, before parallel runs
            from tqdm import tqdm

            from .data import cache_case

            for c in tqdm(cases, desc="cache"):
                cache_case(c, args.cache or args.out / "cache")
            return 0
        train, val = split_cases(cases, args.val, args.seed)
        if args.command == "pack":
            return _pack(args, train, val)
        if args.command == "calibrate":
            return _calibrate(args, cases if args.val >= len(cases) else val)
        stages = method_keys(args.method) if args.command == "all" else (args.command,)
        if args.init and len(stages) > 1:
            raise SpineSegError("--init gives the weights of one stage: train that stage alone")
        for stage in stages:
            from .trainer import Trainer

            overrides = {"iterations": args.iterations} if args.iterations else {}
            if args.lr:
                overrides["learning_rate"] = args.lr
            cfg = stage_config(stage, args.preset, **overrides)
            trainer = Trainer(
                cfg,
                train,
                val,
                args.out / stage,
                args.cache or args.out / "cache",
                device=args.device,
                seed=args.seed,
                num_workers=args.workers,
                training_data=args.training_data or ", ".join(str(d) for d in args.data),
                mixed_precision=not args.fp32,
                init_weights=args.init,
            )
            result = trainer.fit()
            print(f"{stage}: {result}")
        return 0
    except SpineSegError as exc:
        print(f"spineseg-train: error: {exc}", file=sys.stderr)
        return 2


def _export(args: argparse.Namespace) -> int:
    from .export import export_stage

    if not args.to:
        raise SpineSegError("export needs --to")
    for key in method_keys(args.method):
        run = args.out / key
        if not (run / "checkpoints").is_dir():
            print(f"{key}: no checkpoints in {run}, skipped")
            continue
        cfg = stage_config(key, args.preset)
        stage = cfg.stage
        weights, card = export_stage(
            run,
            cfg,
            f"{args.name_prefix}-{stage}",
            args.to,
            args.training_data,
            pipeline=args.name_prefix,
            manifest=args.manifest,
            real_cases=args.real_cases,
            params_from=args.params_from / f"{args.name_prefix}-{stage}.json" if args.params_from else None,
        )
        print(f"{stage}: {weights} ({card.name})")
    return 0


def _pack(args: argparse.Namespace, train: list, val: list) -> int:
    from .pack import build_pack, summary

    if not args.stage:
        raise SpineSegError("pack needs --stage")
    pack_dir = args.pack or args.out / f"pack-{args.stage}"
    index = build_pack(
        train,
        val,
        pack_dir,
        args.stage,
        args.cache or args.out / "cache",
        preset=args.preset,
        seed=args.seed,
        max_mib=args.max_mib or None,
        vertebrae_per_case=args.vertebrae_per_case,
        data=", ".join(str(d) for d in args.data),
    )
    print(summary(index, pack_dir))
    return 0


def _calibrate(args: argparse.Namespace, val: list) -> int:
    """Pick the post-processing thresholds of exported models (``--to``) on the validation cases."""
    from SpineSegLib.models.store import load_model
    from SpineSegLib.pipeline.device import resolve_device

    from .calibrate import CALIBRATORS, calibrate_card
    from .validate import ValidationCase

    if not args.to:
        raise SpineSegError("calibrate needs --to (the folder export wrote)")
    device = resolve_device(args.device)
    cases = [ValidationCase(c) for c in val]
    for stage in CALIBRATORS:
        card = args.to / f"{args.name_prefix}-{stage}.json"
        if not card.is_file():
            print(f"{stage}: no {card}, skipped")
            continue
        model, _ = load_model(args.to / f"{args.name_prefix}-{stage}.safetensors", card, device=device)
        result = calibrate_card(card, model, cases, device)
        print(f"{stage}: {result['chosen']}")
        for row in result["table"]:
            print("   ", row)
    manifest = args.manifest or args.to / "manifest.json"
    if manifest.is_file():  # the cards changed: the manifest's card hashes follow
        from .export import update_card_hashes

        for name in update_card_hashes(manifest):
            print(f"{manifest}: card_sha256 of {name} updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
