"""Every registered family's architecture: a tiny random model built from its transformers config (no download)
scores pairs exactly like a plain transformers forward, in every batch layout, and trains with
`--lora_target_modules ALL`; a local directory with an official chat template trains with no --template.

Oracle: `model(input_ids).logits.log_softmax(-1)` of each sequence alone, summed over its response tokens.
"""
import json

import pytest
import torch
from chat_fixtures import official
from transformers import AutoModelForCausalLM, AutoTokenizer

from prefswift.arguments import parse_command
from prefswift.commands.train import run_training
from prefswift.data.example import PreferenceExample
from prefswift.errors import ArgumentError, PrefswiftError
from prefswift.models.loader import resolve_model
from prefswift.models.tiny_families import ARCHITECTURES, build_family_model, family_spec
from prefswift.registry.models import list_families, list_models
from prefswift.scoring.collators import PairCollator, PrefixSharedCollator
from prefswift.scoring.forward import pair_forward
from prefswift.templates import get_template

# the official chat template a family's tiny model carries (tests/fixtures/chat_templates); others get none and are
# encoded with --template default
FAMILY_FIXTURE = {"llama3": "llama3_8b_instruct.jinja", "llama3.1": "llama3_1_8b_instruct.jinja",
                  "llama3.2": "llama3_2_3b_instruct.jinja", "llama3.3": "llama3_1_8b_instruct.jinja",
                  "qwen2": "qwen2_7b_instruct.jinja", "qwen2.5": "qwen2_5_7b_instruct.jinja", "qwen3": "qwen3_8b.jinja",
                  "gemma2": "gemma2_it.jinja", "gemma3": "gemma3_it.jinja", "phi3": "phi3_mini_instruct.jinja",
                  "mistral": "mistral_7b_instruct_v0_2.jinja", "yi": "yi_6b_chat.jinja",
                  "deepseek-r1-distill": "deepseek_r1_distill.jinja",
                  "deepseek-r1-distill-llama": "deepseek_r1_distill.jinja"}
FAMILIES = [f for f in list_families() if f != "tiny"]
BUILDABLE = [f for f in FAMILIES if not family_spec(f).trust_remote_code]
REMOTE = [f for f in FAMILIES if family_spec(f).trust_remote_code]
# one training run per architecture (the family with an official template where there is one)
TRAIN = {"LlamaForCausalLM": "llama3.1", "Gemma2ForCausalLM": "gemma2", "Phi3ForCausalLM": "phi3",
         "Qwen2ForCausalLM": "qwen2.5", "Qwen3ForCausalLM": "qwen3", "Gemma3ForCausalLM": "gemma3",
         "MistralForCausalLM": "mistral", "Glm4ForCausalLM": "glm4", "Olmo2ForCausalLM": "olmo2"}

EXAMPLES = [PreferenceExample(prompt="What is the capital of France?", chosen="Paris, of course.",
                              rejected="I do not know.", system="Be brief."),
            PreferenceExample(prompt="Count to three.", chosen="one, two, three", rejected="four",
                              history=[("Hello", "Hi! How can I help?")])]


def test_registry_covers_the_families_people_train():
    from prefswift.registry.model_catalog import FAMILIES as CATALOG

    catalog = {model_type for fam in CATALOG for model_type, *_ in fam.models}
    # the catalog's entries (a plugin another test loaded may have registered more model types in this process)
    models = [m for m in list_models() if m.model_type in catalog]
    assert len(models) == len(catalog) >= 60 and len(FAMILIES) >= 15
    for m in models:
        assert m.family and m.architecture and m.size, m.model_type
        for hub_id in (m.ms_id, m.hf_id):
            assert hub_id is None or (hub_id.count("/") == 1 and " " not in hub_id), m.model_type
    assert set(TRAIN) == set(ARCHITECTURES) == {family_spec(f).architecture for f in BUILDABLE}
    assert {"glm4-chat", "internlm2.5", "baichuan2"} <= set(REMOTE)


