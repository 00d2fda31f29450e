"""From `--dataset` arguments to encoded train/eval rows: convert -> check -> split -> encode -> truncate -> summary.

Evaluation rows come from, in order: --val_dataset (the ORPO script's --eval_file) when given; else each training
dataset's own test split when it has one (ultrafeedback's test_prefs, demo's test); else --eval_ratio of that
dataset's rows, drawn with --dataset_seed (0 = no eval). Everything is deterministic for a given seed.

Bad rows (missing/empty/identical chosen and rejected, wrong types, unknown roles ...): with
--check_dataset_strategy error the first one stops the run with a one-line DataError naming file, row and field;
with discard/warning/none the row is dropped and counted by reason (warning also prints the first row of each
reason). Malformed JSON/JSONL syntax, empty files and unrecognised formats are always errors. Nothing is
dropped silently: DataSummary reports every count, and an empty training set is an error.
"""
import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..arguments.fields import DataArguments
from ..errors import ArgumentError, DataError, data_error
from . import dataset_info
from .datasets import DatasetRef, detect_source_format, get_dataset_spec, parse_dataset_arg
from .example import PreferenceExample
from .formats import RowError, RowFiltered, apply_columns, check_texts
from .loader import RawSource, load_registered, read_local_file
from .prompt_fit import fit_prompt
from .sampling import sample_rows, split_by_ratio  # noqa: F401 (also imported from here)
from .unpaired import UnpairedDataError, UnpairedExample, check_unpaired, label_counts, unpair


@dataclass
class SourceStats:
    label: str     # file path, or `dataset:subset (split)`
    format: str    # detected format or registered dataset name
    rows: int      # rows read
    kept: int      # rows that became valid pairs
    role: str      # train | eval (where the source was asked for; own test splits count as train sources)


def length_percentiles(values: Sequence[int]) -> Dict[str, int]:
    """Nearest-rank p50/p90/p99/max of token lengths (all 0 for no values)."""
    if not values:
        return {"p50": 0, "p90": 0, "p99": 0, "max": 0}
    ordered = sorted(values)
    rank = lambda q: ordered[max(0, math.ceil(q * len(ordered)) - 1)]  # noqa: E731
    return {"p50": rank(0.5), "p90": rank(0.9), "p99": rank(0.99), "max": ordered[-1]}


@dataclass
class DataSummary:
    sources: List[SourceStats]
    dropped: Dict[str, int]                 # reason -> rows dropped
    train_size: int
    eval_size: int
    eval_from: str                          # where the eval rows came from
    truncated: int                          # pairs cut by keep_end truncation
    truncation_strategy: str
    max_length: int
    max_prompt_length: int
    lengths: Dict[str, Dict[str, int]] = field(default_factory=dict)  # prompt|chosen|rejected -> percentiles
    duplicates: int = 0                     # training rows that repeat an earlier pair of the same dataset
    unit: str = "pairs"                     # what one training row is: pairs, or (KTO) rows
    labels: Dict[str, int] = field(default_factory=dict)  # KTO: desirable / undesirable training rows

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    def one_line(self) -> str:
        read = sum(s.rows for s in self.sources)
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(self.dropped.items(), key=lambda kv: -kv[1]))
        return f"{read} rows read, {self.dropped_total} dropped" + (f" ({reasons})" if reasons else "")

    def to_dict(self) -> dict:
        return asdict(self)

    def format(self) -> str:
        lines = ["[data] summary"]
        width = max([len(s.label) for s in self.sources] + [10])
        for s in self.sources:
            lines.append(f"  {s.label:<{width}}  {s.rows:>7} rows  {s.kept:>7} kept  format {s.format}")
        if self.dropped:
            lines.append(f"  dropped {self.dropped_total} rows:")
            for reason, n in sorted(self.dropped.items(), key=lambda kv: (-kv[1], kv[0])):
                lines.append(f"    {n:>7}  {reason}")
        else:
            lines.append("  dropped: none")
        lines.append(f"  train {self.train_size} {self.unit}, eval {self.eval_size} {self.unit} (eval from: "
                     f"{self.eval_from})")
        if self.labels:
            lines.append("  train rows: " + ", ".join(f"{n} {name}" for name, n in self.labels.items()))
        if self.duplicates:
            lines.append(f"  duplicates: {self.duplicates} rows repeat an earlier pair (kept; all copies of a pair "
                         "are on the same side of the eval split)")
        lines.append(f"  truncation {self.truncation_strategy}: max_length {self.max_length}, max_prompt_length "
                     f"{self.max_prompt_length}; {self.truncated} {self.unit} truncated")
        lines.append(f"  tokens before truncation {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7}")
        for key in tuple(self.lengths) or ("prompt", "chosen", "rejected"):
            pct = self.lengths.get(key) or length_percentiles([])
            lines.append(f"    {key:<22} " + " ".join(f"{pct[q]:>7}" for q in ("p50", "p90", "p99", "max")))
        return "\n".join(lines)


