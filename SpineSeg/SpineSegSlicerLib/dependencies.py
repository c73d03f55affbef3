"""First-run dependencies: find what SpineSegLib needs and is missing, install it with the user's consent.

* torch through the PyTorch extension (``PyTorchUtils.installTorch``), which picks the CUDA build that
  fits the GPU driver (plain pip would install a CPU-only or wrong-CUDA wheel);
* the rest (monai, safetensors, scipy, tqdm, pillow) with ``slicer.packaging.pip_ensure`` on
  Slicer >= 5.12, else ``slicer.util.pip_install``;
* Slicer's own numpy, SimpleITK and vtk are never replaced: they are pinned to the installed versions
  in a pip constraints file (a newer numpy or SimpleITK breaks Slicer's compiled modules).

Nothing here opens a dialog unless ``interactive`` is set; in tests and ``--no-main-window`` runs a
missing package is one clear error that says what to install.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: (distribution name, import name, version requirement) of what the pipeline needs besides Slicer's own.
REQUIREMENTS: tuple[tuple[str, str, str], ...] = (
    ("torch", "torch", ">=2.1"),
    ("monai", "monai", ">=1.4"),
    ("safetensors", "safetensors", ">=0.4"),
    ("scipy", "scipy", ">=1.10"),
    ("tqdm", "tqdm", ">=4.60"),
    ("pillow", "PIL", ">=9"),
)
#: Packages Slicer ships and that must never be upgraded or replaced by an install.
PROTECTED = ("numpy", "SimpleITK", "vtk")
TORCH_REQUIREMENT = dict((d, r) for d, _, r in REQUIREMENTS)["torch"]


class DependencyError(RuntimeError):
    """A needed package is missing and was not installed (declined, failed, or not allowed here)."""


@dataclass(frozen=True)
class Missing:
    name: str  # distribution name
    requirement: str  # e.g. ">=2.1"
    installed: str | None  # installed version that is too old, or None

    @property
    def spec(self) -> str:
        return f"{self.name}{self.requirement}"

    def describe(self) -> str:
        return f"{self.spec} (installed {self.installed})" if self.installed else self.spec


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in re.split(r"[.+-]", text):
        m = re.match(r"\d+", piece)
        if not m:
            break
        parts.append(int(m.group()))
    return tuple(parts)


def satisfies(version: str, requirement: str) -> bool:
    """Whether ``version`` meets a ``>=X.Y`` requirement (``packaging`` when available)."""
    try:
        from packaging.specifiers import SpecifierSet

        return SpecifierSet(requirement).contains(version, prereleases=True)
    except ImportError:
        m = re.fullmatch(r"\s*>=\s*([\w.]+)\s*", requirement)
        if not m:
            return True
        return _version_tuple(version) >= _version_tuple(m.group(1))


def installed_version(distribution: str, module: str) -> str | None:
    """The installed version of a package (metadata first, so a broken install is still seen), or None."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        pass
    return "unknown" if importlib.util.find_spec(module) is not None else None


def missing_requirements(requirements=REQUIREMENTS) -> list[Missing]:
    out = []
    for dist, module, req in requirements:
        version = installed_version(dist, module)
        if version is None:
            out.append(Missing(dist, req, None))
        elif version != "unknown" and not satisfies(version, req):
            out.append(Missing(dist, req, version))
    return out


def constraints_text() -> str:
    """pip constraints pinning Slicer's own packages to their installed versions."""
    lines = []
    for name in PROTECTED:
        try:
            lines.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return "\n".join(lines) + "\n"


class Installer:
    """Installs missing packages through Slicer's machinery (injected, so the policy is testable headless).

    ``slicer_module``: the ``slicer`` module (its ``packaging``/``util`` are used); ``torch_installer``:
    a callable ``(ask_confirmation: bool, requirement: str) -> module or None`` (default: PyTorchUtils);
    ``confirm``: ``(message) -> bool`` for the consent dialog of Slicer < 5.12.
    """

    def __init__(
        self,
        slicer_module=None,
        torch_installer: Callable[[bool, str], object] | None = None,
        confirm: Callable[[str], bool] | None = None,
        log: Callable[[str], None] | None = None,
        requirements=REQUIREMENTS,
    ):
        self.slicer = slicer_module
        self.requirements = tuple(requirements)
        self.torch_installer = torch_installer or _pytorchutils_install
        self.confirm = confirm
        self.log = log or (lambda message: None)

    def ensure(self, interactive: bool = True) -> list[str]:
        """Install whatever is missing; returns what was installed. Raises DependencyError otherwise."""
        missing = missing_requirements(self.requirements)
        if not missing:
            return []
        listing = ", ".join(m.describe() for m in missing)
        if not interactive:
            raise DependencyError(
                f"SpineSeg needs Python packages that are missing: {listing}. Open the SpineSeg module once "
                "in Slicer to install them, or install them with PythonSlicer -m pip install (torch through "
                "the PyTorch extension)."
            )
        installed = []
        torch = [m for m in missing if m.name == "torch"]
        others = [m for m in missing if m.name != "torch"]
        if torch:
            self.log(f"Installing PyTorch {TORCH_REQUIREMENT} through the PyTorch extension...")
            if self.torch_installer(True, TORCH_REQUIREMENT) is None:
                raise DependencyError("PyTorch was not installed (declined or failed); SpineSeg cannot run without it")
            installed.append(torch[0].spec)
        if others:
            self._pip(others)
            installed += [m.spec for m in others]
        still = missing_requirements(self.requirements)
        if still:
            raise DependencyError(
                "after installing, still missing: " + ", ".join(m.describe() for m in still) + "; restart Slicer"
            )
        return installed

    def _pip(self, missing: list[Missing]) -> None:
        specs = [m.spec for m in missing]
        constraints = Path(tempfile.mkdtemp(prefix="SpineSeg-pip-")) / "constraints.txt"
        constraints.write_text(constraints_text(), encoding="utf-8")
        packaging = getattr(self.slicer, "packaging", None)
        if packaging is not None and hasattr(packaging, "pip_ensure"):  # Slicer >= 5.12: consent + progress
            self.log(f"Installing {', '.join(specs)}...")
            try:
                packaging.pip_ensure(specs, constraints=str(constraints), requester="SpineSeg")
            except RuntimeError as exc:  # the user declined
                raise DependencyError(f"packages not installed: {exc}") from None
            return
        message = "SpineSeg needs these Python packages, which will be downloaded and installed:\n" + "\n".join(specs)
        if self.confirm is not None and not self.confirm(message):
            raise DependencyError("installation of " + ", ".join(specs) + " was declined")
        self.log(f"Installing {', '.join(specs)}...")
        self.slicer.util.pip_install([*specs, "-c", str(constraints)])  # a list: paths may hold spaces


def _pytorchutils_install(ask_confirmation: bool, requirement: str):
    try:
        import PyTorchUtils
    except ImportError:
        raise DependencyError(
            "the PyTorch extension is not installed: install 'PyTorch' from the Extensions Manager and restart Slicer"
        ) from None
    return PyTorchUtils.PyTorchUtilsLogic().installTorch(
        askConfirmation=ask_confirmation, torchVersionRequirement=requirement
    )
