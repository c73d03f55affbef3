"""Inference: the stages of the full-spine pipeline and the object that runs them."""

from .runner import DEFAULT_PIPELINE, STAGES, Pipeline, PipelineResult, parse_stages

__all__ = ["DEFAULT_PIPELINE", "STAGES", "Pipeline", "PipelineResult", "parse_stages"]
