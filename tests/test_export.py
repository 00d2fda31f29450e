"""`prefswift export --to gguf|ollama`: the file transformers' GGUF loader reads back (`gguf_file=`) against the model
merged by peft — logits per out type within the bounds the README states, the same greedy answers, the same
tokenizer, a chat template that tokenizes as training did — and the refusals, which leave nothing behind.
"""
import json
from pathlib import Path

import pytest
import torch

from prefswift.arguments import parse_command
from prefswift.errors import ArgumentError
from test_merge import adapter_model, encode_batch, make_adapter

pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")

# max |logit difference| per out type against the merged float32 model: f32 to 1e-5; the others about twice what
# these tiny random adapters measure (README "Export" has the values measured on the quickstart run)
BOUNDS = {"f32": 1e-5, "f16": 5e-3, "bf16": 5e-2, "q8_0": 0.1, "q4_0": 1.0, "q5_0": 0.5}
HELD_OUT = ["What is 12 plus 30?", "What is the opposite of slow?", "How many legs does a spider have?",
            "What rhymes with cat?", "你好"]


def export(*argv, log=lambda *a: None):
    from prefswift.export.run import export as run_export

    return run_export(parse_command("export", [str(a) for a in argv]), log=log)


def load_gguf(path: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


@pytest.fixture(scope="module")
def llama_ckpt(tmp_path_factory):
    return make_adapter("tiny-llama3", tmp_path_factory.mktemp("exp") / "adapter")


@pytest.fixture(scope="module")
def qwen_ckpt(tmp_path_factory):
    return make_adapter("tiny-qwen", tmp_path_factory.mktemp("exp") / "adapter")


def _logits(model, ids, mask):
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).logits * mask[..., None]


@pytest.mark.parametrize("ckpt_name,base,template", [("llama_ckpt", "tiny-llama3", "llama3"),
                                                     ("qwen_ckpt", "tiny-qwen", "qwen")])
def test_gguf_logits_per_outtype_match_the_merged_model(request, tmp_path, ckpt_name, base, template):
    """q8_0 through the command (adapter merged, staged folder renamed into place, args.json); every other out
    type written by the same writer from the same merged model; each read back by transformers."""
    from prefswift.export.gguf_model import write_gguf
    from prefswift.models.loader import load_tokenizer
    from prefswift.models.tiny import ensure_tiny_model
    from prefswift.templates import get_template

    ckpt = request.getfixturevalue(ckpt_name)
    ids, mask = encode_batch(ckpt, template)
    merged = adapter_model(ckpt, ensure_tiny_model(base)).merge_and_unload()
    want = _logits(merged, ids, mask)
    dest = export("--ckpt_dir", ckpt, "--outtype", "q8_0", "--output_dir", tmp_path / "out")
    assert sorted(p.name for p in dest.iterdir()) == ["args.json", "model-q8_0.gguf"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging folder left
    assert json.loads((dest / "args.json").read_text())["command"] == "export"
    diffs = {"q8_0": (_logits(load_gguf(dest / "model-q8_0.gguf")[0], ids, mask) - want).abs().max().item()}
    tok = load_tokenizer(ckpt)
    config = json.loads((ensure_tiny_model(base) / "config.json").read_text())
    for outtype in ("f32", "f16", "bf16", "q4_0", "q5_0"):
        path = tmp_path / f"{outtype}.gguf"
        write_gguf(path, merged, tok, get_template(template), config, outtype, [tok.eos_token_id], "m")
        diffs[outtype] = (_logits(load_gguf(path)[0], ids, mask) - want).abs().max().item()
    print(base, f"max |logit| {want.abs().max().item():.2f}", {k: f"{v:.2e}" for k, v in diffs.items()})
    for outtype, diff in diffs.items():
        assert diff <= BOUNDS[outtype], (outtype, diff)
    assert diffs["f16"] < diffs["q8_0"] < diffs["q4_0"]


def test_gguf_greedy_answers_tokenizer_and_chat_template(tmp_path, llama_ckpt):
    """Greedy answers of the f32 GGUF (read by transformers) equal the merged model's (this random adapter's logits
    are near-uniform, so a quantized file may flip near-ties here; the q8_0 greedy check runs on a trained model in
    test_quickstart.py); the tokenizer rebuilt from the GGUF gives the same ids; the GGUF's chat template renders
    the training prompt ids (transformers' apply_chat_template on the file's own metadata)."""
    from prefswift.models.loader import load_tokenizer
    from prefswift.models.tiny import ensure_tiny_model
    from prefswift.templates import get_template
    from prefswift.templates.check import check_gguf_template

    dest = export("--ckpt_dir", llama_ckpt, "--outtype", "f32", "--output_dir", tmp_path / "out")
    gguf_model, gguf_tok = load_gguf(dest / "model-f32.gguf")
    merged = adapter_model(llama_ckpt, ensure_tiny_model("tiny-llama3")).merge_and_unload()
    tok, template = load_tokenizer(llama_ckpt), get_template("llama3")
    eos = [tok.convert_tokens_to_ids("<|eot_id|>"), tok.convert_tokens_to_ids("<|end_of_text|>")]
    for prompt in HELD_OUT:
        ids = torch.tensor([template.encode_prompt(tok, None, [], prompt)])
        assert gguf_tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                            tokenize=True, return_dict=False) == ids[0].tolist()
        outs = [m.generate(ids, max_new_tokens=12, do_sample=False, eos_token_id=eos, pad_token_id=eos[0])
                for m in (merged, gguf_model)]
        assert outs[0].tolist() == outs[1].tolist(), prompt
    text = "Sure! 12 + 30 = 42. 你好 <|eot_id|>"
    assert gguf_tok(text, add_special_tokens=False)["input_ids"] == tok(text, add_special_tokens=False)["input_ids"]
    assert check_gguf_template(dest / "model-f32.gguf") is None