@dataclass
class PreparedData:
    train: List[dict]
    eval: List[dict]
    summary: DataSummary


# ---------------------------------------------------------------- pure helpers (unit-tested with numbers)

def truncate_pair(prompt: Sequence[int], chosen: Sequence[int], rejected: Sequence[int], max_length: int,
                  max_prompt_length: int) -> Tuple[list, list, list]:
    """keep_end truncation of one pair's token ids (the lengths it keeps are `kept_lengths`; the pipeline keeps that
    many prompt tokens by shortening the prompt's content instead: `prompt_fit.fit_prompt`).

    The prompt loses tokens from the LEFT until it fits max_prompt_length and prompt + the longer response fits
    max_length — but it never shrinks below max_length - max_prompt_length tokens (the room TRL reserves for
    responses); after that, both responses are cut on the RIGHT to max_length - len(prompt).
    """
    keep, keep_chosen, keep_rejected = kept_lengths(len(prompt), len(chosen), len(rejected), max_length,
                                                    max_prompt_length)
    return list(prompt[len(prompt) - keep:]), list(chosen[:keep_chosen]), list(rejected[:keep_rejected])


def kept_lengths(prompt: int, chosen: int, rejected: int, max_length: int, max_prompt_length: int
                 ) -> Tuple[int, int, int]:
    """How many prompt, chosen and rejected tokens `truncate_pair` keeps of pairs this long."""
    keep = min(prompt, max_prompt_length, max(max_length - max(chosen, rejected), max_length - max_prompt_length))
    room = max_length - keep
    return keep, min(chosen, room), min(rejected, room)


def example_key(ex) -> tuple:
    """What makes two pairs (or two unpaired rows, or two SFT conversations: their own `key`) the same."""
    if hasattr(ex, "key"):
        return ex.key()
    if isinstance(ex, UnpairedExample):
        return (ex.system, tuple(map(tuple, ex.history)), ex.prompt, ex.completion, ex.label)
    return (ex.system, tuple(map(tuple, ex.history)), ex.prompt, ex.chosen, ex.rejected)


def check_example(ex: PreferenceExample) -> None:
    """Raise RowError when a converted pair cannot train anything."""
    check_texts(ex, ("prompt", "chosen", "rejected"))
    if ex.chosen.strip() == ex.rejected.strip():
        raise RowError("rejected", "is identical to chosen", "a pair must differ: fix or remove the row",
                       reason="chosen == rejected")


# ---------------------------------------------------------------- row checking

