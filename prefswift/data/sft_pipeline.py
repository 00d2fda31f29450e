"""From `--dataset` arguments to encoded SFT rows: the preference pipeline's loading, checks, eval split and summary,
with SFT's own formats (`prefswift.data.sft`), encoding and truncation.

A row is {"input_ids", "loss_mask"} (1 on the trained tokens). Rows longer than --max_length keep their start (TRL's
SFT truncation) unless --truncation_strategy delete drops them; a row left without a trained token is dropped and
counted.
"""
from typing import Dict, List, Optional

from ..arguments.fields import DataArguments
from ..errors import DataError
from .formats import RowError
from .pipeline import DataSummary, PreparedData, RowChecker, collect_examples, length_percentiles
from .sft import SftExample, check_sft, detect_sft_format, encode_sft, from_preference, truncate_sft


class SftChecker(RowChecker):
    """Checks converted conversations (pairs and unpaired rows become conversations afterwards: `as_sft`)."""

    def check(self, source, ex) -> None:
        if isinstance(ex, SftExample):
            check_sft(ex)
        else:
            check_sft(from_preference(ex))

    def detect(self, row) -> tuple:
        from .datasets import match_schema

        spec = match_schema(row) if isinstance(row, dict) else None
        return (spec.name, spec.converter) if spec is not None else detect_sft_format(row)


def as_sft(ex) -> SftExample:
    if isinstance(ex, SftExample):
        return ex
    out = from_preference(ex)
    out.origin = getattr(ex, "origin", None)
    return out


def encode_sft_rows(examples: List[SftExample], template, tokenizer, args: DataArguments, loss_on: str,
                    checker: RowChecker, lengths: List[int]):
    """(rows, rows truncated)."""
    rows, truncated = [], 0
    for ex in examples:
        try:
            ids, mask = encode_sft(template, tokenizer, ex, loss_on)
        except RowError as e:
            checker.drop(e.reason, ex.origin)
            continue
        lengths.append(len(ids))
        if len(ids) > args.max_length and args.truncation_strategy == "delete":
            checker.drop("too long (truncation_strategy delete)", ex.origin)
            continue
        ids, mask, cut = truncate_sft(ids, mask, args.max_length)
        if not any(mask[1:]):  # token 0 is never predicted
            checker.drop("no answer tokens left after truncation" if cut else "no answer tokens", ex.origin)
            continue
        row = {"input_ids": ids, "loss_mask": mask, "example": ex}
        if cut:
            row["truncated"] = {"tokens": cut}
            truncated += 1
        rows.append(row)
    return rows, truncated


def build_sft_data(args: DataArguments, template, tokenizer, *, loss_on: str = "all", hub: Optional[str] = None,
                   token: Optional[str] = None, log=print) -> PreparedData:
    """Load, convert, check, split, encode and truncate the SFT data; log and return the summary."""
    checker = SftChecker(args.check_dataset_strategy, log)
    got = collect_examples(args, hub=hub, token=token, log=log, checker=checker)
    lengths: Dict[str, List[int]] = {"conversation": []}
    train_rows, cut_train = encode_sft_rows([as_sft(e) for e in got.train], template, tokenizer, args, loss_on,
                                            checker, lengths["conversation"])
    eval_rows, cut_eval = encode_sft_rows([as_sft(e) for e in got.eval], template, tokenizer, args, loss_on, checker,
                                          lengths["conversation"])
    summary = DataSummary(
        sources=got.sources, dropped=dict(checker.dropped), train_size=len(train_rows), eval_size=len(eval_rows),
        eval_from=", ".join(got.eval_from) or "none", truncated=cut_train + cut_eval,
        truncation_strategy="keep_start" if args.truncation_strategy != "delete" else "delete",
        max_length=args.max_length, max_prompt_length=0,
        lengths={k: length_percentiles(v) for k, v in lengths.items()}, duplicates=got.duplicates,
        unit="conversations")
    if not train_rows:
        raise DataError(f"no training rows left: {summary.one_line()} — fix the data, check --columns, "
                        "or raise --max_length")
    log(summary.format())
    return PreparedData(train_rows, eval_rows, summary)


__all__ = ["build_sft_data", "SftChecker", "encode_sft_rows"]
