"""`prefswift export --to gguf-lora`: the LoRA adapter alone as a GGUF adapter, for `llama-cli -m base.gguf
--lora adapter.gguf` or an Ollama Modelfile's `ADAPTER`.

llama.cpp's adapter format: `general.type = adapter`, `adapter.type = lora`, `adapter.lora.alpha`, and for every
adapted weight `<gguf name>.lora_a` (peft's lora_A, [rank, in]) and `<gguf name>.lora_b` (lora_B, [out, rank]);
llama.cpp adds (alpha / rank) * B @ A to the weight. Values are transformed as the base's weights are (the rows of
q/k's B reordered for llama's rope). rsLoRA (scale alpha / sqrt(rank)) is written as the alpha giving that scale.
Refused in one line: DoRA, per-module ranks or alphas, adapted embeddings or heads, an SFT adapter under the run's.
"""
import json
import math
from pathlib import Path

import numpy as np

from ..errors import ArgumentError
from .destination import save_args, staging_dir
from .gguf_arch import family_of, tensor_transform
from .gguf_file import GGUFOut, map_state_dict

PEFT_PREFIX = "base_model.model."
LORA_FILE = "adapter.gguf"


def _adapter_config(adapter: Path) -> dict:
    config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    problems = []
    if config.get("use_dora"):
        problems.append("DoRA")
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        problems.append("per-module ranks or alphas")
    if config.get("modules_to_save"):
        problems.append(f"fully trained modules ({', '.join(config['modules_to_save'])})")
    if problems:
        raise ArgumentError(f"{adapter}: a GGUF LoRA cannot hold {', '.join(problems)}; export --to gguf "
                            "(merged) instead")
    return config


def adapter_tensors(adapter: Path):
    """{module name: (A [r, in], B [out, r])} as float32 arrays."""
    from safetensors.numpy import load_file

    path = adapter / "adapter_model.safetensors"
    if not path.is_file():
        raise ArgumentError(f"{adapter}: no adapter_model.safetensors (save the adapter as safetensors)")
    pairs = {}
    for key, value in load_file(str(path)).items():
        name = key[len(PEFT_PREFIX):] if key.startswith(PEFT_PREFIX) else key
        for part, slot in ((".lora_A.weight", 0), (".lora_B.weight", 1)):
            if name.endswith(part):
                pairs.setdefault(name[:-len(part)], [None, None])[slot] = value.astype(np.float32)
    return {k: tuple(v) for k, v in pairs.items()}


def export_gguf_lora(args, source, dest: Path, outtype: str, log) -> None:
    where = str(source.adapter_dir or source.ckpt_dir or source.base.path)
    if source.adapter_dir is None:
        raise ArgumentError(f"{where} is a full model, not a LoRA adapter; export it with --to gguf")
    if source.pre_adapter:
        raise ArgumentError(f"{where} was trained on top of the SFT adapter {source.pre_adapter}; one GGUF LoRA "
                            "cannot hold both — export --to gguf (merged) instead")
    config = json.loads((Path(source.base.path) / "config.json").read_text(encoding="utf-8"))
    _, family = family_of(config, where)
    lora = _adapter_config(source.adapter_dir)
    rank, alpha = int(lora["r"]), float(lora["lora_alpha"])
    if lora.get("use_rslora"):
        alpha = alpha * math.sqrt(rank)  # rsLoRA scales by alpha / sqrt(r): the alpha that gives it over r
    pairs = adapter_tensors(source.adapter_dir)
    for module, (a, b) in pairs.items():
        if a is None or b is None or not np.isfinite(a).all() or not np.isfinite(b).all():
            raise ArgumentError(f"{where}: the adapter's {module} is incomplete or not finite; not exported")
    transform = tensor_transform(family, config)
    state = {f"{m}.weight": b for m, (_, b) in pairs.items()}
    mapped, unmapped = map_state_dict(state, family.arch, int(config["num_hidden_layers"]), transform)
    if unmapped or any(n.startswith(("token_embd", "output.")) for n, _, _ in mapped):
        bad = unmapped[0] if unmapped else next(h for n, h, _ in mapped if n.startswith(("token_embd", "output.")))
        raise ArgumentError(f"{where}: the adapter adapts {bad}, which a GGUF LoRA for this family cannot hold; "
                            "export --to gguf (merged) instead")
    with staging_dir(dest) as tmp:
        out = GGUFOut(tmp / LORA_FILE, family.arch)
        w = out.writer
        w.add_string("general.type", "adapter")
        w.add_string("adapter.type", "lora")
        w.add_float32("adapter.lora.alpha", alpha)
        w.add_string("general.generator", "prefswift")
        for gguf_name, hf_name, b in mapped:
            a = pairs[hf_name[:-len(".weight")]][0]
            out.add(f"{gguf_name}.lora_a", a, outtype)
            out.add(f"{gguf_name}.lora_b", np.ascontiguousarray(b), outtype)
        out.finish()
        save_args(args, tmp, source, "gguf-lora", outtype)
    log(f"[export] {dest / LORA_FILE}: LoRA of {len(mapped)} weights (rank {rank}, alpha {alpha:g}); use it on a "
        f"GGUF of the base model {source.base.path} (llama-cli -m BASE.gguf --lora {dest / LORA_FILE}, or "
        "ADAPTER in an Ollama Modelfile)")


__all__ = ["export_gguf_lora", "adapter_tensors", "LORA_FILE"]
