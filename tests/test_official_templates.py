"""Every built-in template against its model's official jinja, and `--template auto` on every fixture.

The oracle is transformers: `apply_chat_template` renders the official jinja (tests/fixtures/chat_templates/, each
file's first line says where it came from) with a tokenizer that carries the family's special tokens
(`prefswift.models.tiny_families`), and its token ids are compared with prefswift's encoding: multi-turn, with and
without a system prompt, prompt with the generation prompt, prompt + response equal to the finished conversation.
"""
import pytest
from chat_fixtures import CONVERSATIONS, FIXTURES, messages, official
from transformers import AutoTokenizer

from prefswift.data.example import PreferenceExample
from prefswift.errors import ArgumentError
from prefswift.models.tiny_families import build_family_model
from prefswift.templates import get_template, list_templates
from prefswift.templates.detect import matching_builtin

# fixture -> (family whose special tokens the tokenizer carries, jinja kwargs)
FIXTURE_FAMILY = {
    "llama3_8b_instruct.jinja": ("llama3", {}),
    "llama3_1_8b_instruct.jinja": ("llama3.1", {}),
    "llama3_2_3b_instruct.jinja": ("llama3.2", {}),
    "qwen2_7b_instruct.jinja": ("qwen2", {}),
    "qwen2_5_7b_instruct.jinja": ("qwen2.5", {}),
    "qwen3_8b.jinja": ("qwen3", {"enable_thinking": False}),
    "yi_6b_chat.jinja": ("yi", {}),
    "mistral_7b_instruct_v0_2.jinja": ("mistral", {}),
    "gemma2_it.jinja": ("gemma2", {}),
    "gemma3_it.jinja": ("gemma3", {}),
    "phi3_mini_instruct.jinja": ("phi3", {}),
    "phi3_5_mini_instruct.jinja": ("phi3", {}),
    "deepseek_r1_distill.jinja": ("deepseek-r1-distill", {}),
}
# built-ins that no official jinja describes: ChatML itself (checked through yi, which is plain ChatML) and the
# plain-text format for base models
UNCHECKED = {"chatml", "default"}



@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    """One tiny tokenizer per family, the family's special tokens included."""
    root = tmp_path_factory.mktemp("families")
    cache = {}

    def get(fixture):
        family, _ = FIXTURE_FAMILY[fixture]
        if family not in cache:
            cache[family] = build_family_model(family, root / family)
        tok = AutoTokenizer.from_pretrained(cache[family])
        tok.chat_template = official(fixture)
        return tok
    return get


def refuses_system(tok) -> bool:
    from jinja2.exceptions import TemplateError
    try:
        tok.apply_chat_template(messages("S", [], "q"), tokenize=False)
        return False
    except TemplateError:
        return True


def ids(tok, msgs, generation_prompt, **kw):
    return tok.apply_chat_template(msgs, tokenize=True, return_dict=False, add_generation_prompt=generation_prompt,
                                   **kw)


BUILTIN_CASES = [(spec.name, fixture) for spec in list_templates() for fixture in spec.official]


def test_every_builtin_is_checked_or_declared_unchecked():
    names = {spec.name for spec in list_templates() if spec.name not in UNCHECKED}
    assert names == {name for name, _ in BUILTIN_CASES}
    assert {f for _, f in BUILTIN_CASES} <= set(FIXTURE_FAMILY)
    for path in FIXTURES.glob("*.jinja"):
        assert path.read_text(encoding="utf-8").startswith("{#- source: "), path.name


