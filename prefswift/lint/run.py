"""Lint one data configuration: load it exactly as training does (`collect_examples`, and `encode_examples` when a
tokenizer is given, so the drop counts are the training run's), then run every check on the pairs it would use."""
import time
from typing import Dict, List, Optional

import numpy as np

from ..arguments.fields import DataArguments, LintArguments
from ..data.pipeline import collect_examples, encode_examples, length_percentiles, prompt_budget
from ..templates import Template, list_templates
from . import checks as C
from .report import LintReport
from .sampled import identical_samples, sampled_rows


def special_markers(tokenizer) -> List[str]:
    """Text that belongs to a chat format, never to content: the control tokens and markers of every registered
    template (an answer with another model's `<|im_end|>` is as broken as one with its own), and the tokenizer's
    special tokens when there is one."""
    found = [tok for spec in list_templates() for tok in Template(spec).control_tokens(markers=True)]
    if tokenizer is not None:
        found += [t for t in getattr(tokenizer, "all_special_tokens", []) if t and t.strip()]
    return list(dict.fromkeys(found))


def lint_dataset(data: DataArguments, lint: LintArguments, *, template: Optional[Template] = None, tokenizer=None,
                 tokenizer_name: Optional[str] = None, hub: Optional[str] = None, token: Optional[str] = None,
                 log=print) -> LintReport:
    """Every check on the pairs of `data` (train and eval); token checks only with a tokenizer and the template that
    encodes for it."""
    start = time.time()
    got = collect_examples(data, hub=hub, token=token, log=log)
    examples = got.train + got.eval
    in_eval = np.zeros(len(examples), dtype=bool)
    in_eval[len(got.train):] = True
    train_pairs, eval_pairs = len(got.train), len(got.eval)
    tokens = None
    if tokenizer is not None:
        lengths: Dict[str, List[int]] = {"prompt": [], "chosen": [], "rejected": []}
        train_pairs = len(encode_examples(got.train, template, tokenizer, data, got.checker, lengths)[0])
        eval_pairs = len(encode_examples(got.eval, template, tokenizer, data, got.checker, lengths)[0])
        tokens = C.TokenLengths(*(np.array(lengths[k], dtype=np.int64) for k in ("prompt", "chosen", "rejected")),
                                data.max_length, prompt_budget(data), data.truncation_strategy)
        sizes = {k: getattr(tokens, k).tolist() for k in ("prompt", "chosen", "rejected")}
    else:
        sizes = {k: [len(getattr(ex, k)) for ex in examples] for k in ("prompt", "chosen", "rejected")}
    limits = lint.limits()
    pairs = C.Pairs(examples, in_eval)
    rows = sum(s.rows for s in got.sources)
    counts, first = dict(got.checker.dropped), got.checker.first
    exact, near = C.duplicate_groups(pairs, lint.near_duplicate_similarity)
    drops = C.dropped(counts, first, rows, limits["dropped"])
    drops.detail["token_level_counted"] = tokens is not None
    if tokens is None and data.truncation_strategy == "delete":
        drops.summary = "; ".join(filter(None, [drops.summary, "rows too long for --truncation_strategy delete are "
                                                "counted with a tokenizer only (--model_type)"]))
    repeats = C.duplicates(pairs, exact, limits["duplicates"])
    repeats.detail["exact_in_training_summary"] = got.duplicates  # the data summary's count: verbatim, per dataset
    results = [
        drops,
        C.empty_answers(counts, first, rows, limits["empty_answers"]),
        C.chosen_equals_rejected(pairs, counts, first, rows, limits["chosen_equals_rejected"]),
        repeats,
        C.near_duplicates(pairs, exact, near, lint.near_duplicate_similarity, limits["near_duplicates"]),
        C.eval_overlap(pairs, near, limits["eval_overlap"]),
        C.truncated(pairs, tokens, limits["truncated"]),
        C.length_bias(pairs, tokens, limits["length_bias"]),
        C.prompt_in_answer(pairs, limits["prompt_in_answer"]),
        C.special_tokens(pairs, special_markers(tokenizer), limits["special_tokens"]),
        C.script_mismatch(pairs, limits["script_mismatch"]),
        identical_samples(sampled_rows(data), limits["identical_samples"]),
    ]
    return LintReport(datasets=list(data.dataset) + [f"{v} (eval)" for v in data.val_dataset], rows_read=rows,
                      train_pairs=train_pairs, eval_pairs=eval_pairs, checks=results, tokenizer=tokenizer_name,
                      template=template.name if template is not None else None,
                      lengths={k: length_percentiles(v) for k, v in sizes.items()},
                      length_unit="tokens" if tokens is not None else "characters", seconds=time.time() - start)
