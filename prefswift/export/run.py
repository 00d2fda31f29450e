"""`prefswift export --ckpt_dir RUN --to gguf|ollama|gguf-lora|safetensors`: a trained model for local runtimes.

    gguf         one GGUF file (adapters merged first), tokenizer + training chat template in its metadata
    ollama       the same GGUF plus a Modelfile (TEMPLATE/SYSTEM/PARAMETER stop as training) and the create command
    gguf-lora    the LoRA adapter alone as a GGUF adapter (llama.cpp --lora, Ollama ADAPTER)
    safetensors  --quant bnb-4bit|bnb-8bit: bitsandbytes-quantized safetensors that plain transformers loads

Every refusal comes before the destination is touched; the export is staged in a hidden sibling folder and renamed
into place at the end (`destination.staging_dir`).
"""
import json
import logging
from pathlib import Path

from ..arguments import RunArgs
from ..arguments.fields import LLAMA_QUANTIZE_TYPES
from ..errors import ArgumentError
from ..merge import load_merged_model
from ..models.checkpoint import check_generates, resolve_source
from ..models.loader import load_tokenizer
from ..models.push import check_push, push_result
from ..templates import get_template
from ..templates.check import check_template
from ..templates.jinja import runtime_jinja
from ..templates.ollama import modelfile
from ..templates.stops import stop_tokens
from .destination import check_destination, save_args, staging_dir
from .gguf_arch import family_of
from .gguf_model import write_gguf
from .gguf_tokenizer import gguf_vocab

MODELFILE = "Modelfile"


def gguf_name(outtype: str) -> str:
    return f"model-{outtype}.gguf"


def export_name(args: RunArgs, source) -> Path:
    """The folder the user named (a run dir, a checkpoint, an adapter or a model): what the export is called after."""
    typed = args.infer.ckpt_dir or args.model.adapter_name_or_path
    path = Path(typed).expanduser().resolve() if typed else Path(source.base.path)
    if path.name.startswith("checkpoint-"):
        return path.parent.parent / f"{path.parent.name}-{path.name}"
    return path.parent if path.name in ("adapter", "final") else path


def default_destination(args: RunArgs, source, to: str) -> Path:
    """<the folder named>-<to>, next to it: `output/quickstart` -> `output/quickstart-gguf`."""
    base = export_name(args, source)
    suffix = to if to != "safetensors" else args.export.quant
    return base.with_name(base.name + f"-{suffix}")


def _targets(args: RunArgs):
    e = args.export
    to = e.to
    if e.quant and "to" not in args.explicit:
        to = "safetensors"
    if e.quant and to != "safetensors":
        raise ArgumentError(f"--quant {e.quant} writes safetensors; drop --to {to} (or pass --to safetensors)")
    if to == "safetensors" and not e.quant:
        raise ArgumentError("--to safetensors needs --quant bnb-4bit or bnb-8bit (an unquantized model is what "
                            "prefswift merge-lora writes)")
    if "outtype" in args.explicit and to in ("safetensors",):
        raise ArgumentError(f"--outtype is a GGUF tensor type; --to {to} does not take it")
    if to == "gguf-lora" and e.outtype not in ("f32", "f16", "bf16", "q8_0"):
        raise ArgumentError(f"--to gguf-lora --outtype {e.outtype}: a GGUF LoRA is written as f32, f16, bf16 or q8_0 "
                            "(llama.cpp applies it to a base GGUF of any type)")
    return to


def export(args: RunArgs, log=print) -> Path:
    logging.getLogger("gguf").setLevel(logging.WARNING)  # the writer's per-file INFO lines
    to = _targets(args)
    outtype = args.export.outtype

    source = resolve_source(args)
    check_generates(source, "export")
    dest = Path(args.export.export_dir).expanduser().resolve() if args.export.export_dir else \
        default_destination(args, source, to)
    check_destination(dest, args.infer.overwrite)
    if args.push is not None:
        check_push(args.push.push_to_hub, args.push.hub_model_id, args.model.hub, args.model.hub_token)
    quantize_later = outtype in LLAMA_QUANTIZE_TYPES
    if to == "gguf-lora":
        from .gguf_lora import export_gguf_lora

        export_gguf_lora(args, source, dest, outtype, log)
    elif to == "safetensors":
        from .bnb import export_bnb

        export_bnb(args, source, dest, log)
    else:
        _export_gguf(args, source, dest, to, "f16" if quantize_later else outtype, log)
    if quantize_later and to in ("gguf", "ollama"):
        file = dest / gguf_name("f16")
        then = f" (then point FROM in {MODELFILE} at it)" if to == "ollama" else ""
        log(f"[export] {outtype} is a K-quant that needs llama.cpp's quantizer; run: llama-quantize {file} "
            f"{dest / gguf_name(outtype)} {outtype.upper()}{then}")
    push_result(args, dest, log)
    return dest


def _export_gguf(args: RunArgs, source, dest: Path, to: str, outtype: str, log) -> None:
    tokenizer = load_tokenizer(source.tokenizer_dir)
    template = get_template(source.base.template, tokenizer, str(source.base.path))
    if to == "ollama" and template.spec.name == "auto":
        raise ArgumentError(f"export --to ollama: {source.base.path} trains with its own jinja chat template "
                            "(--template auto), which a Modelfile TEMPLATE cannot carry: export --to gguf (its "
                            "metadata holds that jinja) and write the Modelfile's TEMPLATE by hand, or train with a "
                            "built-in --template")
    config_path = Path(source.base.path) / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    where = str(source.ckpt_dir or source.base.path)
    family_of(config, where)  # refusals that need no weights come before loading them
    gguf_vocab(tokenizer, int(config["vocab_size"]), where)
    problem = check_template(runtime_jinja(template, tokenizer), tokenizer, template)
    if problem:  # the generated jinja must reproduce training: a bug here would ship garbage answers
        raise ArgumentError(f"export: {problem}")
    log(f"[export] loading {source.describe()}{' (merging the adapter)' if source.adapter_dir else ''}")
    model = load_merged_model(source, args.infer.merge_device_map)
    eos_ids = stop_tokens(tokenizer, template, model)[0]
    name = export_name(args, source).name
    with staging_dir(dest) as tmp:
        counts = write_gguf(tmp / gguf_name(outtype), model, tokenizer, template, config, outtype, eos_ids, name, where)
        if to == "ollama":
            (tmp / MODELFILE).write_text(modelfile(gguf_name(outtype), template, tokenizer), encoding="utf-8")
        save_args(args, tmp, source, to, outtype)
    types = ", ".join(f"{n} {t}" for t, n in sorted(counts.items()))
    log(f"[export] {dest / gguf_name(outtype)} ({types} tensors; template {template.name} in its metadata)")
    if to == "ollama":
        log(f"[export] {dest / MODELFILE} written; create the model with: cd {dest} && ollama create "
            f"{_ollama_name(name)} -f {MODELFILE}")


def _ollama_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in name.lower()).strip("-.")
    return cleaned or "prefswift-model"


__all__ = ["export", "gguf_name", "default_destination"]
