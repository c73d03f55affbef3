"""The panel's "Models" box: which pipelines are installed, and download, install or open them."""

import logging
import os

import qt
import slicer
from slicer.i18n import tr as _
from SpineSegSlicerLib import logic, models


class ModelsBox:
    """Fills the pipeline combo from the manifest and keeps the models' status line current."""

    def __init__(self, ui, log) -> None:
        self.ui, self.log = ui, log

    def selectedPipeline(self) -> str:
        return self.ui.pipelineComboBox.currentData or logic.DEFAULT_PIPELINE

    def fillPipelines(self) -> None:
        combo = self.ui.pipelineComboBox
        combo.clear()
        try:
            for name, title in models.ModelManager().pipelines():
                combo.addItem(title, name)
        except Exception as exc:  # no manifest yet (models not installed): keep the default entry
            logging.warning(f"SpineSeg model manifest not available: {exc}")
            combo.addItem(logic.DEFAULT_PIPELINE, logic.DEFAULT_PIPELINE)
        self.updateStatus()

    def updateStatus(self) -> None:
        try:
            states = models.ModelManager().status(self.selectedPipeline(), verify=False)
            self.ui.modelsStatusLabel.text = "\n".join(s.describe() for s in states)
            self.ui.downloadModelsButton.enabled = any(not s.ready and s.url for s in states)
        except Exception as exc:
            self.ui.modelsStatusLabel.text = _("Models not available: {error}").format(error=str(exc))
            self.ui.downloadModelsButton.enabled = False

    def onDownload(self) -> None:
        progressDialog = slicer.util.createProgressDialog(labelText=_("Downloading models..."), maximum=100)
        try:
            with slicer.util.tryWithErrorDisplay(_("Model download failed."), waitCursor=True):

                def progress(fraction, message):
                    progressDialog.value = int(100 * fraction)
                    progressDialog.labelText = message
                    slicer.app.processEvents()

                models.ModelManager().download(
                    self.selectedPipeline(), progress, cancel=lambda: progressDialog.wasCanceled
                )
        finally:
            progressDialog.close()
            self.updateStatus()

    def onInstall(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(None, _("Folder with SpineSeg model files"))
        if not folder:
            return
        with slicer.util.tryWithErrorDisplay(_("Model installation failed."), waitCursor=True):
            installed = models.ModelManager().install_from_folder(folder)
            self.log(_("Installed models: {models}").format(models=", ".join(s.describe() for s in installed)))
        self.updateStatus()

    def onOpenFolder(self) -> None:
        folder = models.ModelManager().cache_dir
        os.makedirs(folder, exist_ok=True)
        qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(str(folder)))
