"""`prefswift export --quant bnb-4bit|bnb-8bit`: the merged model as bitsandbytes-quantized safetensors.

The merged model is saved to a scratch folder, loaded back by transformers with a `BitsAndBytesConfig` (NF4 with
double quantization, or LLM.int8) and saved with `save_pretrained`: the result is a normal model folder whose
config.json carries the quantization config, so `AutoModelForCausalLM.from_pretrained(dir)` loads it as it is
(bitsandbytes installed; on CPU its multi-backend build). Tokenizer, generation config (the template's stop ids)
and args.json go beside it, so `prefswift infer --ckpt_dir` takes it too.
"""
import json
import shutil
import tempfile
from pathlib import Path

import torch

from ..arguments import ARGS_FILE
from ..errors import PrefswiftError
from ..merge import load_merged_model, merged_args
from ..models.checkpoint import ModelSource
from ..models.loader import load_tokenizer, quantization_config, quantization_problem
from ..templates import get_template
from ..templates.stops import stop_tokens
from .destination import staging_dir


def check_bnb(quant: str) -> None:
    why = quantization_problem()
    if why:
        raise PrefswiftError(f"--quant {quant} {why}")


def export_bnb(args, source: ModelSource, dest: Path, log) -> None:
    from transformers import AutoModelForCausalLM

    quant = args.export.quant
    check_bnb(quant)
    bits = 4 if quant == "bnb-4bit" else 8
    log(f"[export] loading {source.describe()}{' (merging the adapter)' if source.adapter_dir else ''}")
    merged = load_merged_model(source, args.infer.merge_device_map)
    tokenizer = load_tokenizer(source.tokenizer_dir)
    eos_ids = stop_tokens(tokenizer, get_template(source.base.template, tokenizer, str(source.base.path)), merged)[0]
    from .gguf_model import check_finite, float_state

    check_finite(float_state(merged), str(source.ckpt_dir or source.base.path))
    scratch = Path(tempfile.mkdtemp(prefix=".prefswift-export-", dir=dest.parent if dest.parent.is_dir() else None))
    try:
        merged.save_pretrained(str(scratch))
        dtype = merged.dtype if merged.dtype != torch.float16 else torch.float32
        qcfg = quantization_config(bits, dtype)
        model = AutoModelForCausalLM.from_pretrained(str(scratch), quantization_config=qcfg, dtype=dtype,
                                                     device_map="cuda" if torch.cuda.is_available() else "cpu")
        with staging_dir(dest) as tmp:
            gen = model.generation_config
            gen.eos_token_id = eos_ids if len(eos_ids) > 1 else eos_ids[0]
            if gen.pad_token_id is None:
                gen.pad_token_id = tokenizer.pad_token_id
            model.save_pretrained(str(tmp))
            tokenizer.save_pretrained(str(tmp))
            flat = merged_args(source, dest)
            flat.update({"command": "export", "to": "safetensors", "quant": quant, "quantization_bit": 0,
                         "exported_from": str(source.ckpt_dir or source.base.path)})
            (tmp / ARGS_FILE).write_text(json.dumps(flat, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log(f"[export] {dest}: {quant} safetensors (loads with AutoModelForCausalLM.from_pretrained; needs bitsandbytes)")


__all__ = ["export_bnb", "check_bnb"]