@pytest.fixture(scope="module")
def family_dir(tmp_path_factory):
    root, built = tmp_path_factory.mktemp("families"), {}

    def get(family):
        if family not in built:
            fixture = FAMILY_FIXTURE.get(family)
            built[family] = build_family_model(family, root / family, official(fixture) if fixture else None)
        return built[family]
    return get


def _plain_logps(model, prompt, response):
    ids = torch.tensor([prompt + response])
    with torch.no_grad():
        logps = model(input_ids=ids).logits[0, :-1].log_softmax(-1)
    targets = ids[0, 1:]
    per_token = logps.gather(-1, targets[:, None])[:, 0]
    return per_token[len(prompt) - 1:].sum()


@pytest.mark.parametrize("family", BUILDABLE)
def test_family_scores_like_plain_transformers(family, family_dir):
    path = family_dir(family)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float64).eval()  # exact sums
    config = model.config
    if family == "gemma2":  # read from the config by transformers, not by prefswift
        assert config.final_logit_softcapping == 30.0 and config.sliding_window == 64
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    template = get_template(resolve_model(None, str(path), template=None if family in FAMILY_FIXTURE else "default")
                            .template, tok, family)
    rows = [template.encode_example(tok, ex) for ex in EXAMPLES]
    want = torch.stack([torch.stack([_plain_logps(model, r["prompt_input_ids"], r[k]) for r in rows])
                        for k in ("chosen_input_ids", "rejected_input_ids")])
    pad = tok.pad_token_id
    for collator in (PairCollator(pad), PairCollator(pad, packing=True), PrefixSharedCollator(pad)):
        with torch.no_grad():
            out = pair_forward(model, collator(rows))
        got = torch.stack([out.chosen_logps, out.rejected_logps])
        assert torch.allclose(got, want, atol=1e-5, rtol=0), (type(collator).__name__, got, want)


