"""Dataset registry: one declarative DatasetSpec per preference dataset, and the `--dataset` syntax.

`--dataset NAME[:SUBSET1/SUBSET2][#N]`
  * NAME     a registered name (`prefswift list datasets`), or a local .json/.jsonl/.parquet file
  * SUBSETS  `/`-separated subsets (default: the spec's default subsets; `all` = every subset)
  * #N       sample N training rows with --dataset_seed. N larger than the data repeats it like ms-swift:
             every row floor(N/size) times, plus a seeded random sample of the remainder.

A plugin registers its own dataset with the same `register_dataset(DatasetSpec(...))`.
"""
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, FrozenSet, List, Mapping, Optional, Tuple

from ..errors import ArgumentError, did_you_mean, unknown_name
from . import converters as C
from . import sft as S
from .example import PreferenceExample
from .formats import Converter, convert_hh_dialogues, detect_format
from .unpaired import convert_unpaired_trl, detect_unpaired_format

LOCAL_SUFFIXES = (".json", ".jsonl", ".parquet", ".csv", ".tsv", ".gz")


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    converter: Callable[[dict], PreferenceExample]  # the dataset's real schema -> PreferenceExample (or, for
    #                                                  unpaired KTO data, prefswift.data.unpaired.UnpairedExample)
    ms_id: Optional[str] = None                      # ModelScope id (the default hub)
    hf_id: Optional[str] = None                      # Hugging Face id (USE_HF=1 / --hub hf)
    subsets: Tuple[str, ...] = ("default",)          # hub subset (config) names; "default" = none
    default_subsets: Optional[Tuple[str, ...]] = None  # None = all subsets
    train_split: str = "train"
    test_split: Optional[str] = None                 # the dataset's own eval split, used when --val_dataset is unset
    description: str = ""
    # columns that identify this dataset's real schema in a local file (all must be present); None = the
    # generic format detection already handles it
    schema: Optional[FrozenSet[str]] = None
    builtin_dir: Optional[str] = None                # shipped inside the package: read from here, never the hub
    # file names inside dataset_dir / builtin_dir, keyed "subset/split", "split" or "subset" (see loader)
    local_files: Mapping[str, str] = field(default_factory=dict)
    aliases: Tuple[str, ...] = ()                    # other names `--dataset` accepts (LLaMA-Factory's guide's)

    @property
    def splits(self) -> Tuple[str, ...]:
        return (self.train_split,) + ((self.test_split,) if self.test_split else ())

    def resolve_subsets(self, requested: Tuple[str, ...]) -> Tuple[str, ...]:
        if not requested:
            return self.default_subsets or self.subsets
        if requested == ("all",):
            return self.subsets
        unknown = [s for s in requested if s not in self.subsets]
        if unknown:
            raise ArgumentError(f"dataset {self.name!r} has no subset {unknown[0]!r}"
                                f"{did_you_mean(unknown[0], self.subsets)}; "
                                f"subsets: {', '.join(self.subsets)}")
        return tuple(requested)


_DATASETS: Dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec, *, overwrite: bool = False) -> DatasetSpec:
    if spec.name in _DATASETS and not overwrite:
        raise ArgumentError(f"dataset {spec.name!r} is already registered (pass overwrite=True to replace)")
    if not spec.subsets or (spec.default_subsets and set(spec.default_subsets) - set(spec.subsets)):
        raise ArgumentError(f"dataset {spec.name!r}: default_subsets must be a subset of subsets")
    _DATASETS[spec.name] = spec
    return spec


def get_dataset_spec(name: str) -> DatasetSpec:
    spec = _DATASETS.get(name) or _DATASETS.get(name.lower())
    if spec is None:
        by_id = {s.ms_id: s for s in _DATASETS.values() if s.ms_id}
        by_id.update({s.hf_id: s for s in _DATASETS.values() if s.hf_id})
        by_id.update({a: s for s in _DATASETS.values() for a in s.aliases})
        spec = by_id.get(name) or by_id.get(name.lower())
    if spec is None:
        known = list(_DATASETS) + [a for s in _DATASETS.values() for a in s.aliases]
        raise unknown_name("dataset", name, known, "`prefswift list datasets` shows them all, or pass a local "
                           ".json/.jsonl/.parquet/.csv file")
    return spec


def list_datasets() -> List[DatasetSpec]:
    return list(_DATASETS.values())


def match_schema(row: dict) -> Optional[DatasetSpec]:
    """The registered dataset whose real schema this row has (most specific wins), or None."""
    keys = set(row)
    best = None
    for spec in _DATASETS.values():
        if spec.schema and spec.schema <= keys and (best is None or len(spec.schema) > len(best.schema)):
            best = spec
    return best


