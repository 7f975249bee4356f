"""Evaluation: PR-bench, PR-MMLU and the regression guard (``bench``), and ``precheck``."""
