"""Evaluation: ``evaluate(model, EvalSpec(...))`` or its keyword form — suites ``autoattack`` / ``paper`` /
``quick`` or any attack list; ``quick_eval`` for validation during training, ``merge_results`` for shards,
``EvalResult`` (dataclass ↔ JSON). ``evaluate`` is ``plan_evaluation`` → ``run_plan`` → ``report``."""

from .api import EvalPlan, EvalSpec, evaluate, plan_evaluation, quick_eval, report, run_plan
from .result import EvalResult, SanityCheckError, merge_results
from .suites import list_suites, register_suite

__all__ = ["EvalPlan", "EvalResult", "EvalSpec", "SanityCheckError", "evaluate", "list_suites", "merge_results",
           "plan_evaluation", "quick_eval", "register_suite", "report", "run_plan"]
