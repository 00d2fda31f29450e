"""One converter per registered dataset's real schema (row dict -> PreferenceExample).

Schemas were read from the datasets' cards and from peers' loaders (ms-swift, LLaMA-Factory); fixture rows in
each schema live in tests/fixtures/datasets/.
"""
from .example import PreferenceExample
from .formats import (RowError, RowFiltered, convert_sharegpt, convert_trl, missing,
                      normalize_messages, required_str, response_text, split_conversation, wrong_type)


def convert_hh_rlhf_cn(row: dict) -> PreferenceExample:
    """AI-ModelScope/hh_rlhf_cn: `context` = [{"role": "human"|"assistant", "text": ...}, ...] ending with the
    human turn; `chosen` / `rejected` = {"role": "assistant", "text": ...}. Some rows store these as Python
    reprs (strings), which are parsed back."""
    if row.get("context") is None:
        raise missing("context")
    system, history, prompt = split_conversation(normalize_messages(row["context"], "context"), "context")
    return PreferenceExample(prompt=prompt, chosen=response_text(row, "chosen"),
                             rejected=response_text(row, "rejected"), system=system, history=history)


ORPO_MIX_EXCLUDED_SOURCES = ("toxic-dpo-v0.2",)


def convert_orpo_dpo_mix(row: dict) -> PreferenceExample:
    """mlabonne/orpo-dpo-mix-40k: `chosen` / `rejected` = whole conversations ([{role, content}, ...]) that share
    the prompt; also `source`, `prompt`, `question`. Like ms-swift, rows from the deliberately toxic
    `toxic-dpo-v0.2` source (with or without the `unalignment/` owner) are left out, counted in the summary."""
    source = row.get("source")
    if isinstance(source, str) and source.rsplit("/", 1)[-1] in ORPO_MIX_EXCLUDED_SOURCES:
        raise RowFiltered(f"excluded source {source.rsplit('/', 1)[-1]}")
    return convert_trl(row)


def convert_ultrafeedback(row: dict) -> PreferenceExample:
    """HuggingFaceH4/ultrafeedback_binarized (train_prefs/test_prefs): `prompt` string; `chosen` / `rejected` =
    [{"role": "user", ...}, {"role": "assistant", ...}]; plus prompt_id, messages, score_chosen, score_rejected."""
    return convert_trl(row)


def _system_question_pair(row: dict, question_field: str) -> PreferenceExample:
    """Orca-style rows: an optional (possibly empty) `system`, a question, `chosen` / `rejected` strings."""
    question = required_str(row, question_field)
    system = row.get("system")
    if system is not None and not isinstance(system, str):
        raise wrong_type("system", system, "a string")
    return PreferenceExample(prompt=question, chosen=response_text(row, "chosen"),
                             rejected=response_text(row, "rejected"), system=system or None)


def convert_orca_dpo_pairs(row: dict) -> PreferenceExample:
    """Intel/orca_dpo_pairs: `system`, `question`, `chosen`, `rejected`, all strings (system may be empty)."""
    return _system_question_pair(row, "question")


def convert_distilabel_orca(row: dict) -> PreferenceExample:
    """argilla/distilabel-intel-orca-dpo-pairs (card: columns system, input, chosen, rejected, status, chosen_score,
    in_gsm8k_train, ...; split train at data/train-*): re-rated Intel orca pairs. As the card recommends, ties
    (`status: tie`) and rows whose question is in GSM8K's train set are left out (counted)."""
    if row.get("status") == "tie":
        raise RowFiltered("tie (status)")
    if row.get("in_gsm8k_train") is True:
        raise RowFiltered("in GSM8K train (contamination)")
    return _system_question_pair(row, "input")


def convert_ultrafeedback_cleaned(row: dict) -> PreferenceExample:
    """argilla/ultrafeedback-binarized-preferences-cleaned (card: source, prompt, chosen / rejected as
    [{role, content}] conversations, chosen-rating, rejected-rating, chosen-model, rejected-model; split train)."""
    return convert_trl(row)


def convert_dpo_en_zh(row: dict) -> PreferenceExample:
    """hiyouga/DPO-En-Zh-20k (subsets en, zh): sharegpt — `conversations` = [{"from": "human", "value": ...}, ...],
    `chosen` / `rejected` = {"from": "gpt", "value": ...}."""
    return convert_sharegpt(row)


def convert_coig_p(row: dict) -> PreferenceExample:
    """m-a-p/COIG-P: sharegpt like DPO-En-Zh-20k (LLaMA-Factory registers it with conversations/chosen/rejected);
    newer revisions add a `domain` column, which is ignored."""
    return convert_sharegpt(row)


def convert_demo(row: dict) -> PreferenceExample:
    """prefswift's built-in demo: `prompt` / `chosen` / `rejected` strings."""
    if not isinstance(row.get("prompt"), str):
        raise missing("prompt") if row.get("prompt") is None else wrong_type("prompt", row["prompt"], "a string")
    return PreferenceExample(prompt=row["prompt"], chosen=response_text(row, "chosen"),
                             rejected=response_text(row, "rejected"))


__all__ = [
    "RowError", "convert_hh_rlhf_cn", "convert_orpo_dpo_mix", "convert_ultrafeedback", "convert_orca_dpo_pairs",
    "convert_dpo_en_zh", "convert_coig_p", "convert_demo", "convert_distilabel_orca", "convert_ultrafeedback_cleaned",
]
