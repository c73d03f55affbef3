"""SpineSeg training package: VerSe-layout data -> safetensors weights + model cards."""

__version__ = "0.1.0"
