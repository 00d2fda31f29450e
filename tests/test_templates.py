"""Chat templates: text identical to the models' own jinja templates, ids identical to apply_chat_template.

Fixtures in tests/fixtures/chat_templates/ are the chat_template texts the models ship:
- llama3_8b_instruct.jinja   Meta-Llama-3-8B-Instruct (same text TRL stores as its original llama3.jinja)
- qwen2_7b_instruct.jinja    Qwen2-7B-Instruct (tokenizer_config.json; found verbatim in several public repos)
- qwen2_5_7b_instruct.jinja  Qwen2.5-7B-Instruct (same text TRL stores as its original qwen2_5.jinja)
- qwen3_8b.jinja             Qwen3-8B (same text TRL stores as its original qwen3.jinja)
- mistral_7b_instruct_v0_2.jinja  Mistral-7B-Instruct-v0.2, current revision with system-prompt support
                             (copied from a vLLM server log that printed that model's template)
- yi_6b_chat.jinja           Yi-6B-Chat: NOT found verbatim; written from documented knowledge (01-ai/Yi issues
                             #172/#197: plain ChatML, no default system prompt) as the standard ChatML template.
"""
from pathlib import Path

import pytest
from transformers import AutoTokenizer
from transformers.utils.chat_template_utils import render_jinja_template

from prefswift.data.example import PreferenceExample
from prefswift.errors import ArgumentError
from prefswift.models.tiny import ensure_tiny_model
from prefswift.templates import (
    BOS_TOKEN,
    EOS_TOKEN,
    Template,
    TemplateSpec,
    get_template,
    list_templates,
    register_template,
)
from prefswift.templates import registry as template_registry
from chat_fixtures import CONVERSATIONS, messages, official

FIXTURES = Path(__file__).parent / "fixtures" / "chat_templates"

# (template name, fixture, tiny tokenizer that carries the fixture for id checks or None, extra jinja kwargs)
CASES = [
    ("llama3", "llama3_8b_instruct.jinja", "tiny-llama3", {}),
    ("qwen", "qwen2_7b_instruct.jinja", "tiny-qwen", {}),
    ("qwen2_5", "qwen2_5_7b_instruct.jinja", "tiny-qwen", {}),
    ("qwen3", "qwen3_8b.jinja", "tiny-qwen", {"enable_thinking": False}),
    ("yi", "yi_6b_chat.jinja", "tiny-qwen", {}),
    ("mistral", "mistral_7b_instruct_v0_2.jinja", None, {}),
]



@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("prefswift_home")
    return {name: ensure_tiny_model(name, root) for name in ("tiny-llama3", "tiny-qwen")}


def _tokenizer(tiny_dirs, tiny_name, fixture_text):
    tok = AutoTokenizer.from_pretrained(tiny_dirs[tiny_name])
    tok.chat_template = fixture_text
    return tok


def _jinja(fixture_text, messages, add_generation_prompt, **kwargs):
    kwargs.setdefault("bos_token", "<s>")
    kwargs.setdefault("eos_token", "</s>")
    rendered, _ = render_jinja_template(conversations=[messages], chat_template=fixture_text,
                                        add_generation_prompt=add_generation_prompt, **kwargs)
    return rendered[0]


@pytest.mark.parametrize("name,fixture,tiny,extra", CASES)
def test_text_matches_model_jinja(name, fixture, tiny, extra, tiny_dirs):
    template = get_template(name)
    fixture_text = (FIXTURES / fixture).read_text(encoding="utf-8")
    tok = _tokenizer(tiny_dirs, tiny, fixture_text) if tiny else None
    for system, history, query, response in CONVERSATIONS:
        full_messages = messages(system, history, query, response)
        prompt_messages = full_messages[:-1]
        if tok is not None:
            want_full = tok.apply_chat_template(full_messages, tokenize=False, **extra)
            want_prompt = tok.apply_chat_template(prompt_messages, tokenize=False, add_generation_prompt=True, **extra)
        else:
            want_full = _jinja(fixture_text, full_messages, False, **extra)
            want_prompt = _jinja(fixture_text, prompt_messages, True, **extra)
        prompt = template.render_prompt(system, history, query)
        assert prompt + template.render_response(response) == want_full
        assert prompt == want_prompt


