"""`prefswift merge-lora`: fold a LoRA adapter into its base and write a plain model directory.

The output (default `<ckpt_dir>-merged`) holds safetensors shards, the tokenizer, a generation config whose
eos ids include the template's end-of-turn token (none for a reward model: a plain sequence classifier), and an
args.json with `sft_type: full`, so `infer`/`eval` take it with `--ckpt_dir` alone. Everything is written to a
temporary sibling dir which is renamed into place at the end: a crash never leaves a half-written model behind.
"""
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional

import torch

from .arguments import ARGS_FILE, RunArgs
from .errors import ArgumentError
from .models.checkpoint import ModelSource, load_base_with_adapter, resolve_source
from .models.loader import load_tokenizer, parse_device_map
from .models.push import check_push, push_result
from .templates import get_template
from .templates.stops import stop_tokens

logger = logging.getLogger("prefswift")

MAX_SHARD_SIZE = "5GB"


def default_merged_dir(adapter_dir: Path) -> Path:
    return adapter_dir.with_name(adapter_dir.name + "-merged")


def _is_nonempty_dir(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def check_output_dir(output: Path, overwrite: bool) -> None:
    if output.exists() and not output.is_dir():
        raise ArgumentError(f"--output_dir {output}: exists and is a file; choose another path")
    if _is_nonempty_dir(output) and not overwrite:
        raise ArgumentError(f"--output_dir {output} already exists and is not empty; pass --overwrite true to "
                            "replace it, or choose another --output_dir")


def _merge_dtype(source: ModelSource) -> str:
    """AUTO merges in the dtype the base weights are stored in (a bf16 model stays bf16 on disk, even on CPU)."""
    dtype = source.model_args.dtype
    if dtype.upper() != "AUTO":
        return dtype
    cfg = source.base.path / "config.json"
    stored = None
    if cfg.is_file():
        data = json.loads(cfg.read_text(encoding="utf-8"))
        stored = data.get("dtype") or data.get("torch_dtype")
    return stored if stored in ("bfloat16", "float16", "float32") else "float32"


def merged_args(source: ModelSource, output: Path) -> dict:
    flat = dict(source.saved)
    flat.update({
        "sft_type": "full",
        "model_type": source.model_args.model_type,
        "model_id_or_path": str(output),
        "template": source.base.template,
        "adapter_name_or_path": None,
        "quantization_bit": 0,
        "merged_from": str(source.adapter_dir),
        "base_model_id_or_path": str(source.base.path),
    })
    if source.pre_adapter:
        flat["merged_sft_adapter"] = str(source.pre_adapter)
    return flat


def _device_map(merge_device_map: str):
    return None if merge_device_map in (None, "", "cpu") else parse_device_map(merge_device_map)


def load_merged_model(source: ModelSource, merge_device_map: str = "cpu"):
    """The model `source` names with its adapter (if any) folded in, in the dtype its base is stored in."""
    source.model_args.dtype = _merge_dtype(source)
    model = load_base_with_adapter(source, device_map=_device_map(merge_device_map), dequantize=True)
    return model.merge_and_unload() if source.adapter_dir is not None else model


def merge_lora(args: RunArgs, output_dir: Optional[str] = None, *, log=print) -> Path:
    """Merge the adapter named by --ckpt_dir (or --adapter_name_or_path) into its base; returns the output dir."""
    source = resolve_source(args)
    if source.adapter_dir is None:
        raise ArgumentError(f"{source.base.path} is already a full model (no adapter_config.json): nothing to merge")
    output = Path(output_dir).expanduser().resolve() if output_dir else default_merged_dir(source.adapter_dir)
    if output == source.adapter_dir or output == source.base.path:
        raise ArgumentError(f"--output_dir {output} is the adapter or base dir itself; choose a new directory")
    check_output_dir(output, args.infer.overwrite)
    if args.push is not None:
        check_push(args.push.push_to_hub, args.push.hub_model_id, args.model.hub, args.model.hub_token)
    if source.trained_bits:
        logger.warning("this adapter was trained on a %d-bit quantized base; it is merged into the de-quantized "
                       "(%s) base weights, so the merged model can differ slightly from the model seen in training",
                       source.trained_bits, _merge_dtype(source))
    source.model_args.dtype = _merge_dtype(source)
    log(f"[prefswift] merging {source.describe()} (dtype {source.model_args.dtype}, "
        f"device {args.infer.merge_device_map})")
    merged = load_merged_model(source, args.infer.merge_device_map)
    tokenizer = load_tokenizer(source.tokenizer_dir, source.model_args.trust_remote_code)
    generates = source.head != "sequence_classification"  # a reward model has no generation config
    template = get_template(source.base.template, tokenizer, str(source.base.path)) if generates else None
    eos_ids = stop_tokens(tokenizer, template, merged)[0] if generates else []

    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.tmp-", dir=output.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the result should look like any other directory
    try:
        if generates:
            gen = merged.generation_config
            gen.eos_token_id = eos_ids if len(eos_ids) > 1 else eos_ids[0]
            if gen.pad_token_id is None:
                gen.pad_token_id = tokenizer.pad_token_id
        with torch.no_grad():
            merged.save_pretrained(str(tmp), max_shard_size=MAX_SHARD_SIZE)
        tokenizer.save_pretrained(str(tmp))
        (tmp / ARGS_FILE).write_text(json.dumps(merged_args(source, output), indent=2, ensure_ascii=False) + "\n",
                                     encoding="utf-8")
        replace_dir(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"[prefswift] merged model written to {output}")
    push_result(args, output, log)
    return output


def replace_dir(tmp: Path, output: Path) -> None:
    """Move the finished tmp dir to `output`; an existing output (allowed by --overwrite) is removed only after."""
    old = None
    if output.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{output.name}.old-", dir=output.parent))
        os.replace(output, old / output.name)
    try:
        os.replace(tmp, output)
    except OSError:
        if old is not None:  # put the old one back
            os.replace(old / output.name, output)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


__all__ = ["merge_lora", "load_merged_model", "replace_dir", "default_merged_dir", "check_output_dir", "merged_args"]