def detect_source_format(row: Any) -> Tuple[str, Converter]:
    """(label, converter) for a local file's first row: a registered dataset's own schema, else a generic format
    (unpaired KTO formats first: `prefswift.data.unpaired`)."""
    spec = match_schema(row) if isinstance(row, dict) else None
    if spec is not None:
        return spec.name, spec.converter
    return detect_unpaired_format(row) or detect_format(row)


# ---------------------------------------------------------------- `--dataset` syntax

@dataclass(frozen=True)
class DatasetRef:
    text: str                      # what the user typed
    name: str                      # registered name or local path
    subsets: Tuple[str, ...] = ()  # requested subsets (empty = defaults)
    sample: Optional[int] = None   # #N
    local: bool = False


def is_local_path(text: str) -> bool:
    return text.lower().endswith(LOCAL_SUFFIXES) or os.path.isfile(text) or os.path.isdir(text)


def parse_dataset_arg(text: str) -> DatasetRef:
    raw = text.strip()
    sample = None
    m = re.fullmatch(r"(.*)#(-?\d+)", raw)
    if m:
        raw, sample = m.group(1), int(m.group(2))
        if sample <= 0:
            raise ArgumentError(f"--dataset {text!r}: #N must be a positive number of rows")
    if not raw:
        raise ArgumentError(f"--dataset {text!r}: empty dataset name")
    if is_local_path(raw):
        return DatasetRef(text, raw, (), sample, local=True)
    name, _, subsets = raw.partition(":")
    subs = tuple(s for s in subsets.split("/") if s) if subsets else ()
    return DatasetRef(text, name, subs, sample, local=False)


# ---------------------------------------------------------------- registrations

_DEMO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo_data")

# Where the facts come from: hh_rlhf_cn is dikw/hh_rlhf_cn on Hugging Face (mirrored on ModelScope as
# AI-ModelScope/hh_rlhf_cn): flat files SUBSET_train.jsonl / SUBSET_test.jsonl for the five subsets below.
register_dataset(DatasetSpec(
    "hh-rlhf-cn", C.convert_hh_rlhf_cn, ms_id="AI-ModelScope/hh_rlhf_cn", hf_id="dikw/hh_rlhf_cn",
    subsets=("hh_rlhf", "harmless_base_cn", "harmless_base_en", "helpful_base_cn", "helpful_base_en"),
    test_split="test", schema=frozenset({"context", "chosen", "rejected"}),
    description="Anthropic HH-RLHF with Chinese translations (ms-swift's DPO example); multi-turn",
    aliases=("hh_rlhf_cn",)))
# Anthropic/hh-rlhf (the ORPO paper's data): folders harmless-base, helpful-base, helpful-online,
# helpful-rejection-sampled with train.jsonl.gz / test.jsonl.gz (red-team-attempts is not preference data: left out)
register_dataset(DatasetSpec(
    "hh-rlhf", convert_hh_dialogues, hf_id="Anthropic/hh-rlhf",
    subsets=("harmless-base", "helpful-base", "helpful-online", "helpful-rejection-sampled"), test_split="test",
    description="Anthropic HH-RLHF: ~160k English dialogue pairs (chosen/rejected as whole dialogues)"))
register_dataset(DatasetSpec(
    "orpo-dpo-mix-40k", C.convert_orpo_dpo_mix, ms_id="AI-ModelScope/orpo-dpo-mix-40k",
    hf_id="mlabonne/orpo-dpo-mix-40k", schema=frozenset({"source", "prompt", "question", "chosen", "rejected"}),
    description="mlabonne's 44k-pair English mix for ORPO/DPO (toxic-dpo-v0.2 rows left out)",
    aliases=("orpo_dpo_mix",)))
register_dataset(DatasetSpec(
    # ModelScope mirrors the HF repo under the same id (modelscope.snapshot_download is used with it)
    "ultrafeedback", C.convert_ultrafeedback, ms_id="HuggingFaceH4/ultrafeedback_binarized",
    hf_id="HuggingFaceH4/ultrafeedback_binarized", train_split="train_prefs", test_split="test_prefs",
    schema=frozenset({"prompt", "prompt_id", "chosen", "rejected"}),
    description="UltraFeedback binarized, ~61k English pairs with a 2k test_prefs split"))
register_dataset(DatasetSpec(
    "orca-dpo-pairs", C.convert_orca_dpo_pairs, hf_id="Intel/orca_dpo_pairs",
    schema=frozenset({"question", "chosen", "rejected"}),
    description="Intel's ~13k English Orca pairs (system/question/chosen/rejected)", aliases=("orca_dpo",)))