def test_ollama_export_and_k_quant_hint(tmp_path, qwen_ckpt):
    lines = []
    dest = export("--ckpt_dir", qwen_ckpt, "--to", "ollama", "--outtype", "q4_k_m", "--output_dir", tmp_path / "o",
                  log=lines.append)
    assert sorted(p.name for p in dest.iterdir()) == ["Modelfile", "args.json", "model-f16.gguf"]
    assert (dest / "Modelfile").read_text().startswith("FROM ./model-f16.gguf\nTEMPLATE ")
    assert any(f"cd {dest} && ollama create exp" in line and line.endswith(" -f Modelfile") for line in lines)
    assert any(f"llama-quantize {dest}/model-f16.gguf {dest}/model-q4_k_m.gguf Q4_K_M" in line for line in lines)


def _one_line(excinfo):
    assert "\n" not in str(excinfo.value)
    return str(excinfo.value)


def test_refusals_leave_nothing_behind(tmp_path, llama_ckpt):
    with pytest.raises(ArgumentError) as e:
        parse_command("export", ["--ckpt_dir", str(llama_ckpt), "--outtype", "q3"])
    assert "--outtype: 'q3' is not one of" in _one_line(e)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ArgumentError) as e:
        export("--ckpt_dir", llama_ckpt, "--output_dir", foreign, "--overwrite", "true")
    assert "prefswift export did not write" in _one_line(e)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    first = export("--ckpt_dir", llama_ckpt, "--outtype", "f32", "--output_dir", tmp_path / "out")
    with pytest.raises(ArgumentError) as e:
        export("--ckpt_dir", llama_ckpt, "--output_dir", first)
    assert "--overwrite true" in _one_line(e)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "out"]


