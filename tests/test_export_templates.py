"""The chat formats an export writes, against outside renderers: the jinja chat template rendered by transformers'
`apply_chat_template`, and the Ollama Modelfile TEMPLATE rendered by a Go text/template renderer written from Go's
docs (tests/gotemplate.py), tokenized as llama.cpp does (BOS in front when the model adds one, special tokens
parsed); both must give the ids `Template.encode_prompt` / `encode_pair` give in training. No model weights: fast.
"""
import pytest

from gotemplate import render
from prefswift.models.loader import load_tokenizer
from prefswift.templates import get_template
from prefswift.templates.check import PROBES, check_template
from prefswift.templates.jinja import to_jinja
from prefswift.templates.ollama import go_template, modelfile, starts_with_bos

# every built-in template, with the tiny model whose tokenizer has its special tokens
CASES = [("llama3", "tiny-llama3"), ("default", "tiny-llama3"), ("mistral", "tiny-llama3"), ("qwen", "tiny-qwen"),
         ("qwen2_5", "tiny-qwen"), ("qwen3", "tiny-qwen"), ("chatml", "tiny-qwen"), ("yi", "tiny-qwen"),
         ("llama3_1", "tiny-llama3"), ("gemma", "tiny-llama3"), ("phi3", "tiny-llama3"), ("deepseek_r1", "tiny-llama3")]


@pytest.fixture(scope="module")
def tokenizers():
    from prefswift.models.tiny import ensure_tiny_model

    return {name: load_tokenizer(ensure_tiny_model(name)) for name in ("tiny-llama3", "tiny-qwen")}


def training_ids(tok, template, system, history, query, answer=None):
    prompt = template.encode_prompt(tok, system, history, query)
    if answer is None:
        return prompt
    return prompt + template.encode_pair(tok, template.render_prompt(system, history, query), prompt, answer)


def test_go_renderer_on_hand_worked_templates():
    """The test's own renderer, on templates whose output is worked out by hand from Go's semantics."""
    data = {"System": "S", "Messages": [{"Role": "user", "Content": "a"}, {"Role": "assistant", "Content": "b"},
                                        {"Role": "user", "Content": "c"}]}
    t = ('{{ if .System }}[{{ .System }}]{{ end }}{{- range $i, $_ := .Messages }}'
         '{{- $last := eq (len (slice $.Messages $i)) 1 }}{{ if eq .Role "user" }}U:{{ .Content }}'
         '{{ if $last }}|A:{{ end }}{{ else if eq .Role "assistant" }}A:{{ .Content }};{{ end }}{{ end }}')
    assert render(t, data) == "[S]U:aA:b;U:c|A:"
    assert render('x {{- " y" -}}  z{{ if and 1 0 }}no{{ else }}{{ len .L }}{{ end }}', {"L": [1, 2]}) == "x yz2"


@pytest.mark.parametrize("name,model", CASES)
def test_jinja_from_fragments_renders_training_ids(tokenizers, name, model):
    """to_jinja(spec), rendered by transformers' jinja, tokenizes to training's ids on every probe conversation."""
    tok, template = tokenizers[model], get_template(name)
    jinja = to_jinja(template.spec)
    assert check_template(jinja, tok, template) is None
    for system, history, query, answer in PROBES:
        if system and not template.spec.supports_system:
            continue
        messages = template.to_messages(system, history, query)
        got = tok.apply_chat_template(messages, chat_template=jinja, tokenize=True, add_generation_prompt=True,
                                      return_dict=False)
        assert list(got) == training_ids(tok, template, system, history, query)


def test_check_template_names_the_difference(tokenizers):
    """The model's own (Qwen2) jinja adds a default system prompt that prefswift's `chatml` template does not: the
    check says so in one line; a template that does not render is one line too."""
    tok = tokenizers["tiny-qwen"]
    problem = check_template(tok.chat_template, tok, get_template("chatml"))
    assert problem and "\n" not in problem and "probe 1 generation prompt at token 1" in problem
    assert check_template(tok.chat_template, tok, get_template("qwen")) is None
    assert "does not render" in check_template("{% if %}", tok, get_template("qwen"))
    assert check_template(None, tok, get_template("qwen")).startswith("no chat template")


def ollama_ids(tok, template, system, history, query, answer=None):
    """What Ollama feeds llama.cpp: the Modelfile's SYSTEM when the conversation has none, collated into .System
    and .Messages; the text tokenized with BOS in front when the GGUF says add_bos_token (`starts_with_bos`)."""
    add_bos = starts_with_bos(template, tok)
    system = template.resolve_system(system)
    messages = [{"Role": "system", "Content": system}] if system else []
    for user, assistant in history:
        messages += [{"Role": "user", "Content": user}, {"Role": "assistant", "Content": assistant}]
    messages.append({"Role": "user", "Content": query})
    text = render(go_template(template, tok, drop_bos=add_bos), {"System": system, "Messages": messages})
    return ([tok.bos_token_id] if add_bos else []) + tok(text, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("name,model", CASES)
def test_ollama_template_renders_the_training_prompt(tokenizers, name, model):
    tok, template = tokenizers[model], get_template(name)
    for system, history, query, _ in PROBES:
        if system and not template.spec.supports_system:
            continue
        assert ollama_ids(tok, template, system, history, query) == training_ids(tok, template, system, history,
                                                                                 query), (name, query)


def test_modelfile_system_and_stops(tokenizers):
    tok = tokenizers["tiny-qwen"]
    text = modelfile("model-q8_0.gguf", get_template("qwen"), tok)
    lines = text.splitlines()
    assert lines[0] == "FROM ./model-q8_0.gguf"
    assert 'SYSTEM """You are a helpful assistant."""' in lines
    assert 'PARAMETER stop "<|im_end|>"' in lines and 'PARAMETER stop "<|endoftext|>"' in lines
    llama = modelfile("m.gguf", get_template("llama3"), tokenizers["tiny-llama3"])
    assert "<|begin_of_text|>" not in llama  # llama.cpp adds BOS itself: the template leaves it out
    assert 'PARAMETER stop "<|eot_id|>"' in llama