@pytest.mark.parametrize("name,fixture,tiny,extra", [c for c in CASES if c[2]])
def test_ids_match_apply_chat_template(name, fixture, tiny, extra, tiny_dirs):
    template = get_template(name)
    tok = _tokenizer(tiny_dirs, tiny, (FIXTURES / fixture).read_text(encoding="utf-8"))
    for system, history, query, response in CONVERSATIONS:
        full_messages = messages(system, history, query, response)
        want_full = tok.apply_chat_template(full_messages, tokenize=True, return_dict=False, **extra)
        want_prompt = tok.apply_chat_template(full_messages[:-1], tokenize=True, return_dict=False,
                                              add_generation_prompt=True, **extra)
        ex = PreferenceExample(prompt=query, chosen=response, rejected="No.", system=system, history=history)
        enc = template.encode_example(tok, ex)
        assert enc["prompt_input_ids"] == want_prompt
        assert enc["prompt_input_ids"] + enc["chosen_input_ids"] == want_full
        assert template.encode_prompt(tok, system, history, query) == want_prompt
        # Context-free response encoding agrees too for these byte-level BPE tokenizers.
        assert template.encode_response(tok, response) == enc["chosen_input_ids"]


def test_tiny_models_carry_the_real_templates(tiny_dirs):
    llama = AutoTokenizer.from_pretrained(tiny_dirs["tiny-llama3"])
    qwen = AutoTokenizer.from_pretrained(tiny_dirs["tiny-qwen"])
    assert llama.chat_template == official("llama3_8b_instruct.jinja")
    assert qwen.chat_template == official("qwen2_7b_instruct.jinja")


def test_llama3_bos_never_doubled(tiny_dirs):
    tok = AutoTokenizer.from_pretrained(tiny_dirs["tiny-llama3"])
    bos = tok.convert_tokens_to_ids("<|begin_of_text|>")
    template = get_template("llama3")
    text = template.render_prompt("sys", [("a", "b")], "q")
    # The hazard is real: this tokenizer adds BOS by itself, like Llama 3's, so naive encoding doubles it.
    assert tok(text)["input_ids"][:2] == [bos, bos]
    ex = PreferenceExample(prompt="q", chosen="yes", rejected="no", system="sys", history=[("a", "b")])
    enc = template.encode_example(tok, ex)
    all_ids = enc["prompt_input_ids"] + enc["chosen_input_ids"] + enc["rejected_input_ids"]
    assert enc["prompt_input_ids"][0] == bos and all_ids.count(bos) == 1
    assert template.encode_prompt(tok, None, [], "q").count(bos) == 1


def test_encode_example_responses_end_with_end_of_turn(tiny_dirs):
    tok = AutoTokenizer.from_pretrained(tiny_dirs["tiny-qwen"])
    template = get_template("qwen")
    ex = PreferenceExample(prompt="Hi", chosen="Hello!", rejected="Go away.")
    enc = template.encode_example(tok, ex)
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    nl = tok("\n", add_special_tokens=False)["input_ids"]
    for key in ("chosen_input_ids", "rejected_input_ids"):
        assert enc[key][-1 - len(nl)] == im_end and enc[key][-len(nl):] == nl
        assert im_end not in enc["prompt_input_ids"][-3:]  # the prompt ends with the generation prefix
    assert tok.decode(enc["chosen_input_ids"]) == "Hello!<|im_end|>\n"
    assert tok.decode(enc["prompt_input_ids"]).startswith("<|im_start|>system\nYou are a helpful assistant.")


def test_system_none_empty_and_given():
    qwen = get_template("qwen")
    assert "You are a helpful assistant." in qwen.render_prompt(None, [], "q")
    assert "<|im_start|>system" not in qwen.render_prompt("", [], "q")
    assert "<|im_start|>system\nCustom<|im_end|>" in qwen.render_prompt("Custom", [], "q")
    assert "You are Qwen, created by Alibaba Cloud." in get_template("qwen2_5").render_prompt(None, [], "q")
    for name in ("chatml", "qwen3", "llama3", "yi", "mistral", "default"):
        assert get_template(name).spec.default_system is None
        assert "system" not in get_template(name).render_prompt(None, [], "q").lower()
    assert qwen.to_messages(None, [], "q")[0] == {"role": "system", "content": "You are a helpful assistant."}
    assert qwen.to_messages("", [("a", "b")], "q", "r")[0]["role"] == "user"


