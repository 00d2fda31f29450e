"""Model resolution and loading: offline hub errors, dtype AUTO, flash-attn fallback, quantization errors, LoRA
target sets, plugins."""
import logging

import pytest
import torch

from prefswift.arguments import parse_command
from prefswift.errors import ArgumentError, PrefswiftError
from prefswift.models import loader
from prefswift.models.lora import all_linear_names, resolve_target_modules


def test_unreachable_hub_names_the_model_and_the_offline_way(monkeypatch):
    def boom(*a, **k):
        raise ConnectionError("Failed to resolve host\nmore lines")

    import modelscope

    monkeypatch.setattr(modelscope, "snapshot_download", boom)
    with pytest.raises(PrefswiftError) as e:
        loader.resolve_model("yi-6b-chat", None, hub="modelscope")
    msg = str(e.value)
    assert "01ai/Yi-6B-Chat" in msg and "--model_id_or_path" in msg and "\n" not in msg


def test_hf_hub_is_chosen_by_use_hf(monkeypatch):
    seen = {}

    def fake(model_id, revision=None, allow_patterns=None, **kw):
        seen["id"] = model_id
        raise OSError("offline")

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    monkeypatch.setenv("USE_HF", "1")
    with pytest.raises(PrefswiftError, match="Hugging Face"):
        loader.resolve_model("llama3-8b-instruct", None)
    assert seen["id"] == "meta-llama/Meta-Llama-3-8B-Instruct"


def test_local_dir_with_model_type_never_touches_the_hub(tiny_llama3_dir, monkeypatch):
    monkeypatch.setattr(loader, "download", lambda *a, **k: pytest.fail("hub used"))
    r = loader.resolve_model("llama3-8b-instruct", str(tiny_llama3_dir))
    assert r.path == tiny_llama3_dir.resolve() and r.template == "llama3"


def test_missing_local_path_is_a_clear_error():
    with pytest.raises(PrefswiftError, match="no such directory"):
        loader.resolve_model(None, "./does/not/exist")


def test_dtype_auto_on_cpu_is_fp32():
    assert loader.resolve_dtype("AUTO", "cpu") == torch.float32
    assert loader.resolve_dtype("bf16", "cpu") == torch.bfloat16


def test_flash_attention_falls_back_to_sdpa_with_one_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="prefswift"):
        assert loader.resolve_attention(True, torch.float32, "cpu", None) == "sdpa"
    assert len(caplog.records) == 1 and "using sdpa instead" in caplog.records[0].message
    assert loader.resolve_attention(False, torch.float32, "cpu", None) == "sdpa"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_quantization_without_cuda_or_cpu_backend_is_a_clear_error(monkeypatch):
    import bitsandbytes

    assert loader.quantization_config(4, torch.float32).load_in_4bit  # this machine: bitsandbytes' CPU backend
    monkeypatch.setattr(bitsandbytes, "features", set())              # a build without it
    with pytest.raises(PrefswiftError, match="needs a CUDA GPU, or bitsandbytes with its CPU backend"):
        loader.quantization_config(4, torch.float32)


def test_lora_target_sets(tiny_llama3_dir):
    args = parse_command("dpo", [])
    model = loader.load_model(tiny_llama3_dir, args.model)
    linears = all_linear_names(model)
    assert "lm_head" not in linears and {"q_proj", "down_proj"} <= set(linears)
    assert resolve_target_modules(model, ["ALL"], ["q_proj"]) == sorted(linears)
    assert resolve_target_modules(model, ["DEFAULT"], ["q_proj", "v_proj"]) == ["q_proj", "v_proj"]
    with pytest.raises(ArgumentError, match="c_attn not found"):
        resolve_target_modules(model, ["c_attn"], [])


def test_plugin_registers_a_model_type(tmp_path, tiny_qwen_dir):
    from prefswift.registry.plugins import load_plugins
    from prefswift.registry.models import get_model_spec

    plugin = tmp_path / "my_plugin.py"
    plugin.write_text("from prefswift.registry.models import ModelSpec, register_model\n"
                      "register_model(ModelSpec('my-qwen', None, None, 'chatml'))\n")
    load_plugins(str(plugin))
    assert get_model_spec("my-qwen").template == "chatml"
    r = loader.resolve_model("my-qwen", str(tiny_qwen_dir))
    assert r.template == "chatml"
    with pytest.raises(ArgumentError, match="file not found"):
        load_plugins(str(tmp_path / "nope.py"))


def test_template_is_guessed_from_a_saved_tokenizer(tmp_path, tiny_llama3_dir, tiny_qwen_dir):
    from transformers import AutoTokenizer

    # Qwen2's jinja adds its default system prompt: the built-in that renders the same text is qwen, not chatml
    for src, expected in ((tiny_llama3_dir, "llama3"), (tiny_qwen_dir, "qwen")):
        out = tmp_path / expected
        AutoTokenizer.from_pretrained(str(src)).save_pretrained(out)  # transformers 5: chat_template.jinja
        assert loader.resolve_model(None, str(out)).template == expected


def test_a_model_types_requirements_are_checked_before_download(monkeypatch):
    from prefswift.models import loader
    from prefswift.registry import models as registry
    from prefswift.registry.models import ModelSpec, register_model

    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))  # leave the real registry untouched
    monkeypatch.setattr(loader, "download", lambda *a, **k: pytest.fail("downloaded despite a missing requirement"))
    register_model(ModelSpec("needs-old-transformers", "x/y", "x/y", "llama3", requires=("transformers<4",)),
                   overwrite=True)
    with pytest.raises(PrefswiftError, match=r"needs transformers<4 \(.* is installed\): pip install"):
        loader.resolve_model("needs-old-transformers", None)


def test_offline_means_no_hub_request_and_a_model_type_as_model_name_or_path(monkeypatch, tiny_llama3_dir):
    """HF_HUB_OFFLINE=1: both hubs are asked for their caches only (no 15 s of retries); a registered model type
    typed as --model_name_or_path is that model type."""
    import huggingface_hub
    import modelscope

    calls = []

    def cache_only(*a, **k):
        calls.append(k.get("local_files_only"))
        raise FileNotFoundError("not in the cache")

    monkeypatch.setattr(modelscope, "snapshot_download", cache_only)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", cache_only)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PrefswiftError, match="offline .* not in the modelscope cache"):
        loader.resolve_model(None, "someone/not-cached")
    assert calls and all(calls)  # every call asked for the cache only
    assert loader.resolve_model(None, "tiny-llama3").path == tiny_llama3_dir