def _full_model(tmp_path, base, edit):
    """A copy of a tiny model dir (weights and config changed by `edit`) with no args.json: a plain model dir."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prefswift.models.tiny import ensure_tiny_model

    src = ensure_tiny_model(base)
    model = AutoModelForCausalLM.from_pretrained(str(src), dtype=torch.float32)
    edit(model)
    out = tmp_path / "model"
    model.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(src)).save_pretrained(str(out))
    return out


def test_non_finite_weights_and_unsupported_family_are_refused(tmp_path):
    def poison(model):
        with torch.no_grad():
            model.model.layers[1].mlp.down_proj.weight[0, 0] = float("nan")

    bad = _full_model(tmp_path, "tiny-qwen", poison)
    with pytest.raises(ArgumentError) as e:
        export("--ckpt_dir", bad, "--template", "qwen", "--output_dir", tmp_path / "out")
    assert "model.layers.1.mlp.down_proj.weight holds nan/inf" in _one_line(e)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    config = json.loads((bad / "config.json").read_text())
    config.update(model_type="gpt_neox", architectures=["GPTNeoXForCausalLM"])
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(ArgumentError) as e:
        export("--ckpt_dir", bad, "--template", "qwen", "--output_dir", tmp_path / "out")
    assert "model family 'gpt_neox' cannot be exported to GGUF" in _one_line(e)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


# registry families llama.cpp maps (besides the tiny llama and qwen2 above), as tiny random models with the tiny-llama3
# tokenizer; the shapes transformers' GGUF loader rebuilds from the metadata (it reads no qwen3 head_dim nor gemma2
# query_pre_attn_scalar, so those keep their defaults here)
FAMILY_CONFIGS = {"mistral": {}, "qwen3": {"head_dim": 128}, "gemma2": {"head_dim": 16, "sliding_window": 64},
                  "phi3": {"pad_token_id": 999}}


@pytest.mark.parametrize("model_type", sorted(FAMILY_CONFIGS))
def test_other_families_read_back_exactly_at_f32(tmp_path, model_type):
    from transformers import AutoConfig, AutoModelForCausalLM

    from prefswift.export.gguf_model import write_gguf
    from prefswift.models.loader import load_tokenizer
    from prefswift.models.tiny import ensure_tiny_model
    from prefswift.templates import get_template

    tok = load_tokenizer(ensure_tiny_model("tiny-llama3"))
    config = AutoConfig.for_model(model_type, vocab_size=1000, hidden_size=64, intermediate_size=128,
                                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                  max_position_embeddings=256, bos_token_id=994, eos_token_id=998,
                                  **FAMILY_CONFIGS[model_type])
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():  # norms away from their initial ones, so the gemma (1 + w) convention is exercised
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    path = tmp_path / "m.gguf"
    write_gguf(path, model, tok, get_template("llama3"), json.loads(config.to_json_string()), "f32", [998], "m")
    ids = torch.tensor([tok("Hello world, 12 plus 30 is 42?")["input_ids"]])
    with torch.no_grad():
        diff = (load_gguf(path)[0](ids).logits - model(ids).logits).abs().max().item()
    assert diff <= 1e-5


@pytest.mark.filterwarnings("ignore:MatMul8bitLt")
def test_bnb_safetensors_load_with_plain_transformers(tmp_path, llama_ckpt):
    """--quant bnb-4bit / bnb-8bit: AutoModelForCausalLM.from_pretrained(dir) alone loads bitsandbytes layers whose
    logits stay near the merged model's (measured on the quickstart run: 4-bit 0.15, 8-bit 0.026; README)."""
    from transformers import AutoModelForCausalLM

    from prefswift.models.tiny import ensure_tiny_model

    ids, mask = encode_batch(llama_ckpt, "llama3")
    want = _logits(adapter_model(llama_ckpt, ensure_tiny_model("tiny-llama3")).merge_and_unload(), ids, mask)
    for quant, layer, bound in (("bnb-4bit", "Linear4bit", 1.0), ("bnb-8bit", "Linear8bitLt", 0.1)):
        dest = export("--ckpt_dir", llama_ckpt, "--quant", quant, "--output_dir", tmp_path / quant)
        model = AutoModelForCausalLM.from_pretrained(str(dest)).eval()
        assert type(model.model.layers[0].self_attn.q_proj).__name__ == layer
        assert (_logits(model, ids, mask) - want).abs().max().item() <= bound, quant
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bnb-4bit", "bnb-8bit"]
    with pytest.raises(ArgumentError) as e:
        export("--ckpt_dir", llama_ckpt, "--quant", "bnb-4bit", "--outtype", "q8_0")
    assert "--to safetensors does not take it" in _one_line(e)
    with pytest.raises(ArgumentError) as e:
        export("--ckpt_dir", llama_ckpt, "--push_to_hub", "true", "--output_dir", tmp_path / "p")
    assert "--hub_model_id" in _one_line(e) and not (tmp_path / "p").exists()


