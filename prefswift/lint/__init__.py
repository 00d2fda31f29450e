"""`prefswift lint`: a report on preference data before training — what the pipeline drops and why, repeats, length
bias, truncation, prompts and special tokens inside answers, scripts per field, and the K-way groups of sampled files
(`prefswift sample`: prompts whose samples are all one text, score columns; `sampled.py`) (see `run.lint_dataset`)."""
from .report import LintReport, write_report
from .run import lint_dataset

__all__ = ["LintReport", "lint_dataset", "write_report"]