@pytest.mark.parametrize("architecture,family", sorted(TRAIN.items()))
def test_family_trains_two_dpo_steps_with_lora_all(architecture, family, family_dir, tmp_path):
    argv = ["--model_id_or_path", str(family_dir(family)), "--dataset", "demo", "--max_steps", "2",
            "--lora_target_modules", "ALL", "--output_dir", str(tmp_path / "run"), "--logging_steps", "1",
            "--train_dataset_sample", "8", "--val_dataset_sample", "0", "--batch_size", "2"]
    if family not in FAMILY_FIXTURE:
        argv += ["--template", "default"]
    run = run_training(parse_command("dpo", argv), "dpo", log=lambda *a, **k: None)
    steps = [json.loads(line) for line in (run / "logging.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps if "loss" in s] == [1, 2] and [s for s in steps if "loss" in s][-1]["grad_norm"] > 0
    adapter = json.loads((run / "adapter" / "adapter_config.json").read_text())
    if architecture == "Phi3ForCausalLM":
        assert {"qkv_proj", "gate_up_proj"} <= set(adapter["target_modules"])
    if architecture == "Glm4ForCausalLM":
        assert "gate_up_proj" in adapter["target_modules"]


@pytest.mark.parametrize("family", REMOTE)
def test_remote_code_families_are_refused_without_the_flag(family, tmp_path):
    spec = family_spec(family)
    with pytest.raises(PrefswiftError, match=f"{spec.model_type} runs Python code .* --trust_remote_code true"):
        resolve_model(spec.model_type, None)
    (tmp_path / "config.json").write_text(json.dumps({"auto_map": {"AutoModelForCausalLM": "modeling_x.XForCausalLM"},
                                                      "architectures": [spec.architecture]}))
    with pytest.raises(PrefswiftError, match="auto_map.*--trust_remote_code true"):
        resolve_model(None, str(tmp_path))
    with pytest.raises(ArgumentError, match="trust_remote_code"):
        build_family_model(family, tmp_path / "tiny")


@pytest.mark.parametrize("family", ["gemma2", "phi3", "llama3.1", "llama3.2"])
def test_preview_of_a_local_dir_shows_the_official_rendering(family, family_dir, tmp_path):
    from prefswift.commands.preview import TRAINED_CLOSE, TRAINED_OPEN, run_preview

    path = family_dir(family)
    data = tmp_path / "pairs.jsonl"
    data.write_text(json.dumps({"system": "Be brief.", "history": [["Hi", "Hello!"]], "prompt": "Name a fruit.",
                                "chosen": "A pear.", "rejected": "No."}) + "\n")
    out = run_preview(parse_command("preview", ["--model_id_or_path", str(path), "--dataset", str(data)]), n=1)
    tok = AutoTokenizer.from_pretrained(path)
    conversation = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Name a fruit."}]
    if family == "gemma2":  # Gemma 2 refuses a system role: it opens the first user turn (Gemma 3's own way)
        conversation = [{"role": "user", "content": "Be brief.\n\nHi"}] + conversation[2:]
    prompt = tok.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    full = tok.apply_chat_template(conversation + [{"role": "assistant", "content": "A pear."}], tokenize=False)
    assert prompt + TRAINED_OPEN + full[len(prompt):] + TRAINED_CLOSE in out
    assert ("template: auto" in out) == (family == "llama3.2")  # today's date in its header: no built-in renders it


def test_auto_truncates_oldest_turns_first_and_keeps_headers(family_dir):
    from prefswift.data.pipeline import RowChecker, encode_examples
    from prefswift.templates.stops import stop_tokens

    path = family_dir("gemma2")
    tok = AutoTokenizer.from_pretrained(path)
    template = get_template("auto", tok, "gemma2")
    assert stop_tokens(tok, template)[0][0] == tok.convert_tokens_to_ids("<end_of_turn>")
    history = [(f"Question number {i} about the sea?", f"Answer {i}: the sea is blue.") for i in range(6)]
    ex = PreferenceExample(prompt="Name a fruit.", chosen="A pear.", rejected="No.", history=history)
    args = parse_command("dpo", ["--model_id_or_path", str(path), "--dataset", "demo", "--max_length", "80",
                                 "--max_prompt_length", "60"]).data
    lengths = {"prompt": [], "chosen": [], "rejected": []}
    rows, truncated = encode_examples([ex], template, tok, args, RowChecker("error", print), lengths)
    assert truncated == 1 and rows[0]["truncated"]["turns"] >= 1
    kept = history[rows[0]["truncated"]["turns"]:]
    conversation = [m for u, a in kept for m in ({"role": "user", "content": u}, {"role": "assistant", "content": a})]
    conversation.append({"role": "user", "content": "Name a fruit."})
    want = tok.apply_chat_template(conversation, tokenize=True, return_dict=False, add_generation_prompt=True)
    assert rows[0]["prompt_input_ids"] == want and len(want) <= 60


def test_list_models_filters_and_marks_remote_code():
    from prefswift.commands.list import render_list

    gemma = render_list("models", family="gemma2").splitlines()[2:]
    assert [line.split()[0] for line in gemma] == ["gemma2-2b-it", "gemma2-9b-it", "gemma2-27b-it"]
    assert all(" 9B " in line for line in gemma if line.startswith("gemma2-9b"))
    internlm = render_list("models", word="internlm").splitlines()[2:]
    assert len(internlm) == 3 and all("--trust_remote_code true" in line for line in internlm)
    with pytest.raises(ArgumentError, match="did you mean 'gemma2'"):
        render_list("models", family="gemma-2")
    templates = {line.split()[0]: line for line in render_list("templates").splitlines()[2:]}
    assert "gemma2_it.jinja" in templates["gemma"] and templates["default"].split()[1] == "-"
