"""SpineSeg module: the model manager (status, download with sha256, manual install) and the dependency policy."""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import zipfile

import pytest
import slicer_headless as H
from slicer_fixtures import write_tiny_resources

H.add_module_paths()

from SpineSegSlicerLib import dependencies as D  # noqa: E402
from SpineSegSlicerLib import models as M  # noqa: E402

from SpineSegLib.models import sha256_of  # noqa: E402


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A manifest with one bundled stage and two downloadable ones (file:// URLs), and an empty cache."""
    tiny = write_tiny_resources(tmp_path / "build") / "models"
    resources = tmp_path / "Resources" / "models"
    resources.mkdir(parents=True)
    server = tmp_path / "server"
    server.mkdir()
    manifest = json.loads((tiny / "manifest.json").read_text())
    stages = manifest["pipelines"]["ct-full-spine"]["stages"]
    shutil.copy(tiny / stages["spine"]["weights"], resources)
    shutil.copy(tiny / stages["spine"]["card"], resources)
    for stage in ("vertebrae", "segmentation"):
        for key in ("weights", "card"):
            shutil.copy(tiny / stages[stage][key], server)
        stages[stage]["url"] = (server / stages[stage]["weights"]).as_uri()
    manifest["pipelines"]["ct-full-spine"]["title"] = "CT full spine"
    (resources / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("SPINESEG_RESOURCES", str(resources.parent))
    monkeypatch.setenv("SPINESEG_MODEL_CACHE", str(tmp_path / "cache"))
    return dict(server=server, stages=stages, cache=tmp_path / "cache")


def states(manager):
    return {s.stage: s.state for s in manager.status("ct-full-spine")}


def test_status_download_and_verification(served):
    manager = M.ModelManager()
    assert manager.pipelines() == [("ct-full-spine", "CT full spine")]
    assert states(manager) == {"spine": M.BUNDLED, "vertebrae": M.MISSING, "segmentation": M.MISSING}
    assert not manager.ready("ct-full-spine")
    progress = []
    manager.download("ct-full-spine", progress=lambda f, m: progress.append(f))
    assert states(manager) == {"spine": M.BUNDLED, "vertebrae": M.INSTALLED, "segmentation": M.INSTALLED}
    assert manager.ready("ct-full-spine")
    assert progress == sorted(progress) and progress[-1] == 1.0
    weights = served["cache"] / "ct-full-spine" / served["stages"]["vertebrae"]["weights"]
    assert sha256_of(weights) == served["stages"]["vertebrae"]["sha256"]
    # a damaged file is seen as corrupt and downloaded again
    weights.write_bytes(b"damaged")
    assert states(manager)["vertebrae"] == M.CORRUPT
    manager.download("ct-full-spine")
    assert states(manager)["vertebrae"] == M.INSTALLED


def test_a_wrong_file_on_the_server_is_refused_and_nothing_is_installed(served):
    name = served["stages"]["segmentation"]["weights"]
    (served["server"] / name).write_bytes(b"not the model the manifest names")
    with pytest.raises(M.ModelError, match="does not match the manifest"):
        M.ModelManager().download("ct-full-spine")
    assert not (served["cache"] / "ct-full-spine" / name).exists()


def test_unreachable_url_explains_the_manual_install(served):
    shutil.rmtree(served["server"])
    with pytest.raises(M.ModelError, match="Install from folder"):
        M.ModelManager().download("ct-full-spine")


def test_cancelled_download_installs_nothing(served):
    with pytest.raises(M.ModelError, match="cancelled"):
        M.ModelManager().download("ct-full-spine", cancel=lambda: True)
    assert not served["cache"].exists() or not any(served["cache"].rglob("*.safetensors"))


@pytest.mark.parametrize("as_zip", [False, True])
def test_manual_install_from_a_folder_or_zip(served, tmp_path, as_zip):
    source = served["server"]
    if as_zip:
        source = tmp_path / "models.zip"
        with zipfile.ZipFile(source, "w") as z:
            for f in served["server"].iterdir():
                z.write(f, f"spineseg-models/{f.name}")
    installed = M.ModelManager().install_from_folder(source)
    assert sorted(s.stage for s in installed) == ["segmentation", "vertebrae"]
    assert M.ModelManager().ready("ct-full-spine")


def test_manual_install_refuses_a_corrupt_file_by_name(served):
    name = served["stages"]["vertebrae"]["weights"]
    (served["server"] / name).write_bytes(b"corrupt")
    with pytest.raises(M.ModelError, match=name):
        M.ModelManager().install_from_folder(served["server"])
    assert not M.ModelManager().ready("ct-full-spine")


# ----------------------------------------------------------------------------------------------
# Dependencies


class FakePackaging:
    def __init__(self):
        self.calls = []

    def pip_ensure(self, requirements, constraints=None, requester=None, **kwargs):
        self.calls.append((list(requirements), constraints, requester))


class FakeSlicer:
    def __init__(self, with_packaging: bool):
        self.packaging = FakePackaging() if with_packaging else None
        self.pip_calls = []
        self.util = self

    def pip_install(self, args):
        self.pip_calls.append(args)


MISSING = (
    ("torch", "torch", ">=2.1"),
    ("spineseg-not-real-a", "spineseg_not_real_a", ">=1.4"),
    ("spineseg-not-real-b", "spineseg_not_real_b", ">=0.4"),
)


def test_nothing_missing_installs_nothing():
    installer = D.Installer(FakeSlicer(True), torch_installer=lambda *a: pytest.fail("torch installed"))
    assert D.missing_requirements() == []  # the test environment has everything SpineSegLib needs
    assert installer.ensure(interactive=False) == []


@pytest.mark.parametrize("with_packaging", [True, False])
def test_missing_packages_go_to_the_right_installer_and_slicer_packages_are_pinned(with_packaging, monkeypatch):
    torch_calls = []
    fake = FakeSlicer(with_packaging)
    confirmations = []
    monkeypatch.setattr(D, "installed_version", lambda dist, module: None if dist != "numpy" else "2.0")
    installer = D.Installer(
        fake,
        torch_installer=lambda ask, req: torch_calls.append((ask, req)) or object(),
        confirm=lambda message: confirmations.append(message) or True,
        requirements=MISSING,
    )
    with pytest.raises(D.DependencyError, match="still missing"):  # the fakes install nothing
        installer.ensure(interactive=True)
    assert torch_calls == [(True, ">=2.1")]  # torch only through PyTorchUtils, with its confirmation
    if with_packaging:
        (requirements, constraints, requester), *_ = fake.packaging.calls
        assert requester == "SpineSeg" and fake.pip_calls == []
    else:
        (args,) = fake.pip_calls
        assert len(confirmations) == 1
        requirements, constraints = args[:-2], args[-1]
        assert args[-2] == "-c"
    assert requirements == ["spineseg-not-real-a>=1.4", "spineseg-not-real-b>=0.4"]
    assert not any(r.split(">")[0].lower() in ("numpy", "simpleitk", "vtk", "torch") for r in requirements)
    pins = open(constraints, encoding="utf-8").read().split()
    for name in D.PROTECTED:
        try:
            assert f"{name}=={importlib.metadata.version(name)}" in pins
        except importlib.metadata.PackageNotFoundError:
            continue
    assert any(p.startswith("numpy==") for p in pins)


def test_declined_installation_is_an_error_and_non_interactive_never_asks(monkeypatch):
    monkeypatch.setattr(D, "installed_version", lambda dist, module: None)
    fake = FakeSlicer(False)
    installer = D.Installer(fake, torch_installer=lambda *a: None, confirm=lambda m: False, requirements=MISSING[1:])
    with pytest.raises(D.DependencyError, match="declined"):
        installer.ensure(interactive=True)
    assert fake.pip_calls == []
    torch_only = D.Installer(fake, torch_installer=lambda *a: None, requirements=MISSING[:1])
    with pytest.raises(D.DependencyError, match="PyTorch was not installed"):
        torch_only.ensure(interactive=True)
    with pytest.raises(D.DependencyError, match=r"torch>=2\.1"):
        torch_only.ensure(interactive=False)


def test_version_requirements():
    assert D.satisfies("2.13.0+cpu", ">=2.1")
    assert not D.satisfies("2.0.1", ">=2.1")
    old = D.Missing("monai", ">=1.4", "1.3.0")
    assert old.describe() == "monai>=1.4 (installed 1.3.0)"