class RowChecker:
    """Checks converted rows, applies --check_dataset_strategy to bad ones and counts every drop by reason.
    `unpaired`: unpaired (KTO) rows are welcome; else they stop the run with one line naming the source."""

    def __init__(self, strategy: str, log: Callable[[str], None], unpaired: bool = False):
        self.strategy = strategy
        self.log = log
        self.unpaired = unpaired
        self.dropped: Counter = Counter()
        self.first: Dict[str, str] = {}  # reason -> where its first dropped row is (file and line, when known)

    def check(self, source: RawSource, ex) -> None:
        if hasattr(ex, "turns"):  # an SFT dataset's conversation (prefswift.data.sft)
            raise ArgumentError(f"{source.label}: SFT conversations (no chosen/rejected pair): `prefswift sft` trains "
                                "on them; this command needs preference rows")
        if not isinstance(ex, UnpairedExample):
            check_example(ex)
        elif self.unpaired:
            check_unpaired(ex)
        else:
            raise UnpairedDataError(source.label)

    def detect(self, row) -> tuple:
        """(format label, converter) of a local file's first row."""
        return detect_source_format(row)

    def bad(self, source: RawSource, index: int, err: RowError) -> None:
        if self.strategy == "error":
            raise data_error(source.where(index), index, err.field, err.problem, err.fix)
        if self.strategy == "warning" and err.reason not in self.dropped:
            self.log(f"[prefswift] warning: {data_error(source.where(index), index, err.field, err.problem, err.fix)} "
                     f"(dropping every row like this; the summary counts them)")
        self.drop(err.reason, source.locate(index))

    def drop(self, reason: str, where: Optional[str] = None) -> None:
        self.dropped[reason] += 1
        if where:
            self.first.setdefault(reason, where)


def convert_source(source: RawSource, columns: Optional[dict], system: Optional[str], checker: RowChecker,
                   role: str) -> Tuple[List[PreferenceExample], SourceStats]:
    rows = [apply_columns(r, columns) for r in source.rows]
    converter = source.converter
    if converter is None:  # a local file: detect its format from the first row that is an object
        first = next((i for i, r in enumerate(rows) if isinstance(r, dict)), 0)
        try:
            source.format_name, converter = checker.detect(rows[first])
        except RowError as e:
            raise data_error(source.where(first), first, e.field, e.problem, e.fix) from None
    before = sum(checker.dropped.values())
    examples = []
    for i, row in enumerate(rows):
        try:
            if not isinstance(row, dict):
                raise RowError("", f"expected a JSON object, got {type(row).__name__}", "one object per row",
                               reason="row is not an object")
            ex = converter(row)
            checker.check(source, ex)
        except RowFiltered as f:
            checker.drop(f.reason, source.locate(i))
            continue
        except RowError as e:
            checker.bad(source, i, e)
            continue
        if system is not None:
            ex.system = system
        ex.origin = source.locate(i)
        examples.append(ex)
    stats = SourceStats(source.label, source.format_name or "?", len(rows), len(examples), role)
    lost = sum(checker.dropped.values()) - before
    if rows and lost * 2 > len(rows):
        checker.log(f"[prefswift] warning: {source.label}: {lost} of {len(rows)} rows dropped — is this the "
                    f"format you meant ({stats.format})? map columns with --columns if not")
    return examples, stats


# ---------------------------------------------------------------- loading one --dataset / --val_dataset entry

def _load_ref(ref: DatasetRef, args: DataArguments, hub_and_token: tuple, checker: RowChecker, role: str, log
              ) -> Tuple[List[PreferenceExample], Optional[List[PreferenceExample]], List[SourceStats]]:
    """(train examples, own test examples or None, stats). For role='eval' the first list holds the eval rows."""
    hub, token = hub_and_token
    columns, system, dataset_dir = parse_columns(args.columns), args.system, args.dataset_dir
    stats: List[SourceStats] = []
    declared = None if ref.local else dataset_info.lookup(dataset_dir, ref.name)
    if ref.local or declared:
        path, declared_columns = (ref.name, None) if ref.local else declared
        exs, st = convert_source(read_local_file(path), columns or parse_columns(declared_columns), system, checker,
                                 role)
        return exs, None, [st]
    spec = get_dataset_spec(ref.name)
    train: List[PreferenceExample] = []
    test: Optional[List[PreferenceExample]] = [] if spec.test_split else None

    def convert_split(subset: str, split: str) -> Optional[List[PreferenceExample]]:
        sources = load_registered(spec, subset, split, dataset_dir=dataset_dir, hub=hub, token=token, log=log)
        if not sources:
            return None
        out: List[PreferenceExample] = []
        for src in sources:
            exs, st = convert_source(src, columns, system, checker, role)
            stats.append(st)
            out += exs
        return out

    for subset in spec.resolve_subsets(ref.subsets):
        if role == "eval":  # the dataset's test split if it has one (and a copy of it), else its train split
            exs = convert_split(subset, spec.test_split) if spec.test_split else None
            train += exs if exs is not None else convert_split(subset, spec.train_split)
            continue
        train += convert_split(subset, spec.train_split)
        if spec.test_split:
            exs = convert_split(subset, spec.test_split)
            if exs is None:
                log(f"[data] {spec.name}:{subset}: no local '{spec.test_split}' split; using --eval_ratio instead")
                test = None
            elif test is not None:
                test += exs
    return train, test, stats


