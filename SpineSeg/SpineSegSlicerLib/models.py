"""Model manager: which weights each pipeline uses, whether they are there, and getting them.

The manifest (``Resources/models/manifest.json``, :mod:`SpineSegLib.models.manifest`) lists per
pipeline and stage a weights file, its model card and the weights' sha256. Entries without a URL are
bundled with the extension; entries with a ``url`` live in the model cache
(``$SPINESEG_MODEL_CACHE`` or ``~/.spineseg/models/<pipeline>/``) and are downloaded on request.
The card comes from ``card_url`` or, by default, the weights URL with ``.json`` for ``.safetensors``.
A ``.zip`` URL may hold both files.

For hospitals without internet, :meth:`ModelManager.install_from_folder` copies the files from a folder
or zip (e.g. from a USB stick) into the cache after checking the sha256; a wrong or corrupt file is
refused by name. Nothing is ever unpickled; a file is only used after its hash matched.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BUNDLED = "bundled"
INSTALLED = "installed"
MISSING = "missing"
CORRUPT = "corrupt"

ProgressCallback = Callable[[float, str], None]
CancelCheck = Callable[[], bool]


class ModelError(RuntimeError):
    """A model file is missing, corrupt, or could not be downloaded or installed."""


def _manifest_api():
    # Imported when used: SpineSegLib.models pulls in torch, which the GUI process may not have yet.
    from SpineSegLib.models import manifest, sha256_of

    return manifest, sha256_of


@dataclass(frozen=True)
class StageStatus:
    pipeline: str
    stage: str
    state: str  # bundled, installed, missing, corrupt
    weights: Path
    card: Path
    sha256: str
    card_sha256: str
    url: str | None
    size_bytes: int | None

    @property
    def ready(self) -> bool:
        return self.state in (BUNDLED, INSTALLED)

    def describe(self) -> str:
        where = self.url or "bundled with the extension"
        return f"{self.pipeline} / {self.stage}: {self.state} ({self.weights.name}; {where})"


class ModelManager:
    def __init__(self, manifest_path: str | os.PathLike | None = None):
        manifest, _ = _manifest_api()
        self.manifest = manifest.Manifest.load(manifest_path)

    @property
    def cache_dir(self) -> Path:
        manifest, _ = _manifest_api()
        return manifest.model_cache_dir()

    def pipelines(self) -> list[tuple[str, str]]:
        """(name, title) of every pipeline in the manifest."""
        return [(name, str(self.manifest.pipeline(name).get("title", name))) for name in self.manifest.pipelines]

    def stages(self, pipeline: str) -> list[str]:
        return list(self.manifest.pipeline(pipeline).get("stages", {}))

    def status(self, pipeline: str, verify: bool = True) -> list[StageStatus]:
        """Per stage: bundled/installed when the weights and card exist (and the hash matches when ``verify``)."""
        _, sha256_of = _manifest_api()
        out = []
        for stage in self.stages(pipeline):
            e = self.manifest.entry(pipeline, stage)
            if not (e.weights.is_file() and e.card.is_file()):
                state = MISSING
            elif verify and (sha256_of(e.weights) != e.sha256 or sha256_of(e.card) != e.card_sha256):
                state = CORRUPT
            else:
                state = INSTALLED if e.url else BUNDLED
            out.append(
                StageStatus(pipeline, stage, state, e.weights, e.card, e.sha256, e.card_sha256, e.url, e.size_bytes)
            )
        return out

    def ready(self, pipeline: str) -> bool:
        return all(s.ready for s in self.status(pipeline))

    # ------------------------------------------------------------------------------------------
    def download(
        self, pipeline: str, progress: ProgressCallback | None = None, cancel: CancelCheck | None = None
    ) -> list[StageStatus]:
        """Download every missing or corrupt downloadable stage of ``pipeline`` into the cache."""
        progress = progress or (lambda f, m: None)
        todo = [s for s in self.status(pipeline) if not s.ready]
        bundled_missing = [s for s in todo if not s.url]
        if bundled_missing:
            raise ModelError(
                "bundled model files are missing or corrupt: "
                + ", ".join(str(s.weights) for s in bundled_missing)
                + "; reinstall the extension"
            )
        for n, s in enumerate(todo):
            spec = self.manifest.pipeline(pipeline)["stages"][s.stage]

            def part(f: float, m: str, n: int = n) -> None:
                progress((n + f) / len(todo), m)

            self._download_stage(s, spec, part, cancel)
        progress(1.0, "models ready")
        return self.status(pipeline)

    def _download_stage(self, s: StageStatus, spec: dict, progress: ProgressCallback, cancel: CancelCheck | None):
        with tempfile.TemporaryDirectory(prefix="SpineSeg-download-") as tmp:
            tmp = Path(tmp)
            url = str(s.url)
            if url.lower().endswith(".zip"):
                archive = _fetch(url, tmp / "download.zip", progress, cancel, f"{s.stage} model")
                self._install_files(_extract(archive, tmp / "unzipped"), [s])
                return
            weights = _fetch(url, tmp / s.weights.name, lambda f, m: progress(0.95 * f, m), cancel, f"{s.stage} model")
            card_url = spec.get("card_url") or _card_url(url)
            card = _fetch(card_url, tmp / s.card.name, lambda f, m: progress(0.95 + 0.05 * f, m), cancel, "model card")
            self._install_files({weights.name: weights, card.name: card}, [s])

    # ------------------------------------------------------------------------------------------
    def install_from_folder(self, source: str | os.PathLike, pipeline: str | None = None) -> list[StageStatus]:
        """Manual install: copy the model files of ``pipeline`` (default: all) found in a folder or zip.

        Files are matched by the names the manifest gives and checked against its sha256 before anything
        is copied. Returns the installed stages; raises ModelError when none was found or a hash is wrong.
        """
        source = Path(source)
        pipelines = [pipeline] if pipeline else self.manifest.pipelines
        wanted = [s for p in pipelines for s in self.status(p) if s.url and not s.ready]
        if not wanted:
            return []
        with tempfile.TemporaryDirectory(prefix="SpineSeg-install-") as tmp:
            if source.is_file() and zipfile.is_zipfile(source):
                files = _extract(source, Path(tmp))
            elif source.is_dir():
                files = {p.name: p for p in sorted(source.rglob("*")) if p.is_file()}
            else:
                raise ModelError(f"{source}: neither a folder nor a zip file with SpineSeg model files")
            present = [s for s in wanted if s.weights.name in files and s.card.name in files]
            if not present:
                names = ", ".join(sorted({s.weights.name for s in wanted}))
                raise ModelError(f"{source}: none of the expected model files ({names}) was found")
            self._install_files(files, present)
        installed = {s.weights for s in present}
        return [s for p in pipelines for s in self.status(p) if s.weights in installed]

    def _install_files(self, files: dict[str, Path], stages: list[StageStatus]) -> None:
        """Check every stage's weights hash first, then copy weights and card into place atomically."""
        _, sha256_of = _manifest_api()
        for s in stages:
            for name in (s.weights.name, s.card.name):
                if name not in files:
                    raise ModelError(f"{s.pipeline} / {s.stage}: {name} is missing from the download")
            for name, want in ((s.weights.name, s.sha256), (s.card.name, s.card_sha256)):
                digest = sha256_of(files[name])
                if digest != want:
                    raise ModelError(
                        f"{files[name]}: sha256 {digest[:12]}... does not match the manifest "
                        f"({want[:12]}...): wrong or corrupt file for {s.pipeline} / {s.stage}"
                    )
        for s in stages:
            for name, target in ((s.card.name, s.card), (s.weights.name, s.weights)):
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(target.name + ".part")
                shutil.copyfile(files[name], tmp)
                os.replace(tmp, target)


