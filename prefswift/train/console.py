"""What a training run prints: one progress bar, one aligned line per logging step, a summary table at the end.

`ConsoleCallback` replaces the Trainer's own printing (its nested tqdm bars and dicts of quoted strings; see
`use_console`). On a TTY it draws one bar (step/max_steps, ETA, tokens/s) and writes the metric lines above it; on a
pipe or file there is no bar and each metric line carries the ETA and tokens/s itself. Only the world rank 0 prints.
Tokens are the Trainer's own count of the batches' `input_ids` (TrainingArguments `include_num_input_tokens_seen`,
gathered over ranks): `state.num_input_tokens_seen`.

`quiet_library_noise()` silences the per-run noise of the libraries underneath (by message, through the public
`warnings` and `logging` filters). `format_summary(console.summary(), run_dir, model_dir)` is the final table.
"""
import logging
import math
import resource
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, TextIO, Tuple

from transformers import TrainerCallback

# (log key, label, format, width): the columns of a metric line, train and eval alike ("eval_" + key)
COLUMNS: Tuple[Tuple[str, str, str, int], ...] = (
    ("loss", "loss", "{:.4f}", 7),
    ("rewards/accuracies", "acc", "{:.3f}", 5),
    ("rewards/margins", "margin", "{:+.4f}", 7),
    ("learning_rate", "lr", "{:.2e}", 8),
)


# ---------------------------------------------------------------------------------------------- library noise

class _DropMessages(logging.Filter):
    def __init__(self, *fragments: str):
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(f in message for f in self.fragments)


# accelerate's gather_for_metrics logs this at the end of every (skipping) dataloader on resume
_ACCELERATE_NOISE = _DropMessages("dataset had no length")


def quiet_library_noise() -> None:
    """Silence what every run would print for nothing (idempotent; call it before the models are built):
    peft reads transformers' deprecated `is_gradient_checkpointing` property (a FutureWarning per rank), and
    accelerate's "The used dataset had no length" lines on resume."""
    warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    logging.getLogger("accelerate.accelerator").addFilter(_ACCELERATE_NOISE)


# ---------------------------------------------------------------------------------------------- formatting