def test_gguf_lora_applied_to_the_base_gguf_gives_the_merged_gguf(tmp_path, llama_ckpt):
    """llama.cpp's LoRA rule, worked with gguf's own reader: base + (alpha / r) * B @ A, tensor by tensor, equals the
    merged export (which transformers reads back above); names, shapes, scale and the q/k row order all agree."""
    from gguf import GGUFReader

    lora = export("--ckpt_dir", llama_ckpt, "--to", "gguf-lora", "--outtype", "f32", "--output_dir", tmp_path / "l")
    base = export("--model_type", "tiny-llama3", "--outtype", "f32", "--output_dir", tmp_path / "b")
    merged = export("--ckpt_dir", llama_ckpt, "--outtype", "f32", "--output_dir", tmp_path / "m")

    def tensors(path):
        reader = GGUFReader(str(path))
        return reader, {t.name: t.data.astype("float64") for t in reader.tensors}

    reader, adapter = tensors(lora / "adapter.gguf")
    assert reader.get_field("general.type").contents() == "adapter"
    alpha = reader.get_field("adapter.lora.alpha").contents()
    assert alpha == 8.0  # make_adapter: r 4, lora_alpha 8
    _, base_w = tensors(base / "model-f32.gguf")
    _, merged_w = tensors(merged / "model-f32.gguf")
    names = sorted(n[:-len(".lora_a")] for n in adapter if n.endswith(".lora_a"))
    assert len(names) == 14 and "blk.0.attn_q.weight" in names
    for name in names:
        a, b = adapter[name + ".lora_a"], adapter[name + ".lora_b"]
        assert a.shape[0] == b.shape[1] == 4
        assert abs(base_w[name] + alpha / 4 * b @ a - merged_w[name]).max() < 1e-5, name


def test_sentencepiece_style_tokenizer_is_written_as_a_llama_vocabulary(tmp_path):
    """A Llama 2 / Mistral style tokenizer.json (BPE with byte fallback, `▁` for spaces), trained here, written as
    `tokenizer.ggml.model = llama`: the tokenizer transformers rebuilds from the file gives the same ids. (Not on text
    that starts with a space: transformers rebuilds a Metaspace pre-tokenizer where the original prepends `▁` in
    its normalizer, a difference of the rebuild that its GGUF tokenizer code documents for phi3.)"""
    from tokenizers import Tokenizer, decoders, models, normalizers, trainers
    from transformers import AutoTokenizer, LlamaConfig, PreTrainedTokenizerFast

    from prefswift.export.gguf_model import write_gguf
    from prefswift.templates import get_template
    from prefswift.templates.check import check_gguf_template

    backend = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>", fuse_unk=True))
    backend.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    backend.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(" ", 1, 0)])
    special = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    corpus = ["Hello world, how are you today? What is 12 plus 30?", "The quick brown fox jumps over the dog."]
    backend.train_from_iterator(corpus * 50, trainers.BpeTrainer(vocab_size=600, special_tokens=special,
                                                                 show_progress=False))
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(config).eval()
    path = tmp_path / "sp.gguf"
    write_gguf(path, model, tok, get_template("mistral"), json.loads(config.to_json_string()), "f32", [2], "sp")
    rebuilt = AutoTokenizer.from_pretrained(str(tmp_path), gguf_file=path.name)
    for text in ("Hello world, how are you?", "ünïcode 你好 and bytes", "12 plus 30 [INST] x </s>"):
        assert rebuilt(text, add_special_tokens=False)["input_ids"] == tok(text, add_special_tokens=False)["input_ids"]
    assert check_gguf_template(path) is None


def test_a_model_on_its_own_jinja_exports_that_jinja_and_ollama_refuses_it(tmp_path):
    """--template auto: training rendered with the model's own chat template, so the GGUF carries exactly that jinja
    (transformers renders it back to training's ids); a Modelfile TEMPLATE cannot carry jinja: one line."""
    from chat_fixtures import official
    from transformers import AutoTokenizer

    from prefswift.errors import ArgumentError
    from prefswift.models.tiny_families import build_family_model
    from prefswift.templates.check import check_gguf_template, gguf_metadata

    model_dir = build_family_model("llama3.1", tmp_path / "m", official("llama3_1_8b_instruct.jinja"))
    dest = export("--model_id_or_path", model_dir, "--template", "auto", "--outtype", "f32",
                  "--output_dir", tmp_path / "out")
    meta = gguf_metadata(dest / "model-f32.gguf", "tokenizer.chat_template", "prefswift.template")
    assert meta == {"tokenizer.chat_template": AutoTokenizer.from_pretrained(model_dir).chat_template,
                    "prefswift.template": "auto"}
    assert check_gguf_template(dest / "model-f32.gguf") is None
    with pytest.raises(ArgumentError) as e:
        export("--model_id_or_path", model_dir, "--template", "auto", "--to", "ollama", "--output_dir", tmp_path / "o")
    assert "(--template auto)" in _one_line(e) and not (tmp_path / "o").exists()