# ---------------------------------------------------------------- encoding

def _fit(template, tokenizer, ex, prompt: list, responses: List[list], texts: Sequence[str], args: DataArguments,
         checker: RowChecker):
    """(prompt, responses, what truncation cut or None) within --max_length / --max_prompt_length, or None when the
    row is dropped (--truncation_strategy delete, or no part of the question fits: counted, with where it came from).

    keep_end: the prompt keeps `kept_lengths`' share, shortened in its content (`fit_prompt`: oldest turns first,
    then the end of the system prompt, the start of the last user message last; never down to an empty question;
    the template's BOS and headers stay), and is encoded again with its
    responses (`texts`); the responses lose their end to fit max_length."""
    max_length, max_prompt = args.max_length, prompt_budget(args)
    longest = max(len(r) for r in responses)
    if len(prompt) <= max_prompt and len(prompt) + longest <= max_length:
        return prompt, responses, None
    origin = getattr(ex, "origin", None)
    if args.truncation_strategy == "delete":
        checker.drop("too long (truncation_strategy delete)", origin)
        return None
    keep = kept_lengths(len(prompt), longest, longest, max_length, max_prompt)[0]
    turns, parts_cut = 0, []
    if keep < len(prompt):
        fitted = fit_prompt(template, tokenizer, ex.system, ex.history, ex.prompt, keep)
        if fitted is None:
            checker.drop("question does not fit max_prompt_length (earlier turns and system prompt already cut)",
                         origin)
            return None
        text = template.render_prompt(fitted.system, fitted.history, fitted.query)
        responses = [template.encode_pair(tokenizer, text, fitted.ids, r) for r in texts]
        turns, cut_prompt, prompt = fitted.turns_dropped, len(prompt) - len(fitted.ids), fitted.ids
        parts_cut = [name for name, was in (("system prompt", fitted.system_cut), ("question", fitted.query_cut))
                     if was]
    else:
        cut_prompt = 0
    room = max_length - len(prompt)
    cut = {"prompt": cut_prompt, "turns": turns, "parts": parts_cut,
           "responses": [max(0, len(r) - room) for r in responses]}
    return prompt, [r[:room] for r in responses], cut


def encode_examples(examples: List[PreferenceExample], template, tokenizer, args: DataArguments,
                    checker: RowChecker, lengths: Dict[str, List[int]]) -> Tuple[List[dict], int]:
    """(encoded rows, pairs truncated). Appends every example's prompt/chosen/rejected token count before truncation
    to `lengths` (dropped ones too, in order) and counts the pairs dropped here in `checker`. A truncated row carries
    `truncated`: {"prompt": tokens cut, "turns": earlier turns dropped, "parts": which of "system prompt" /
    "question" lost text, "chosen"/"rejected": tokens cut}."""
    rows, truncated = [], 0
    for ex in examples:
        ids = template.encode_example(tokenizer, ex)
        prompt, chosen, rejected = (list(ids[k]) for k in ("prompt_input_ids", "chosen_input_ids",
                                                              "rejected_input_ids"))
        for key, seq in (("prompt", prompt), ("chosen", chosen), ("rejected", rejected)):
            lengths[key].append(len(seq))
        fitted = _fit(template, tokenizer, ex, prompt, [chosen, rejected], (ex.chosen, ex.rejected), args, checker)
        if fitted is None:
            continue
        prompt, (chosen, rejected), cut = fitted
        truncated += cut is not None
        if chosen == rejected:
            checker.drop("chosen == rejected after truncation" if cut else "chosen == rejected as tokens",
                         ex.origin)
            continue
        row = {"prompt_input_ids": prompt, "chosen_input_ids": chosen, "rejected_input_ids": rejected, "example": ex}
        if cut is not None:
            row["truncated"] = {"prompt": cut["prompt"], "turns": cut["turns"], "parts": cut["parts"],
                                "chosen": cut["responses"][0],
                                "rejected": cut["responses"][1]}
        rows.append(row)
    return rows, truncated