def peak_memory() -> Tuple[int, str]:
    """(bytes, what): the highest CUDA memory any GPU of this process held (torch's allocator), else the process's
    peak resident set size."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        peak = max((torch.cuda.max_memory_allocated(i) for i in range(torch.cuda.device_count())), default=0)
        if peak:
            return peak, "GPU"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (rss if sys.platform == "darwin" else rss * 1024), "RSS"


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _number(value) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if math.isnan(value) or math.isinf(value) else float(value)


def format_metrics(logs: Dict[str, float], prefix: str = "") -> str:
    """The aligned columns (loss, acc, margin, lr) of `logs`; a missing metric keeps its place blank."""
    cells = []
    for key, label, fmt, width in COLUMNS:
        raw = logs.get(prefix + key)
        value = _number(raw)
        if value is None and isinstance(raw, float):  # nan / inf: shown as such, never as a number
            cells.append(f"{label} {str(raw).rjust(width)}")
            continue
        cell = fmt.format(value).rjust(width) if value is not None else " " * width
        cells.append(f"{label} {cell}" if value is not None else " " * (len(label) + 1 + width))
    return "  ".join(cells).rstrip()


def format_line(kind: str, step: int, max_steps: int, logs: Dict[str, float], tail: str = "") -> str:
    """One metric line: `train step   4/100  loss   6.8940  acc 1.000  margin +0.0038  lr 2.50e-05  mem ...`."""
    width = len(str(max_steps))
    prefix = "eval_" if kind == "eval" else ""
    line = f"{kind:<5} step {step:>{width}}/{max_steps}  {format_metrics(logs, prefix)}"
    return f"{line}  {tail}".rstrip() if tail else line


def format_rate(tokens: int, seconds: float) -> str:
    return f"{tokens / seconds:,.0f} tok/s" if tokens and seconds > 0 else ""


# ---------------------------------------------------------------------------------------------- the callback

@dataclass
class TrainSummary:
    """What `format_summary` reports: filled by ConsoleCallback on rank 0 (empty elsewhere)."""
    start_step: int = 0
    steps: int = 0
    max_steps: int = 0
    wall_s: float = 0.0
    tokens: int = 0
    peak_bytes: int = 0
    peak_kind: str = ""
    final_train: Dict[str, float] = field(default_factory=dict)
    final_train_step: int = 0
    best_eval: Dict[str, float] = field(default_factory=dict)
    best_eval_step: int = 0
    warnings: List[str] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.wall_s if self.wall_s > 0 else 0.0


class ConsoleCallback(TrainerCallback):
    """The training console (rank 0 only). `stream`: where to print (stdout); `bar`: force the progress bar on or
    off (default: on when `stream` is a TTY); `clock`: seconds, monotonic (tests pass a fake)."""

    def __init__(self, stream: Optional[TextIO] = None, bar: Optional[bool] = None,
                 clock: Callable[[], float] = time.monotonic):
        self.stream = stream
        self.want_bar = bar
        self.clock = clock
        self.bar = None
        self.t0 = 0.0
        self.t_end: Optional[float] = None
        self.tokens0 = 0
        self.run = TrainSummary()
        self._eval_refresh = 0.0

    # ---- output ---------------------------------------------------------------------------------------------
    @property
    def out(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stdout

    def write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=self.out)  # tqdm clears the bar, writes the line, redraws the bar below it
        else:
            self.out.write(line + "\n")
            self.out.flush()

    def _use_bar(self) -> bool:
        if self.want_bar is not None:
            return self.want_bar
        isatty = getattr(self.out, "isatty", None)
        return bool(isatty and isatty())

    # ---- progress -------------------------------------------------------------------------------------------
    def _elapsed(self) -> float:
        return (self.t_end if self.t_end is not None else self.clock()) - self.t0

    def _tokens(self, state) -> int:
        return max(0, int(getattr(state, "num_input_tokens_seen", 0) or 0) - self.tokens0)

    def eta(self, state) -> Optional[float]:
        done = state.global_step - self.run.start_step
        if done <= 0:
            return None
        return (state.max_steps - state.global_step) * self._elapsed() / done

    def _progress_tail(self, state) -> str:
        """ETA and tokens/s for a line written without a bar."""
        parts = []
        eta = self.eta(state)
        if eta is not None and state.global_step < state.max_steps:
            parts.append(f"eta {format_duration(eta)}")
        rate = format_rate(self._tokens(state), self._elapsed())
        if rate:
            parts.append(rate)
        return "  ".join(parts)

    # ---- TrainerCallback events -----------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self.t0, self.t_end = self.clock(), None
        self.tokens0 = int(getattr(state, "num_input_tokens_seen", 0) or 0)
        self.run = TrainSummary(start_step=state.global_step, steps=state.global_step, max_steps=state.max_steps)
        if self._use_bar():
            from tqdm.auto import tqdm

            # a terminal that reports no width (some pseudo-terminals) would get an empty bar: assume 100 columns
            sized = shutil.get_terminal_size((0, 0)).columns > 0
            self.bar = tqdm(total=state.max_steps, initial=state.global_step, file=self.out, dynamic_ncols=sized,
                            ncols=None if sized else 100, unit="step", desc="train",
                            bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                                       "[{elapsed}<{remaining}{postfix}]")
        elif state.global_step:
            self.write(f"train resuming at step {state.global_step}/{state.max_steps}")

    def on_step_end(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self.run.steps = state.global_step
        if self.bar is not None:
            self.bar.set_postfix_str(format_rate(self._tokens(state), self._elapsed()), refresh=False)
            self.bar.update(state.global_step - self.bar.n)

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
        if self.bar is None or not state.is_world_process_zero:
            return
        now = self.clock()
        if now - self._eval_refresh >= 0.5:  # a cheap "evaluating" note on the one bar, not a second bar
            self._eval_refresh = now
            self.bar.set_postfix_str("evaluating", refresh=True)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        if "train_loss" in logs and "loss" not in logs:  # the Trainer's end-of-training averages: see the summary
            return
        if any(k.startswith("eval_") for k in logs):
            self._note_eval(state.global_step, logs)
            self.write(format_line("eval", state.global_step, state.max_steps, logs))
            return
        self.run.final_train = {k: v for k, v in logs.items() if _number(v) is not None}
        self.run.final_train_step = state.global_step
        self.run.peak_bytes, self.run.peak_kind = peak_memory()
        tail = f"mem {format_bytes(self.run.peak_bytes)}"
        if self.bar is None:
            tail = f"{tail}  {self._progress_tail(state)}"
        self.write(format_line("train", state.global_step, state.max_steps, logs, tail))

    def _note_eval(self, step: int, logs: Dict[str, float]) -> None:
        loss, best = _number(logs.get("eval_loss")), _number(self.run.best_eval.get("eval_loss"))
        if not self.run.best_eval or (loss is not None and (best is None or loss < best)):
            self.run.best_eval = {k: v for k, v in logs.items() if _number(v) is not None}
            self.run.best_eval_step = step

    def on_train_end(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self.t_end = self.clock()
        self.run.steps = state.global_step
        self.run.wall_s = self._elapsed()
        self.run.tokens = self._tokens(state)
        self.run.peak_bytes, self.run.peak_kind = peak_memory()
        if self.bar is not None:
            self.bar.set_postfix_str(format_rate(self.run.tokens, self.run.wall_s), refresh=False)
            self.bar.update(state.global_step - self.bar.n)
            self.bar.close()
            self.bar = None

    def warn(self, line: str) -> None:
        """A warning about the run (rank 0): printed now, and listed again in the summary."""
        self.write(line)
        self.run.warnings.append(line.replace("[prefswift] warning: ", ""))

    def summary(self) -> TrainSummary:
        return self.run


def use_console(trainer, console: ConsoleCallback) -> None:
    """Make `console` the trainer's only printer: drop the Trainer's PrinterCallback (added when `disable_tqdm`)
    and ProgressCallback (its tqdm bars) through the public `Trainer.remove_callback`, then add `console`."""
    from transformers import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if console not in trainer.callback_handler.callbacks:
        trainer.add_callback(console)


# ---------------------------------------------------------------------------------------------- the summary

def _checkpoint_names(run_dir: Path) -> List[str]:
    found = []
    for p in run_dir.glob("checkpoint-*"):
        suffix = p.name.split("-", 1)[1]
        if p.is_dir() and suffix.isdigit():
            found.append((int(suffix), p.name))
    return [name for _, name in sorted(found)]


def format_summary(run: TrainSummary, run_dir: Path, model_dir: Optional[Path] = None) -> str:
    """The table printed at the end of a run: steps, wall time, tokens/s, peak memory, final train and best eval
    metrics, and where the adapter (or model), checkpoints, logs and plots are."""
    run_dir = Path(run_dir)
    rows: List[Tuple[str, str]] = []
    steps = f"{run.steps}/{run.max_steps}"
    if run.start_step:
        steps += f" (resumed at {run.start_step})"
    rows.append(("steps", steps))
    rows.append(("wall time", format_duration(run.wall_s)))
    if run.tokens:
        rows.append(("tokens/s", f"{run.tokens_per_s:,.0f} ({run.tokens:,} tokens over the wall time)"))
    if run.peak_bytes:
        rows.append(("peak memory", f"{format_bytes(run.peak_bytes)} ({run.peak_kind})"))
    if run.final_train:
        rows.append(("final train", f"{format_metrics(run.final_train)}  (step {run.final_train_step})"))
    if run.best_eval:
        rows.append(("best eval", f"{format_metrics(run.best_eval, 'eval_')}  (step {run.best_eval_step})"))
    if model_dir is not None:
        model_dir = Path(model_dir)
        rows.append(("adapter" if model_dir.name.startswith("adapter") else "model", str(model_dir)))
    ckpts = _checkpoint_names(run_dir)
    if ckpts:
        listed = ckpts[0] if len(ckpts) == 1 else f"{ckpts[0]} ... {ckpts[-1]} ({len(ckpts)})"
        rows.append(("checkpoints", f"{run_dir}/{listed}"))
    logs = run_dir / "logging.jsonl"
    if logs.is_file():
        rows.append(("logs", str(logs)))
    images = run_dir / "images"
    pngs = sorted(images.glob("*.png")) if images.is_dir() else []
    if pngs:
        overview = images / "overview.png"
        first = overview if overview in pngs else pngs[0]
        others = len(pngs) - 1
        rows.append(("plots", f"{first}" + (f" (+{others} more in {images})" if others else "")))
    rows.extend(("warning", w) for w in run.warnings)
    width = max(len(k) for k, _ in rows)
    lines = ["==> training summary"] + [f"  {k:<{width}}  {v.rstrip()}" for k, v in rows]
    return "\n".join(lines)


__all__ = ["ConsoleCallback", "TrainSummary", "format_summary", "quiet_library_noise", "use_console", "peak_memory"]
