"""The lint report: every check's result, a console table, and lint_report.json (written atomically)."""
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from ..files import write_json_atomic
from .checks import Check


@dataclass
class LintReport:
    datasets: List[str]
    rows_read: int
    train_pairs: int
    eval_pairs: int
    checks: List[Check]
    tokenizer: Optional[str] = None      # model dir whose tokenizer counted tokens (None: token checks skipped)
    template: Optional[str] = None
    lengths: Dict[str, Dict[str, int]] = field(default_factory=dict)  # prompt|chosen|rejected -> percentiles
    length_unit: str = "characters"
    seconds: float = 0.0

    @property
    def failed(self) -> List[str]:
        return [c.name for c in self.checks if c.status == "FAIL"]

    def to_dict(self) -> dict:
        return {
            "datasets": self.datasets, "rows_read": self.rows_read, "train_pairs": self.train_pairs,
            "eval_pairs": self.eval_pairs, "tokenizer": self.tokenizer, "template": self.template,
            "token_checks": self.tokenizer is not None, "failed": self.failed,
            "checks": {c.name: {"status": c.status, "count": c.count, "total": max(c.total, 0),
                                "value": _finite(c.value), "limit": c.limit, "summary": c.summary,
                                "detail": c.detail, "examples": c.examples} for c in self.checks},
            "lengths": {"unit": self.length_unit, **self.lengths}, "seconds": round(self.seconds, 2),
        }

    def format(self) -> str:
        pairs = self.train_pairs + self.eval_pairs
        how = (f"tokens of {self.tokenizer} (template {self.template})" if self.tokenizer
               else "no tokenizer: lengths in characters, token checks skipped")
        lines = [f"[lint] {', '.join(self.datasets)}: {self.rows_read} rows read, {pairs} pairs (train "
                 f"{self.train_pairs}, eval {self.eval_pairs}); {how}",
                 f"  {'check':<24}{'found':>8}{'share':>9}{'limit':>9}  {'status':<8} details"]
        for c in self.checks:
            if c.status == "skipped":
                lines.append(f"  {c.name:<24}{'-':>8}{'-':>9}{'-':>9}  {'skipped':<8} {c.summary}")
                continue
            if c.name == "length_bias":
                share, limit = f"d {c.value:.2f}", f"{c.limit:g}"
            else:
                share, limit = f"{c.value:.2%}", f"{c.limit:.2%}"
            lines.append(f"  {c.name:<24}{c.count:>8}{share:>9}{limit:>9}  {c.status:<8} {c.summary}".rstrip())
            if c.status != "ok" and c.examples:
                lines.append(f"  {'':<24}first: {'; '.join(c.examples)}")
        if self.lengths:
            lines.append(f"  {'length (' + self.length_unit + ')':<24}{'p50':>8}{'p90':>9}{'p99':>9}{'max':>9}")
            for key, pct in self.lengths.items():
                lines.append(f"    {key:<22}" + "".join(f"{pct[q]:>{8 if q == 'p50' else 9}}"
                                                      for q in ("p50", "p90", "p99", "max")))
        mix = next((c.detail.get("scripts") for c in self.checks if c.name == "script_mismatch"), None)
        for name, counts in (mix or {}).items():
            total = sum(counts.values()) or 1
            lines.append(f"  scripts of {name:<12} " + ", ".join(f"{s} {n / total:.1%}" for s, n in counts.items()))
        failed = self.failed
        lines.append(f"[lint] {len(failed)} of {len(self.checks)} checks over their limit: {', '.join(failed)}"
                     if failed else f"[lint] every check within its limit ({self.seconds:.1f}s)")
        return "\n".join(lines)


def _finite(value):
    """JSON has no infinity or NaN: such values are written as strings."""
    return value if value is None or math.isfinite(value) else str(value)


def write_report(report: LintReport, output_dir: str) -> Path:
    """<output_dir>/lint_report.json, replaced atomically (a reader never sees half a file)."""
    return write_json_atomic(Path(output_dir) / "lint_report.json", report.to_dict())