def _encode_unpaired(examples: List[UnpairedExample], template, tokenizer, args: DataArguments,
                     checker: RowChecker, lengths: Dict[str, List[int]]) -> Tuple[List[dict], int]:
    """KTO rows {"prompt_input_ids", "completion_input_ids", "label"}: encoded and truncated like a pair whose two
    responses are the same completion."""
    rows, truncated = [], 0
    for ex in examples:
        prompt_text = template.render_prompt(ex.system, ex.history, ex.prompt)
        prompt = template.encode_prompt(tokenizer, ex.system, ex.history, ex.prompt)
        completion = template.encode_pair(tokenizer, prompt_text, prompt, ex.completion)
        lengths["prompt"].append(len(prompt))
        lengths["desirable" if ex.label else "undesirable"].append(len(completion))
        fitted = _fit(template, tokenizer, ex, prompt, [completion], (ex.completion,), args, checker)
        if fitted is None:
            continue
        prompt, (completion,), cut = fitted
        truncated += cut is not None
        row = {"prompt_input_ids": prompt, "completion_input_ids": completion, "label": bool(ex.label), "example": ex}
        if cut is not None:
            row["truncated"] = {"prompt": cut["prompt"], "turns": cut["turns"], "parts": cut["parts"],
                                "completion": cut["responses"][0]}
        rows.append(row)
    return rows, truncated


# ---------------------------------------------------------------- entry point

def prompt_budget(args: DataArguments) -> int:
    """--max_prompt_length, or half of --max_length when it is not given (1024 of the default 2048)."""
    return args.max_prompt_length or args.max_length // 2


def check_data_options(args: DataArguments) -> None:
    """Relations between fields (each field's own choices and range are checked when it is set)."""
    if prompt_budget(args) <= 0 or prompt_budget(args) >= int(args.max_length):
        raise ArgumentError(f"--max_prompt_length ({prompt_budget(args)}) must be positive and smaller than "
                            f"--max_length ({args.max_length})")
    if not args.dataset:
        raise ArgumentError("no training data: pass --dataset NAME or --dataset FILE.jsonl (try --dataset demo)")


def parse_columns(value) -> Optional[dict]:
    if isinstance(value, str) and value.strip():
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise ArgumentError(f"--columns {value!r}: not JSON ({e.msg}); e.g. '{{\"instruction\": \"prompt\"}}'")
    if value and not (isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str)
                                                      for k, v in value.items())):
        raise ArgumentError("--columns must map column names to names, e.g. '{\"question\": \"prompt\"}'")
    return value or None


@dataclass
class CollectedExamples:
    """The converted, checked and split pairs of --dataset / --val_dataset, before any tokenizer is involved."""
    train: List[PreferenceExample]
    eval: List[PreferenceExample]
    sources: List[SourceStats]
    checker: RowChecker                     # drops so far, by reason
    eval_from: List[str]
    duplicates: int                         # training rows that repeat an earlier pair of the same dataset


