"""Shared by merge-lora, infer and eval: find "checkpoint or model" and load it (base + adapters + tokenizer).

What can be loaded (`resolve_source`):
  * `--ckpt_dir X` where X is a LoRA adapter (adapter_config.json): the base model comes from X's args.json
    (or the parent run's), else from adapter_config.json's base_model_name_or_path; CLI flags override both.
  * `--ckpt_dir X` where X is a full model (config.json): a merged dir or a full fine-tuning result.
  * `--ckpt_dir RUN` where RUN is a training run dir: its `adapter/` (LoRA) or `final/` (full) is used.
  * `--model_type T` / `--model_id_or_path M`, optionally with `--adapter_name_or_path A` (LLaMA-Factory's form).
A run trained on top of an SFT adapter (`--adapter_name_or_path` at training time) is rebuilt the same way:
the SFT adapter is merged into the base first, then the checkpoint's adapter is applied.
"""
import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional

import torch

from ..arguments import RunArgs, load_args_json, section_from_flat
from ..arguments.algorithms import model_head
from ..arguments.fields import ModelArguments
from ..errors import ArgumentError
from ..registry.plugins import load_plugins
from ..templates import Template, get_template
from .loader import ResolvedModel, hub_kwargs, load_model, load_tokenizer, parse_device_map, resolve_model

logger = logging.getLogger("prefswift")

ADAPTER_CONFIG = "adapter_config.json"
MODEL_CONFIG = "config.json"


@dataclass
class ModelSource:
    """Where the weights of "a checkpoint or a model" come from, before loading anything."""

    base: ResolvedModel                     # base weights dir (or the full model dir itself) + spec + template
    model_args: ModelArguments              # effective model arguments (saved args.json, then CLI overrides)
    adapter_dir: Optional[Path] = None      # the LoRA adapter to apply (None: a full model)
    pre_adapter: Optional[str] = None       # an SFT adapter merged into the base before `adapter_dir`
    ckpt_dir: Optional[Path] = None         # what the user pointed at (results are written under it)
    saved: Dict = field(default_factory=dict)  # args.json of the checkpoint / run ({} if none)
    trained_bits: int = 0                   # quantization_bit the adapter was trained with (QLoRA)

    @property
    def head(self) -> str:
        """The model the checkpoint holds: "sequence_classification" for a reward model (`prefswift rm`, read from
        args.json's command; a merged dir keeps it), else "causal_lm"."""
        return model_head(self.saved.get("command"))

    @property
    def tokenizer_dir(self) -> Path:
        for d in (self.adapter_dir, self.ckpt_dir):
            if d is not None and (d / "tokenizer_config.json").is_file():
                return d
        return self.base.path

    def describe(self) -> str:
        if self.adapter_dir is None:
            return f"model {self.base.path}"
        pre = f" (+ merged {self.pre_adapter})" if self.pre_adapter else ""
        return f"adapter {self.adapter_dir} on base {self.base.path}{pre}"


@dataclass
class LoadedModel:
    model: object
    tokenizer: object
    template: Template
    source: ModelSource


def _model_fields() -> set:
    return {f.name for f in dataclasses.fields(ModelArguments)}


def _effective_model_args(cli: ModelArguments, explicit, saved: Dict) -> ModelArguments:
    """Saved model arguments with the flags typed on this command line on top. Placement (device_map) is never
    inherited: a training run's GPU layout says nothing about where this command runs."""
    base = section_from_flat(ModelArguments, saved) if saved else ModelArguments()
    overrides = {name: getattr(cli, name) for name in _model_fields() if name in explicit}
    values = dataclasses.asdict(base)
    values.update(overrides)
    if "device_map" not in explicit:
        values["device_map"] = None
    return ModelArguments(**values)


def _pick_in_run_dir(path: Path) -> Path:
    """A run dir given as --ckpt_dir: use its final adapter/ or final/ model."""
    for sub in ("adapter", "final"):
        if (path / sub / ADAPTER_CONFIG).is_file() or (path / sub / MODEL_CONFIG).is_file():
            logger.info("--ckpt_dir %s is a run dir: using %s", path, path / sub)
            return path / sub
    return path


