"""The ``spineseg`` command line.

User errors (:class:`SpineSegLib.errors.SpineSegError`) print one line and exit with 2;
anything else is a bug and keeps its traceback. Subcommands import their heavy
dependencies (torch, monai) only when they run, so ``spineseg --help`` is instant.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import signal
import sys
import warnings

from .. import __version__
from ..errors import SpineSegError

#: subcommand -> module in this package defining ``add_arguments(parser)`` and ``run(args)``.
SUBCOMMANDS = {
    "phantom": ("phantom_cmd", "generate synthetic spine CT/MR cases in a VerSe/BIDS layout"),
    "evaluate": ("evaluate_cmd", "evaluate a vertebra segmentation (and centroids) against a ground truth"),
    "run": ("run_cmd", "run the vertebra localisation, identification and segmentation pipeline"),
    "measure": ("measure_cmd", "measure vertebrae (volume, body heights, Genant ratios, core HU, discs), flag doubts"),
    "series": ("series_cmd", "list the DICOM series of a folder and which one `spineseg run` would take"),
    "pipelines": ("pipelines_cmd", "list the pipelines --pipeline accepts, with method, modality and training data"),
}

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, what shells and schedulers expect


class Terminated(KeyboardInterrupt):
    """SIGTERM (``timeout``, containers, cluster schedulers): stopped like Ctrl-C, files left whole."""


def _on_sigterm(signum, frame):
    raise Terminated()


def _format_warning(message, category, filename, lineno, line=None):
    return f"spineseg: warning: {message}\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spineseg",
        description="Vertebra localisation, identification and segmentation (SpineSeg).",
    )
    parser.add_argument("--version", action="version", version=f"spineseg {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(f"{__name__}.{module_name}")
        p = sub.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def _quiet_itk(verbose: bool) -> None:
    """ITK's own C++ warnings (e.g. a DICOM series' spacing) go to stderr unformatted; SpineSeg's checks say
    what matters in its own words, so ITK's are shown only with --verbose."""
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalWarningDisplay(bool(verbose))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="spineseg: %(message)s")
    warnings.formatwarning = _format_warning
    _quiet_itk(args.verbose)
    previous = signal.getsignal(signal.SIGTERM)
    with contextlib.suppress(ValueError):  # only the main thread may set handlers
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return int(args._module.run(args) or 0)
    except SpineSegError as exc:
        print(f"spineseg: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Terminated:
        print(
            "spineseg: terminated (SIGTERM); finished cases are kept, the others run again next time", file=sys.stderr
        )
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("spineseg: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