def _card_url(weights_url: str) -> str:
    return (
        weights_url[: -len(".safetensors")] + ".json" if weights_url.endswith(".safetensors") else weights_url + ".json"
    )


def _fetch(url: str, target: Path, progress: ProgressCallback, cancel: CancelCheck | None, what: str) -> Path:
    """Download ``url`` to ``target`` in chunks, reporting progress; file:// URLs work too (tests, intranets)."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(target, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            while True:
                if cancel is not None and cancel():
                    raise ModelError(f"download of {what} cancelled")
                chunk = response.read(1 << 20)
                if not chunk:
                    break
                out.write(chunk)
                done += len(chunk)
                fraction = done / total if total else 0.0
                progress(
                    fraction, f"downloading {what}: {done / 1e6:.1f} MB" + (f" of {total / 1e6:.1f}" if total else "")
                )
    except OSError as exc:
        raise ModelError(
            f"could not download {what} from {url} ({exc}); without internet access use 'Install from folder'"
        ) from None
    return target


def _extract(archive: Path, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    with zipfile.ZipFile(archive) as z:
        for info in z.infolist():
            if info.is_dir():
                continue
            name = Path(info.filename).name  # flatten: never write outside the folder
            if not name or name.startswith("."):
                continue
            target = folder / name
            with z.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            files[name] = target
    return files
