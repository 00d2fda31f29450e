"""`prefswift merge-lora`: merged logits == adapter logits, output layout, refusal to overwrite, atomic writes.

`make_adapter` (also used by test_infer.py / test_eval.py) builds a LoRA checkpoint on a tiny model with peft
directly — random, non-zero A and B — and writes the args.json a training run would write beside it.
"""
import json
import logging
from pathlib import Path

import pytest
import torch

from prefswift.arguments import parse_command
from prefswift.errors import ArgumentError

pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")  # peft vs transformers 5

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
PROMPTS = ["Hello, how are you?", "What is 2 plus 3?", "Tell me a story about a cat.", "你好"]


def make_adapter(model_type: str, out_dir, *, train_argv=(), seed: int = 0, base_dir=None, scale: float = 1.0):
    """A LoRA checkpoint dir (adapter + tokenizer + args.json) for a built-in tiny model."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prefswift.models.tiny import ensure_tiny_model

    out_dir = Path(out_dir)
    base = Path(base_dir) if base_dir else ensure_tiny_model(model_type)
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    torch.manual_seed(seed)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS, init_lora_weights=False, task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.mul_(scale)
    peft_model.save_pretrained(str(out_dir))
    AutoTokenizer.from_pretrained(str(base)).save_pretrained(str(out_dir))
    argv = ["--model_type", model_type, "--dataset", "demo", *train_argv]
    parse_command("orpo", argv).save(out_dir)
    return out_dir


def encode_batch(model_dir, template_name, prompts=PROMPTS):
    """Right-padded input_ids / attention_mask of chat prompts."""
    from prefswift.models.loader import load_tokenizer
    from prefswift.templates import get_template

    tok = load_tokenizer(Path(model_dir))
    tmpl = get_template(template_name)
    seqs = [tmpl.encode_prompt(tok, None, [], p) for p in prompts]
    n = max(map(len, seqs))
    ids = torch.full((len(seqs), n), tok.pad_token_id)
    mask = torch.zeros((len(seqs), n), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
        mask[i, :len(s)] = 1
    return ids, mask


def adapter_model(adapter_dir, base_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    return PeftModel.from_pretrained(base, str(adapter_dir)).eval()


def merge(ckpt, *extra, output_dir=None, log=lambda *a: None):
    from prefswift.merge import merge_lora

    return merge_lora(parse_command("merge-lora", ["--ckpt_dir", str(ckpt), *extra]), output_dir, log=log)


@pytest.mark.parametrize("model_type,template", [("tiny-llama3", "llama3"), ("tiny-qwen", "qwen")])
def test_merged_logits_equal_adapter_logits(tmp_path, model_type, template):
    from transformers import AutoModelForCausalLM

    from prefswift.models.tiny import ensure_tiny_model

    base_dir = ensure_tiny_model(model_type)
    ckpt = make_adapter(model_type, tmp_path / "run" / "checkpoint-5")
    out = merge(ckpt)
    assert out == ckpt.with_name("checkpoint-5-merged")

    ids, mask = encode_batch(out, template)
    merged = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32).eval()
    with torch.no_grad():
        got = merged(input_ids=ids, attention_mask=mask).logits
        want = adapter_model(ckpt, base_dir)(input_ids=ids, attention_mask=mask).logits
        plain = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)(
            input_ids=ids, attention_mask=mask).logits
    real = mask.bool()
    assert (got[real] - want[real]).abs().max().item() <= 1e-5
    assert (plain[real] - want[real]).abs().max().item() > 1e-3  # the adapter really changes the model

    # layout: safetensors, tokenizer, generation config with the template's end-of-turn token, args.json
    names = {p.name for p in out.iterdir()}
    assert any(n.endswith(".safetensors") for n in names) and "config.json" in names
    assert {"tokenizer.json", "tokenizer_config.json", "generation_config.json", "args.json"} <= names
    assert not any("adapter" in n for n in names)
    from prefswift.models.loader import load_tokenizer

    tok = load_tokenizer(out)
    eot = tok.convert_tokens_to_ids("<|eot_id|>" if template == "llama3" else "<|im_end|>")
    gen = json.loads((out / "generation_config.json").read_text())
    assert eot in (gen["eos_token_id"] if isinstance(gen["eos_token_id"], list) else [gen["eos_token_id"]])
    saved = json.loads((out / "args.json").read_text())
    assert saved["sft_type"] == "full" and saved["model_type"] == model_type and saved["template"] == template
    assert saved["merged_from"] == str(ckpt) and saved["dataset"] == ["demo"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["checkpoint-5", "checkpoint-5-merged"]  # no temp left


@pytest.fixture(scope="module")
def llama_ckpt(tmp_path_factory):
    return make_adapter("tiny-llama3", tmp_path_factory.mktemp("m") / "checkpoint-1")


def test_refuses_nonempty_output_unless_overwrite(tmp_path, llama_ckpt):
    out = tmp_path / "merged"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(ArgumentError, match="not empty.*--overwrite true"):
        merge(llama_ckpt, output_dir=str(out))
    assert (out / "keep.txt").read_text() == "precious"
    merge(llama_ckpt, "--overwrite", "true", output_dir=str(out))
    assert not (out / "keep.txt").exists() and (out / "config.json").is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    merge(llama_ckpt, output_dir=str(empty))  # an existing empty dir is fine
    assert (empty / "config.json").is_file()


def test_failed_merge_leaves_nothing_half_written(tmp_path, llama_ckpt, monkeypatch):
    import prefswift.merge as merge_mod

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(merge_mod, "merged_args", boom)  # fails after the weights are written to the temp dir
    with pytest.raises(RuntimeError):
        merge(llama_ckpt, output_dir=str(tmp_path / "new"))
    assert list(tmp_path.iterdir()) == []
    old = tmp_path / "old"
    old.mkdir()
    (old / "keep.txt").write_text("x")
    with pytest.raises(RuntimeError):
        merge(llama_ckpt, "--overwrite", "true", output_dir=str(old))
    assert [p.name for p in tmp_path.iterdir()] == ["old"] and (old / "keep.txt").is_file()


def test_qlora_adapter_is_merged_into_dequantized_base_with_warning(tmp_path, caplog):
    ckpt = make_adapter("tiny-llama3", tmp_path / "q" / "checkpoint-2", train_argv=["--use_4bit", "true"])
    assert json.loads((ckpt / "args.json").read_text())["quantization_bit"] == 4
    with caplog.at_level(logging.WARNING, logger="prefswift"):
        out = merge(ckpt)
    assert any("4-bit" in r.getMessage() and "de-quantized" in r.getMessage() for r in caplog.records)
    assert json.loads((out / "args.json").read_text())["quantization_bit"] == 0


def test_adapter_trained_on_top_of_an_sft_adapter(tmp_path):
    """A run started from --adapter_name_or_path SFT: merged = base + SFT merged + the run's adapter."""
    from transformers import AutoModelForCausalLM

    from prefswift.models.tiny import ensure_tiny_model

    base_dir = ensure_tiny_model("tiny-qwen")
    sft = make_adapter("tiny-qwen", tmp_path / "sft", seed=1)
    sft_merged = merge(sft)
    ckpt = make_adapter("tiny-qwen", tmp_path / "dpo" / "checkpoint-3", seed=2, base_dir=sft_merged,
                        train_argv=["--adapter_name_or_path", str(sft)])
    out = merge(ckpt)
    ids, mask = encode_batch(out, "qwen")
    with torch.no_grad():
        got = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32)(input_ids=ids,
                                                                                    attention_mask=mask).logits
        want = adapter_model(ckpt, sft_merged)(input_ids=ids, attention_mask=mask).logits
        wrong = adapter_model(ckpt, base_dir)(input_ids=ids, attention_mask=mask).logits
    real = mask.bool()
    assert (got[real] - want[real]).abs().max().item() <= 1e-5
    assert (got[real] - wrong[real]).abs().max().item() > 1e-3


def test_cli_merge_lora(tmp_path, llama_ckpt):
    from typer.testing import CliRunner

    from prefswift.cli import app

    out = tmp_path / "cli-merged"
    res = CliRunner().invoke(app, ["merge-lora", "--ckpt_dir", str(llama_ckpt), "--output_dir", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "config.json").is_file()
    res = CliRunner().invoke(app, ["merge-lora", "--ckpt_dir", str(llama_ckpt), "--output_dir", str(out)])
    assert res.exit_code == 2 and "--overwrite true" in res.output
    res = CliRunner().invoke(app, ["merge-lora", "--ckpt_dir", str(out)])
    assert res.exit_code == 2 and "nothing to merge" in res.output
    res = CliRunner().invoke(app, ["merge-lora", "--ckpt_dir", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "no such directory" in res.output
