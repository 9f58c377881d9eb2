"""The classical real-world degradation pipeline, shared by the service (``POST /degrade``) and training (realistic LR).

A package of its own, imported by both sides: ``app`` and ``training`` never import each other (see the
import-linter contracts in pyproject.toml). Only numpy, OpenCV and pydantic.
"""
from degradations.pipeline import PRESETS, Pipeline, degrade, jpeg, load_presets

__all__ = ["PRESETS", "Pipeline", "degrade", "jpeg", "load_presets"]