def test_qwen3_history_turns_have_no_think_block():
    t = get_template("qwen3")
    text = t.render_prompt(None, [("a", "b"), ("c", "d")], "q") + t.render_response("r")
    assert text.count("<think>") == 1
    assert text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\nr<|im_end|>\n")


def test_mistral_system_goes_into_first_user_turn():
    t = get_template("mistral")
    assert t.render_prompt("S", [("u1", "a1")], "u2") == "<s> [INST] S\n\nu1 [/INST] a1</s> [INST] u2 [/INST]"
    assert t.render_response("x") == " x</s>"


def test_default_template_uses_the_tokenizers_bos_and_eos(tiny_dirs):
    t = get_template("default")
    assert t.render_prompt("S", [], "q") == f"{BOS_TOKEN}System: S\n\nUser: q\n\nAssistant: "
    assert t.render_response("a") == f"a{EOS_TOKEN}"
    llama = AutoTokenizer.from_pretrained(tiny_dirs["tiny-llama3"])
    qwen = AutoTokenizer.from_pretrained(tiny_dirs["tiny-qwen"])
    ids = t.encode_prompt(llama, None, [], "q")
    assert ids[0] == llama.bos_token_id and ids.count(llama.bos_token_id) == 1
    assert t.encode_response(llama, "a")[-1] == llama.eos_token_id
    assert qwen.bos_token is None
    assert t.encode_prompt(qwen, None, [], "q") == qwen("User: q\n\nAssistant: ", add_special_tokens=False)["input_ids"]
    assert t.encode_response(qwen, "a")[-1] == qwen.convert_tokens_to_ids("<|im_end|>")
    ex = PreferenceExample(prompt="q", chosen="good", rejected="bad", history=[("h", "i")])
    enc = t.encode_example(llama, ex)
    assert enc["chosen_input_ids"][-1] == llama.eos_token_id
    assert llama.decode(enc["prompt_input_ids"]).count("<|eot_id|>") == 1  # the history answer ends with EOS


def test_registry_lookup_aliases_and_did_you_mean():
    names = [s.name for s in list_templates()]
    for name in ("chatml", "qwen", "qwen2_5", "qwen3", "llama3", "llama3_1", "gemma", "phi3", "deepseek_r1", "yi",
                 "mistral", "default"):
        assert name in names
    assert get_template("Qwen2.5").name == "qwen2_5"
    assert get_template("qwen2").name == "qwen"
    assert get_template("LLAMA-3").name == "llama3"
    with pytest.raises(ArgumentError, match="did you mean 'llama3'"):
        get_template("lama3")
    with pytest.raises(ArgumentError, match="known templates"):
        get_template("zzzz-nothing")


def test_register_custom_template(monkeypatch):
    monkeypatch.setattr(template_registry, "_REGISTRY", dict(template_registry._REGISTRY))
    monkeypatch.setattr(template_registry, "_ALIASES", dict(template_registry._ALIASES))
    spec = TemplateSpec(name="my_fmt", user_prefix="Q: ", user_suffix="\n", assistant_prefix="A: ",
                        assistant_suffix="\n", supports_system=False, stop_words=("Q:",))
    register_template(spec)
    register_template(spec)  # the same spec again is fine (a plugin imported twice)
    t = get_template("my-fmt")
    assert isinstance(t, Template) and t.stop_words == ["Q:"]
    assert t.render_prompt(None, [("x", "y")], "z") + t.render_response("w") == "Q: x\nA: y\nQ: z\nA: w\n"
    with pytest.raises(ArgumentError, match="no system prompt"):
        t.render_prompt("sys", [], "z")
    with pytest.raises(ArgumentError, match="already registered"):
        register_template(TemplateSpec(name="my_fmt", user_prefix="other"))
    register_template(TemplateSpec(name="my_fmt", user_prefix="other"), exist_ok=True)
    assert get_template("my_fmt").spec.user_prefix == "other"


def test_bad_inputs_are_clear_errors():
    t = get_template("chatml")
    with pytest.raises(ArgumentError, match="query must be text"):
        t.render_prompt(None, [], None)
    with pytest.raises(ArgumentError, match="history turn 0"):
        t.render_prompt(None, [("only user",)], "q")