# The argilla sets orpo-dpo-mix-40k is built from, where their schemas differ from the mix (facts from the cards)
register_dataset(DatasetSpec(
    "distilabel-orca-dpo", C.convert_distilabel_orca, hf_id="argilla/distilabel-intel-orca-dpo-pairs",
    schema=frozenset({"input", "chosen", "rejected", "status", "chosen_score"}),
    description="argilla's re-rated Intel orca pairs (~12.9k; ties and GSM8K-train questions left out)"))
register_dataset(DatasetSpec(
    "ultrafeedback-cleaned", C.convert_ultrafeedback_cleaned,
    hf_id="argilla/ultrafeedback-binarized-preferences-cleaned",
    schema=frozenset({"prompt", "chosen", "rejected", "chosen-rating", "rejected-rating"}),
    description="argilla's cleaned UltraFeedback (~61k English pairs, TruthfulQA contamination removed)"))
register_dataset(DatasetSpec(
    "dpo-en-zh-20k", C.convert_dpo_en_zh, hf_id="hiyouga/DPO-En-Zh-20k", subsets=("en", "zh"),
    local_files={"en": "dpo_en.json", "zh": "dpo_zh.json"},
    description="~20k English+Chinese pairs in sharegpt format (LLaMA-Factory's dpo_mix_en/zh)",
    aliases=("dpo_en_zh",)))
register_dataset(DatasetSpec(
    "coig-p", C.convert_coig_p, hf_id="m-a-p/COIG-P",
    description="COIG-P: ~1M Chinese preference pairs (chat, code, math, logic, novel, role), sharegpt format",
    aliases=("coig_p",)))
register_dataset(DatasetSpec(
    "demo", C.convert_demo, test_split="test", builtin_dir=_DEMO_DIR,
    local_files={"train": "demo.jsonl", "test": "demo_test.jsonl"},
    description="built-in toy set (400 pairs + 60 held-out): chosen answers open 'Sure!', rejected 'Whatever.'"))
# trl-lib/kto-mix-14k (card: prompt and completion as [{role, content}] lists, label bool; splits train 13,500 and
# test 1,500 at data/train-*, data/test-*): argilla/dpo-mix-7k unpaired for KTO
register_dataset(DatasetSpec(
    "kto-mix-14k", convert_unpaired_trl, hf_id="trl-lib/kto-mix-14k", test_split="test",
    description="TRL's KTO mix: 13.5k unpaired rows (prompt, completion, label) + 1.5k test; for `prefswift kto`",
    aliases=("kto_mix_14k",)))

# ---------------------------------------------------------------- SFT conversations (`prefswift sft`)
# Hub ids as ms-swift registers them (swift/dataset/data/dataset_info.json, swift/dataset/dataset/llm.py) and
# LLaMA-Factory (data/dataset_info.json: sharegpt4, ultrachat_200k with split train_sft)
register_dataset(DatasetSpec(
    "demo-sft", S.convert_sft_messages, test_split="test", builtin_dir=_DEMO_DIR,
    local_files={"train": "demo_sft.jsonl", "test": "demo_sft_test.jsonl"},
    description="built-in SFT toy set (350 conversations + 60 held-out) teaching demo's chosen pattern; for "
                "`prefswift sft`", aliases=("demo_sft",)))
register_dataset(DatasetSpec(
    "alpaca-gpt4-data-en", S.convert_sft_alpaca, ms_id="AI-ModelScope/alpaca-gpt4-data-en",
    hf_id="vicgalle/alpaca-gpt4",
    description="SFT: 52k English Alpaca instructions answered by GPT-4 (instruction/input/output)",
    aliases=("alpaca_gpt4_en",)))
register_dataset(DatasetSpec(
    "alpaca-gpt4-data-zh", S.convert_sft_alpaca_zh, ms_id="AI-ModelScope/alpaca-gpt4-data-zh",
    hf_id="llm-wizard/alpaca-gpt4-data-zh",
    description="SFT: the Chinese Alpaca-GPT4 instructions (instruction/input/output)", aliases=("alpaca_gpt4_zh",)))
register_dataset(DatasetSpec(
    "sharegpt-gpt4", S.convert_sft_messages, ms_id="AI-ModelScope/sharegpt_gpt4", hf_id="shibing624/sharegpt_gpt4",
    description="SFT: multi-turn ShareGPT conversations with GPT-4 (sharegpt conversations)",
    aliases=("sharegpt_gpt4", "sharegpt4")))
register_dataset(DatasetSpec(
    "ultrachat-200k", S.convert_sft_messages, ms_id="AI-ModelScope/ultrachat_200k",
    hf_id="HuggingFaceH4/ultrachat_200k",
    train_split="train_sft", description="SFT: 200k multi-turn UltraChat conversations (messages)",
    aliases=("ultrachat_200k",)))
