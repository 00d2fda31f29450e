"""A prompt past --max_prompt_length is shortened in its content (oldest turns first, then the start of the last
user message) and keeps the template's BOS and every turn header: on llama3, chatml and qwen, each kept prompt is
exactly the template's encoding of a shorter real conversation, within the length bounds. `preview` marks truncated
pairs with the tokens that went."""
import json

import pytest
from typer.testing import CliRunner

from prefswift.arguments.fields import DataArguments
from prefswift.cli import app
from prefswift.data.example import PreferenceExample
from prefswift.data.pipeline import RowChecker, encode_examples
from prefswift.models.loader import load_tokenizer
from prefswift.templates import get_template
from prefswift.templates.base import fill_special_tokens

CASES = [("llama3", "tiny_llama3_dir"), ("chatml", "tiny_qwen_dir"), ("qwen", "tiny_qwen_dir")]
SYSTEM = "You are a careful assistant."
HISTORY = [(f"Earlier question {i}: " + "alpha beta gamma " * 6, f"Earlier answer number {i}.") for i in range(3)]
QUERY = "Please summarise this: " + " ".join(f"word{j}" for j in range(80)) + " and end here."


def encode(name, tokenizer, max_prompt, max_length, ex):
    rows, truncated = encode_examples([ex], get_template(name), tokenizer,
                                      DataArguments(max_length=max_length, max_prompt_length=max_prompt),
                                      RowChecker("none", lambda *a: None), {"prompt": [], "chosen": [],
                                                                            "rejected": []})
    assert truncated == 1 and len(rows) == 1
    return rows[0]


def well_formed(name, tokenizer, ids, system=SYSTEM):
    """(earlier turns kept, the last user message as kept) such that `ids` is the template's encoding of `system`,
    the newest earlier turns and that message; fails when no such conversation exists."""
    template = get_template(name)
    s = template.spec
    text = tokenizer.decode(ids)
    tail = fill_special_tokens(tokenizer, s.user_suffix + s.assistant_prefix)
    assert text.endswith(tail), text
    query = text[:-len(tail)].rsplit(fill_special_tokens(tokenizer, s.user_prefix), 1)[1]
    for kept in range(len(HISTORY) + 1):
        turns = HISTORY[len(HISTORY) - kept:]
        if template.encode_prompt(tokenizer, system, turns, query) == list(ids):
            return kept, query
    raise AssertionError(f"not a rendering of a conversation: {text!r}")


@pytest.mark.parametrize("name, model", CASES)
@pytest.mark.parametrize("cut", ["turns", "query"])
def test_truncation_keeps_bos_and_every_turn_header(request, name, model, cut):
    tokenizer = load_tokenizer(request.getfixturevalue(model))
    template = get_template(name)
    ex = PreferenceExample(prompt=QUERY, chosen="Yes, done.", rejected="No, not that.", system=SYSTEM,
                           history=list(HISTORY))
    full = template.encode_prompt(tokenizer, SYSTEM, HISTORY, QUERY)
    if cut == "turns":  # room for the newest earlier turn and the whole question
        max_prompt = len(template.encode_prompt(tokenizer, SYSTEM, HISTORY[-1:], QUERY))
    else:  # room for the headers and 20 tokens of the question: the system prompt goes before the question is cut
        max_prompt = len(template.encode_prompt(tokenizer, "", [], "")) + 20
    assert max_prompt < len(full)
    row = encode(name, tokenizer, max_prompt, max_prompt + 32, ex)  # room for both answers
    prompt = row["prompt_input_ids"]
    assert len(prompt) <= max_prompt
    assert all(len(prompt) + len(row[k]) <= max_prompt + 32 for k in ("chosen_input_ids", "rejected_input_ids"))
    first = fill_special_tokens(tokenizer, template.spec.prefix + (template.spec.system_prefix if cut == "turns"
                                                                     else template.spec.user_prefix))
    assert tokenizer.decode(prompt).startswith(first)
    if "<|begin_of_text|>" in first or "{{bos_token}}" in template.spec.prefix:
        assert prompt[0] == tokenizer.bos_token_id
    else:
        assert prompt[0] == tokenizer.convert_tokens_to_ids("<|im_start|>")
    kept, query = well_formed(name, tokenizer, prompt, SYSTEM if cut == "turns" else "")
    if cut == "turns":
        assert (kept, query) == (1, QUERY)
    else:
        assert kept == 0 and query != QUERY and QUERY.endswith(query) and query.endswith("and end here.")
        assert query.split()[0] in QUERY.split()  # starts at a word boundary, not mid-word
    assert row["truncated"]["prompt"] == len(full) - len(prompt)
    assert row["truncated"]["turns"] == len(HISTORY) - kept


def test_preview_marks_truncated_pairs_with_the_tokens_that_went(tmp_path, tiny_llama3_dir):
    path = tmp_path / "long.jsonl"
    rows = [{"prompt": "Short question?", "chosen": "Fine answer.", "rejected": "Bad."},
            {"prompt": QUERY, "chosen": "Fine answer.", "rejected": "Bad."}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tokenizer = load_tokenizer(tiny_llama3_dir)
    full = len(get_template("llama3").encode_prompt(tokenizer, None, [], QUERY))
    argv = ["preview", "--dataset", str(path), "--model_type", "tiny-llama3", "--eval_ratio", "0",
            "--max_length", "64", "--max_prompt_length", "40", "--dataset_seed", "0"]
    out = CliRunner().invoke(app, argv, catch_exceptions=False).output
    headers = [line for line in out.splitlines() if line.startswith("=== pair")]
    assert len(headers) == 2 and sum("TRUNCATED" in h for h in headers) == 1, headers
    long = next(h for h in headers if "TRUNCATED" in h)
    kept = int(long.split("prompt ")[1].split(" tokens")[0])
    assert kept <= 40 and f"TRUNCATED: prompt -{full - kept} tokens" in long
    pairs = json.loads(CliRunner().invoke(app, argv + ["--json"], catch_exceptions=False).output)["pairs"]
    assert sorted(bool(p["truncated"]) for p in pairs) == [False, True]
    assert all(p["prompt_text"].startswith("<|begin_of_text|><|start_header_id|>user") for p in pairs)
