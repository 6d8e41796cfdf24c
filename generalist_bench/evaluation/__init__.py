"""Evaluation: ``evaluate`` (suites ``autoattack`` / ``paper`` / ``quick`` or any attack list), ``quick_eval``
for validation during training, ``merge_results`` for shards, ``EvalResult`` (dataclass ↔ JSON)."""

from .api import evaluate, quick_eval
from .result import EvalResult, SanityCheckError, merge_results
from .suites import list_suites, register_suite

__all__ = ["EvalResult", "SanityCheckError", "evaluate", "list_suites", "merge_results", "quick_eval",
           "register_suite"]