def resolve_source(args: RunArgs) -> ModelSource:
    """Work out base model, adapter and template from --ckpt_dir / model flags (loads nothing big)."""
    m = args.model
    explicit = args.explicit
    ckpt = args.infer.ckpt_dir if args.infer is not None else None
    adapter: Optional[Path] = None
    pre_adapter = None
    if ckpt:
        ckpt_dir = Path(ckpt).expanduser()
        if not ckpt_dir.is_dir():
            raise ArgumentError(f"--ckpt_dir {ckpt}: no such directory")
        ckpt_dir = _pick_in_run_dir(ckpt_dir.resolve())
        if (ckpt_dir / ADAPTER_CONFIG).is_file():
            adapter = ckpt_dir
        elif not (ckpt_dir / MODEL_CONFIG).is_file():
            raise ArgumentError(f"--ckpt_dir {ckpt}: neither a LoRA adapter ({ADAPTER_CONFIG}) nor a model "
                                f"({MODEL_CONFIG}); point it at a checkpoint-N, adapter, final or -merged dir")
    elif m.adapter_name_or_path:
        from .lineage import start_adapter

        ckpt_dir = adapter = start_adapter(m.adapter_name_or_path)[0]  # an adapter dir, or the run dir of one
    else:
        ckpt_dir = None
    saved = (load_args_json(ckpt_dir) or {}) if ckpt_dir is not None else {}
    if saved.get("custom_register_path") and "custom_register_path" not in explicit:
        load_plugins(saved["custom_register_path"])  # the run's own model types and templates
    margs = _effective_model_args(m, explicit, saved)
    if adapter is not None and "model_id_or_path" not in explicit:
        _check_saved_base_path(ckpt_dir, saved.get("model_id_or_path"))
    if ckpt and "adapter_name_or_path" in explicit:
        pre_adapter = m.adapter_name_or_path          # --ckpt_dir + --adapter_name_or_path: the SFT adapter
    elif adapter is not None and not saved.get("continue_adapter"):  # (continued: the adapter holds the SFT one)
        pre_adapter = saved.get("adapter_name_or_path")  # how the run was trained: on top of this (SFT) adapter
    if pre_adapter and Path(pre_adapter).expanduser().resolve() == adapter:
        pre_adapter = None
    margs.adapter_name_or_path = None
    trained_bits = int(saved.get("quantization_bit") or 0) if adapter is not None else 0
    template = margs.template
    if adapter is not None:
        if not (margs.model_type or margs.model_id_or_path):
            margs.model_id_or_path = _base_from_adapter_config(adapter)
        base = resolve_model(margs.model_type, margs.model_id_or_path, **hub_kwargs(margs), template=template)
    elif ckpt_dir is not None:                        # a full model dir: merged or full fine-tuning
        margs.model_id_or_path = str(ckpt_dir)
        base = resolve_model(margs.model_type, str(ckpt_dir), template=template,
                             trust_remote_code=bool(getattr(margs, "trust_remote_code", False)))
    else:
        base = resolve_model(margs.model_type, margs.model_id_or_path, **hub_kwargs(margs), template=template)
    return ModelSource(base=base, model_args=margs, adapter_dir=adapter, pre_adapter=pre_adapter, ckpt_dir=ckpt_dir,
                       saved=saved, trained_bits=trained_bits)


def check_generates(source: ModelSource, what: str) -> None:
    """A reward model (`prefswift rm`) scores sequences and writes no text: refused by the commands that generate."""
    if source.head == "sequence_classification":
        raise ArgumentError(f"{what}: {source.ckpt_dir or source.base.path} is a reward model (prefswift rm), which "
                            "scores text and generates none; measure it with prefswift eval --ckpt_dir (pairwise "
                            "accuracy)")


def _check_saved_base_path(ckpt_dir: Path, saved_path: Optional[str]) -> None:
    if saved_path and saved_path.startswith((".", "/", "~")) and not Path(saved_path).expanduser().is_dir():
        raise ArgumentError(f"{ckpt_dir}: its args.json names the base model {saved_path}, which is not a directory "
                            "here; pass --model_id_or_path with the base model's current location")