@pytest.mark.parametrize("name,fixture", BUILTIN_CASES)
def test_builtin_ids_equal_official_jinja(name, fixture, tokenizers):
    tok = tokenizers(fixture)
    _, kw = FIXTURE_FAMILY[fixture]
    template = get_template(name)
    fold = refuses_system(tok)
    for system, history, query, response in CONVERSATIONS:
        if fold and system is not None and system != system.strip():
            continue  # Gemma 2 trims the folded text as a whole; Gemma 3 (the built-in) keeps the system's spaces
        full = messages(system, history, query, response, fold=fold)
        prompt = messages(system, history, query, fold=fold)
        ex = PreferenceExample(prompt=query, chosen=response, rejected="No.", system=system, history=history)
        enc = template.encode_example(tok, ex)
        assert enc["prompt_input_ids"] == ids(tok, prompt, True, **kw), (system, history)
        if name == "deepseek_r1":
            # the official template renders a finished answer without the '<think>\n' its generation prompt opens
            # (and drops reasoning): the trained response continues the prompt, as the model generates it
            assert tok.decode(enc["chosen_input_ids"]) == response + tok.eos_token
            continue
        assert enc["prompt_input_ids"] + enc["chosen_input_ids"] == ids(tok, full, False, **kw), (system, history)


@pytest.mark.parametrize("fixture", sorted(FIXTURE_FAMILY))
def test_auto_equals_official_jinja(fixture, tokenizers):
    tok = tokenizers(fixture)
    _, kw = FIXTURE_FAMILY[fixture]
    if kw:  # Qwen3's default is thinking mode: auto renders what apply_chat_template renders by default
        kw = {}
    template = get_template("auto", tok, fixture)
    fold = refuses_system(tok)
    assert template.fold_system == fold
    for system, history, query, response in CONVERSATIONS:
        ex = PreferenceExample(prompt=query, chosen=response, rejected="No.", system=system, history=history)
        want_prompt = ids(tok, messages(system, history, query, fold=fold), True)
        want_full = ids(tok, messages(system, history, query, response, fold=fold), False)
        if want_full[:len(want_prompt)] != want_prompt:  # the template rewrites the conversation: refused
            with pytest.raises(ArgumentError, match=f"{fixture}: its chat template .* pass --template NAME"):
                template.encode_example(tok, ex)
            assert fixture == "deepseek_r1_distill.jinja"
            continue
        enc = template.encode_example(tok, ex)
        assert enc["prompt_input_ids"] == want_prompt
        assert enc["prompt_input_ids"] + enc["chosen_input_ids"] == want_full


@pytest.mark.parametrize("fixture,stop", [("llama3_1_8b_instruct.jinja", "<|eot_id|>"),
                                          ("gemma2_it.jinja", "<end_of_turn>"), ("qwen3_8b.jinja", "<|im_end|>"),
                                          ("phi3_mini_instruct.jinja", "<|end|>\n<|endoftext|>"),
                                          ("mistral_7b_instruct_v0_2.jinja", "</s>")])
def test_auto_stop_word_is_read_off_the_rendering(fixture, stop, tokenizers):
    assert get_template("auto", tokenizers(fixture)).stop_words == [stop]


@pytest.mark.parametrize("fixture,builtin", [("llama3_1_8b_instruct.jinja", "llama3_1"),
                                             ("llama3_8b_instruct.jinja", "llama3"), ("gemma2_it.jinja", "gemma"),
                                             ("gemma3_it.jinja", "gemma"), ("phi3_5_mini_instruct.jinja", "phi3"),
                                             ("qwen2_5_7b_instruct.jinja", "qwen2_5"),
                                             ("llama3_2_3b_instruct.jinja", None), ("qwen3_8b.jinja", None),
                                             ("deepseek_r1_distill.jinja", "deepseek_r1")])
def test_detection_picks_a_builtin_only_when_it_renders_the_same(fixture, builtin, tokenizers):
    tok = tokenizers(fixture)
    assert matching_builtin(official(fixture), tok.bos_token or "", tok.eos_token or "") == builtin


def test_auto_needs_a_chat_template(tokenizers):
    tok = tokenizers("gemma2_it.jinja")
    tok.chat_template = None
    with pytest.raises(ArgumentError, match="has no chat template|has none"):
        get_template("auto", tok, "m")
    with pytest.raises(ArgumentError, match="load its tokenizer"):
        get_template("auto")