def collect_examples(args: DataArguments, *, hub: Optional[str] = None, token: Optional[str] = None,
                     log=print, unpaired: bool = False, checker: Optional[RowChecker] = None,
                     sample_test: bool = False) -> CollectedExamples:
    """Load, convert, check and split the preference data (the steps of `build_preference_data` before encoding).
    `hub` / `token`: --hub and --hub_token for registered datasets that are downloaded (None = auto / the client's
    own login). `unpaired` (KTO): rows are (prompt, completion, label); pairs are split into a desirable and an
    undesirable row after the eval split (both halves of a pair stay on one side). `checker`: the checks and format
    detection of another kind of rows (SFT: `prefswift.data.sft_pipeline`). `sample_test` (the commands that read
    the held-out rows: eval, and infer/sample on pairs): `NAME#N` draws N rows of a dataset's own test split too, as
    it does of its train split (training keeps the whole test split to evaluate on)."""
    check_data_options(args)
    seed, ratio = args.dataset_seed, args.eval_ratio
    checker = checker or RowChecker(args.check_dataset_strategy, log, unpaired=unpaired)
    val_refs = [parse_dataset_arg(t) for t in args.val_dataset]
    all_stats: List[SourceStats] = []
    train_exs: List[PreferenceExample] = []
    eval_exs: List[PreferenceExample] = []
    eval_from: List[str] = []
    duplicates = 0
    for ref in (parse_dataset_arg(t) for t in args.dataset):
        train, test, stats = _load_ref(ref, args, (hub, token), checker, "train", log)
        all_stats += stats
        duplicates += len(train) - len({example_key(ex) for ex in train})
        if val_refs or test:
            train_exs += sample_rows(train, ref.sample, seed)
            if test and not val_refs:
                eval_exs += sample_rows(test, ref.sample, seed, repeat=False) if sample_test else test
                eval_from.append(f"{ref.name} test split")
        else:
            # split first: `#N` larger than the data repeats rows, and a repeated row must not be on both sides
            upsample = ref.sample is not None and ref.sample > len(train)
            kept, held = split_by_ratio(train if upsample else sample_rows(train, ref.sample, seed), ratio, seed,
                                        key=example_key)
            if upsample:
                kept = sample_rows(kept, round(ref.sample * len(kept) / len(train)), seed)
            train_exs += kept
            eval_exs += held
            if held:
                eval_from.append(f"{ref.name} eval_ratio {ratio:g}")
    for ref in val_refs:
        exs, _, stats = _load_ref(ref, args, (hub, token), checker, "eval", log)
        all_stats += stats
        eval_exs += sample_rows(exs, ref.sample, seed)
        eval_from.append(f"{ref.name} (--val_dataset)")

    train_exs = sample_rows(train_exs, args.train_dataset_sample, seed, repeat=False)
    eval_exs = sample_rows(eval_exs, args.val_dataset_sample, seed, repeat=False)

    return CollectedExamples(train_exs, eval_exs, all_stats, checker, eval_from, duplicates)


def build_preference_data(args: DataArguments, template, tokenizer, *, hub: Optional[str] = None,
                          token: Optional[str] = None, log=print, unpaired: bool = False,
                          sample_test: bool = False) -> PreparedData:
    """Load, convert, check, split, encode and truncate the preference data; log and return the summary.
    `hub` / `token` / `unpaired` / `sample_test`: as for `collect_examples`."""
    got = collect_examples(args, hub=hub, token=token, log=log, unpaired=unpaired, sample_test=sample_test)
    checker = got.checker
    if unpaired:
        lengths: Dict[str, List[int]] = {"prompt": [], "desirable": [], "undesirable": []}
        train_rows, cut_train = _encode_unpaired(unpair(got.train), template, tokenizer, args, checker, lengths)
        eval_rows, cut_eval = _encode_unpaired(unpair(got.eval), template, tokenizer, args, checker, lengths)
        desirable, undesirable = label_counts(train_rows)
        kto = dict(unit="rows", labels={"desirable": desirable, "undesirable": undesirable})
    else:
        lengths = {"prompt": [], "chosen": [], "rejected": []}
        train_rows, cut_train = encode_examples(got.train, template, tokenizer, args, checker, lengths)
        eval_rows, cut_eval = encode_examples(got.eval, template, tokenizer, args, checker, lengths)
        kto = {}

    summary = DataSummary(
        sources=got.sources, dropped=dict(checker.dropped), train_size=len(train_rows), eval_size=len(eval_rows),
        eval_from=", ".join(got.eval_from) or "none", truncated=cut_train + cut_eval,
        truncation_strategy=args.truncation_strategy, max_length=args.max_length,
        max_prompt_length=prompt_budget(args),
        lengths={k: length_percentiles(v) for k, v in lengths.items()}, duplicates=got.duplicates, **kto)
    if not train_rows:
        raise DataError(f"no training rows left: {summary.one_line()} — fix the data, check --columns, "
                        "or raise --max_length")
    log(summary.format())
    return PreparedData(train_rows, eval_rows, summary)