def _base_from_adapter_config(adapter: Path) -> str:
    import json

    base = json.loads((adapter / ADAPTER_CONFIG).read_text(encoding="utf-8")).get("base_model_name_or_path")
    if not base:
        raise ArgumentError(f"{adapter}: no args.json and no base_model_name_or_path in {ADAPTER_CONFIG}; "
                            "pass --model_type or --model_id_or_path for the base model")
    return base


def load_base_with_adapter(source: ModelSource, *, device_map=None, dequantize: bool = False):
    """The base model (+ pre-adapter merged) with the adapter attached (a PeftModel), or the full model."""
    if source.adapter_dir is not None:
        check_finite_adapter(source.adapter_dir)
    margs = dataclasses.replace(source.model_args)
    if margs.quantization_bit and (dequantize or not torch.cuda.is_available()):
        margs.quantization_bit = 0
    pad = load_tokenizer(source.tokenizer_dir).pad_token_id if source.head == "sequence_classification" else None
    model = load_model(source.base.path, margs, spec=source.base.spec, device_map=device_map, trainable=False,
                       head=source.head, pad_token_id=pad)
    if source.pre_adapter:
        from .lora import merge_adapter_into_base

        model = merge_adapter_into_base(model, source.pre_adapter)
        logger.info("merged the SFT adapter %s into the base first", source.pre_adapter)
    if source.adapter_dir is not None:
        from .lora import peft_from_pretrained

        try:
            model = peft_from_pretrained(model, str(source.adapter_dir), is_trainable=False)
        except (ValueError, OSError, RuntimeError) as e:
            raise ArgumentError(f"{source.adapter_dir}: cannot apply this adapter to {source.base.path} "
                                f"({str(e).splitlines()[0][:200]}); check --model_type/--model_id_or_path") from None
    model.eval()
    return model


def check_finite_adapter(adapter_dir: Path) -> None:
    """An adapter whose weights hold nan/inf (saved by a broken run) is refused in one line: it would answer with
    garbage (or merge it into the base) without a word."""
    from safetensors import safe_open

    path = Path(adapter_dir) / "adapter_model.safetensors"
    if not path.is_file():
        return
    with safe_open(str(path), framework="pt") as f:
        for name in f.keys():
            tensor = f.get_tensor(name)
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise ArgumentError(f"{adapter_dir}: the adapter's weights are not finite (nan/inf in {name}): the run "
                                    "that saved it broke down (learning rate, fp16 overflow, bad data rows); retrain "
                                    "it or use an earlier checkpoint")


def inference_device_map(source: ModelSource):
    """--device_map if given, else the GPU(s) when there are any (the loader's default would be the CPU)."""
    if source.model_args.device_map:
        return parse_device_map(source.model_args.device_map)
    return "auto" if torch.cuda.is_available() else None


def source_template(source: ModelSource, tokenizer=None) -> Template:
    """The template `source` was trained with. `auto` (the model's own jinja) needs its tokenizer: `tokenizer`, or
    the source's own, loaded here."""
    if tokenizer is None and str(source.base.template).lower() == "auto":
        tokenizer = load_tokenizer(source.tokenizer_dir, source.model_args.trust_remote_code)
    return get_template(source.base.template, tokenizer, str(source.base.path))


def load_for_inference(source: ModelSource, *, device_map="default") -> LoadedModel:
    if device_map == "default":
        device_map = inference_device_map(source)
    if source.trained_bits and not torch.cuda.is_available():
        logger.warning("the adapter was trained on a %d-bit base; without a GPU it runs on the full-precision base",
                       source.trained_bits)
    model = load_base_with_adapter(source, device_map=device_map)
    tokenizer = load_tokenizer(source.tokenizer_dir, source.model_args.trust_remote_code)
    return LoadedModel(model=model, tokenizer=tokenizer, template=source_template(source, tokenizer), source=source)


__all__ = ["ModelSource", "LoadedModel", "resolve_source", "check_generates", "load_base_with_adapter",
           "load_for_inference", "source_template",
           "inference_device_map", "ADAPTER_CONFIG", "MODEL_CONFIG"]
