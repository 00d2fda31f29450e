"""Resolve where a model's weights are (local dir | built-in tiny | ModelScope | Hugging Face) and load them.

Every model, built-in tiny ones included, goes through `load_model` / `load_tokenizer` from a directory on disk.
"""
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from ..distributed.env import dist_env
from ..errors import PrefswiftError
from ..registry.hubs import HUB_NAMES, which_hub
from ..registry.models import ModelSpec, find_model_spec, get_model_spec

logger = logging.getLogger("prefswift")

DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16,
          "fp32": torch.float32, "float32": torch.float32}


@dataclass
class ResolvedModel:
    path: Path
    spec: Optional[ModelSpec]
    template: str


TOKENIZER_FILES = ["*.json", "*.model", "*.txt", "*.tiktoken", "*.jinja", "*.py"]
# never needed when the repo has safetensors: PyTorch pickles, the original (Meta) checkpoints, other formats
SKIP_WHEN_SAFETENSORS = ["*.bin", "*.pth", "*.pt", "original/*", "consolidated*"]
NEVER_NEEDED = ["*.gguf", "*.onnx", "onnx/*", "*.msgpack", "*.h5", "*.ot", "*.zip"]


def _has_weights(path: Path) -> bool:
    return any(path.glob("*.safetensors")) or any(path.glob("*.safetensors.index.json"))


def _hub_error(e: Exception, model_id: str, hub: str) -> PrefswiftError:
    """One line per failure kind: login for 401/403, the closest registered ids for 404, offline otherwise."""
    from ..errors import did_you_mean
    from ..registry.hub_client import first_line, refusal_line
    from ..registry.models import list_models

    def closest() -> str:
        specs = list_models()
        ids = [i for i in ((s.hf_id if hub == "hf" else s.ms_id) for s in specs) if i]
        return did_you_mean(model_id, ids) or did_you_mean(model_id.split("/")[-1], [s.model_type for s in specs])

    line = refusal_line(e, hub, f"model {model_id!r}", closest, "check the id (`prefswift list models` shows the "
                        "registered ones) or the --model_revision")
    if line:
        return PrefswiftError(line)
    return PrefswiftError(
        f"could not download model {model_id!r} from {HUB_NAMES[hub]} "
        f"({first_line(e)}); if you are offline, download it elsewhere and pass --model_id_or_path /path/to/dir"
        + ("" if hub == "hf" else ", or set USE_HF=1 to use Hugging Face"))


def download(model_id: str, revision: Optional[str], hub: str, tokenizer_only: bool = False, *,
             token: Optional[str] = None, check_latest: bool = True) -> Path:
    """Download (or find in the local hub cache) a snapshot; a clear error when the hub cannot be reached.

    check_latest=False: a snapshot already in the hub client's cache is used without asking the hub. When the hub
    cannot be reached, a cached snapshot is used too (with a warning). Pickled weights (`*.bin`, `*.pth`,
    `original/`, `consolidated*`) are skipped when the repo has safetensors."""
    from ..registry.hub_client import failure_kind, first_line, mark_unreachable, snapshot

    hub = which_hub(hub)
    kw = dict(revision=revision, token=token)
    if tokenizer_only:
        kw["allow_patterns"] = TOKENIZER_FILES
        first = kw
    else:
        first = dict(kw, ignore_patterns=SKIP_WHEN_SAFETENSORS + NEVER_NEEDED)

    def cached() -> Optional[Path]:
        """The snapshot in the client's cache when it is complete, else None."""
        try:
            path = Path(snapshot(hub, model_id, local_only=True, **first))
        except Exception:  # noqa: BLE001 - not cached
            return None
        complete = (path / "config.json").is_file() and (tokenizer_only or _has_weights(path) or
                                                        any(path.glob("*.bin")) or any(path.glob("*.pth")))
        return path if complete else None

    if not check_latest and (path := cached()) is not None:
        return path
    try:
        path = Path(snapshot(hub, model_id, **first))
        if not tokenizer_only and not _has_weights(path):  # no safetensors: the pickled weights are the weights
            path = Path(snapshot(hub, model_id, ignore_patterns=NEVER_NEEDED, **kw))
        return path
    except Exception as e:  # network, auth or missing repo: one line each
        if failure_kind(e) == "network":
            mark_unreachable(hub)
            path = cached()
            if path is not None:
                logger.warning("%s is unreachable (%s); using the cached snapshot of %s", HUB_NAMES[hub],
                               first_line(e, 120), model_id)
                return path
        raise _hub_error(e, model_id, hub) from None


def hub_kwargs(model_args) -> dict:
    """The download settings of a ModelArguments for `resolve_model`: revision, hub, token, cache policy."""
    return dict(revision=model_args.model_revision, hub=model_args.hub, token=model_args.hub_token,
                check_latest=model_args.check_model_is_latest,
                trust_remote_code=bool(getattr(model_args, "trust_remote_code", False)))


def resolve_model(model_type: Optional[str], model_id_or_path: Optional[str], *, revision=None, hub="auto",
                  template: Optional[str] = None, tokenizer_only: bool = False, token: Optional[str] = None,
                  check_latest: bool = True, trust_remote_code: bool = False) -> ResolvedModel:
    spec = get_model_spec(model_type) if model_type else None
    if spec is None and model_id_or_path and "/" not in model_id_or_path and \
            not Path(model_id_or_path).expanduser().exists():
        spec = find_model_spec(model_id_or_path)  # a registered model type given as --model_name_or_path
        if spec is not None:
            model_id_or_path = None
    if spec is not None:
        check_requirements(spec)
        if spec.trust_remote_code and not trust_remote_code:
            raise PrefswiftError(f"model type {spec.model_type} runs Python code from its model repo "
                                 f"({spec.architecture}); read it, then pass --trust_remote_code true")
    if model_id_or_path and Path(model_id_or_path).expanduser().is_dir():
        path = Path(model_id_or_path).expanduser().resolve()
    elif model_id_or_path and (model_id_or_path.startswith((".", "/", "~")) or os.sep in model_id_or_path
                               and model_id_or_path.count("/") != 1):
        raise PrefswiftError(f"--model_id_or_path {model_id_or_path}: no such directory")
    elif spec is not None and spec.builtin and not model_id_or_path:
        from .tiny import ensure_tiny_model

        path = ensure_tiny_model(spec.model_type)
    elif model_id_or_path or spec is not None:
        model_id = model_id_or_path or (spec.hf_id if which_hub(hub) == "hf" else spec.ms_id)
        if not model_id:
            raise PrefswiftError(f"model type {spec.model_type} has no id on hub {which_hub(hub)}")
        path = download(model_id, revision, hub, tokenizer_only, token=token, check_latest=check_latest)
    else:
        raise PrefswiftError("say which model: --model_type NAME (see `prefswift list models`) "
                             "or --model_id_or_path DIR")
    if not trust_remote_code and needs_remote_code(path):
        raise PrefswiftError(f"{path}: its config.json maps the model to Python code shipped in the directory "
                             "(auto_map); read it, then pass --trust_remote_code true")
    tmpl = template or (spec.template if spec else None) or guess_template(path)
    return ResolvedModel(path=path, spec=spec, template=tmpl)


def needs_remote_code(path: Path) -> bool:
    """True when the directory's config.json loads a model class from the repo's own Python files (auto_map)."""
    import json

    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and "AutoModelForCausalLM" in (config.get("auto_map") or {})


def check_requirements(spec: ModelSpec) -> None:
    """A model type's `requires` (e.g. transformers>=4.51 for Qwen3) against what is installed, before downloading."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import Requirement

    for text in spec.requires:
        req = Requirement(text)
        try:
            installed = version(req.name)
        except PackageNotFoundError:
            installed = None
        if installed is None or not req.specifier.contains(installed, prereleases=True):
            have = f"{installed} is installed" if installed else "it is not installed"
            raise PrefswiftError(f"model type {spec.model_type} needs {text} ({have}): pip install '{text}'")


def guess_template(path: Path) -> str:
    """For a local dir without --model_type/--template: the built-in template that renders like the model's own chat
    template, else `auto` (that chat template itself); a clear error when the model ships none."""
    from ..templates.detect import detect_template

    found = detect_template(path)
    if found is None:
        raise PrefswiftError(f"{path}: the tokenizer has no chat template, so prefswift cannot tell how to format a "
                             "conversation; pass --template NAME (see `prefswift list templates`; `default` for a "
                             "base model) or --model_type")
    return found


def parse_device_map(value: Optional[str]):
    """--device_map: None, a name (auto, balanced, cpu, ...) or a JSON object such as '{"": "cpu"}'."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    if not text.startswith("{"):
        return text
    import json

    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as e:
        raise PrefswiftError(f"--device_map {text}: not valid JSON ({e.msg} at column {e.colno}); "
                             "e.g. '{\"\": \"cpu\"}' or auto") from None
    if not isinstance(parsed, dict):
        raise PrefswiftError(f"--device_map {text}: expected a JSON object mapping module names to devices")
    return parsed


def default_device() -> str:
    """'cuda' when a GPU is visible, else 'cpu': where a single process puts its model."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str, device: Optional[str] = None) -> torch.dtype:
    """The weights dtype for --dtype on `device` (default: this machine's): AUTO = bf16 where the GPU supports it,
    else fp16 on GPU, fp32 on CPU."""
    device = device or default_device()
    d = dtype.lower()
    if d != "auto":
        return DTYPES[d]
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def flash_attention_problem(dtype: torch.dtype, device: str, spec: Optional[ModelSpec]) -> Optional[str]:
    """Why flash_attention_2 cannot be used here, or None when it can (transformers' own check: package name,
    version, CUDA)."""
    if device != "cuda":
        return "it needs a CUDA GPU"
    from transformers.utils import is_flash_attn_2_available

    if not is_flash_attn_2_available():
        return "flash-attn 2 is not installed in a version transformers supports (pip install -r requirements/gpu.txt)"
    if dtype not in (torch.float16, torch.bfloat16):
        return "it needs --dtype bf16 or fp16"
    if spec is not None and not spec.support_flash_attn:
        return f"{spec.model_type} does not support it"
    return None


def resolve_attention(use_flash_attention: bool, dtype: torch.dtype, device: str,
                      spec: Optional[ModelSpec]) -> str:
    if not use_flash_attention:
        return "sdpa"
    why = flash_attention_problem(dtype, device, spec)
    if why:
        logger.warning("flash_attention_2 not used: %s; using sdpa instead", why)
        return "sdpa"
    return "flash_attention_2"


def quantization_problem() -> Optional[str]:
    """Why bitsandbytes 4/8-bit loading cannot run here, or None. It runs on CUDA, and on CPU with bitsandbytes'
    multi-backend builds (0.45+: 4/8-bit QLoRA trains on CPU, slowly)."""
    if importlib.util.find_spec("bitsandbytes") is None:
        return "needs bitsandbytes: pip install 'bitsandbytes>=0.45'"
    if torch.cuda.is_available():
        return None
    import bitsandbytes

    if "multi_backend" not in getattr(bitsandbytes, "features", ()):
        return (f"needs a CUDA GPU, or bitsandbytes with its CPU backend (this is {bitsandbytes.__version__}): "
                "pip install 'bitsandbytes>=0.45'")
    return None


def quantization_config(bits: int, compute_dtype: torch.dtype, quant_type="nf4", double_quant=True):
    if not bits:
        return None
    why = quantization_problem()
    if why:
        raise PrefswiftError(f"--quantization_bit {bits} (QLoRA) {why}; or train without quantization")
    from transformers import BitsAndBytesConfig

    if bits == 4:
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=quant_type,
                                  bnb_4bit_use_double_quant=double_quant, bnb_4bit_compute_dtype=compute_dtype)
    return BitsAndBytesConfig(load_in_8bit=True)


def load_tokenizer(path: Path, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path), **({"trust_remote_code": True} if trust_remote_code else {}))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


_SAID_EAGER = set()


def load_sequence_classifier(path: Path, kwargs: dict, pad_token_id: Optional[int]):
    """AutoModelForSequenceClassification with num_labels=1. A causal LM's checkpoint has no `score` weights (they
    start random) and an lm_head the classifier does not use: transformers' load report says so at warning level,
    which is expected here, so it is lowered to one info line."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model = AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=1, **kwargs)
    finally:
        hf_logging.set_verbosity(level)
    text = model.config.get_text_config()
    if pad_token_id is not None:  # the id the collators pad with (transformers' forward needs one for batches)
        text.pad_token_id = pad_token_id
        model.config.pad_token_id = pad_token_id
    if text.pad_token_id is None:
        raise PrefswiftError(f"{path}: the model config has no pad_token_id and none was given: a sequence "
                             "classifier's forward needs one for batches of padded rows")
    logger.info("loaded %s as %s (one label; the score head is read at each sequence's last token)", path,
                type(model).__name__)
    return model


def load_model(path: Path, model_args, *, spec: Optional[ModelSpec] = None, device_map=None, max_memory=None,
               trainable: bool = True, dtype: Optional[torch.dtype] = None, head: str = "causal_lm",
               pad_token_id: Optional[int] = None):
    """Load a causal LM with the dtype / attention / quantization the arguments ask for (`dtype` overrides
    --dtype for the weights: fp32 master weights of full fine-tuning, see `models.precision`).

    head="sequence_classification": AutoModelForSequenceClassification with one label (a reward model; from a
    causal LM's weights its `score` head starts random, drawn from the seeded RNG), its config's pad_token_id set to
    `pad_token_id` (the score is read at each row's last real token: `models.reward.sequence_rewards`)."""
    from transformers import AutoModelForCausalLM

    device = default_device()
    compute_dtype = resolve_dtype(model_args.dtype, device)
    dtype = dtype or compute_dtype
    compute = compute_dtype if model_args.bnb_4bit_compute_dtype.upper() == "AUTO" else resolve_dtype(
        model_args.bnb_4bit_compute_dtype, device)
    attention = resolve_attention(model_args.use_flash_attention, compute_dtype, device, spec)
    # sdpa: left to transformers, which picks SDPA where the architecture has it and eager attention where it does
    # not (Gemma 2 refuses an explicit sdpa); both apply prefswift's 4D masks (scoring.forward.mask_for)
    kwargs = dict(dtype=dtype, attn_implementation=None if attention == "sdpa" else attention)
    qcfg = quantization_config(model_args.quantization_bit, compute, model_args.bnb_4bit_quant_type,
                               model_args.bnb_4bit_use_double_quant)
    if qcfg is not None:
        kwargs["quantization_config"] = qcfg
        if device_map is None and device == "cuda":  # quantized weights cannot be moved after loading
            device_map = {"": dist_env().local_rank}
    if device_map is not None:
        kwargs["device_map"] = device_map
    if max_memory is not None:
        kwargs["max_memory"] = max_memory
    if getattr(model_args, "trust_remote_code", False):
        kwargs["trust_remote_code"] = True
    if head == "sequence_classification":
        model = load_sequence_classifier(path, kwargs, pad_token_id)
    else:
        model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
    if attention == "sdpa" and getattr(model.config, "_attn_implementation", None) == "eager" \
            and type(model).__name__ not in _SAID_EAGER:  # once per architecture (policy and reference)
        _SAID_EAGER.add(type(model).__name__)
        logger.warning("%s has no SDPA attention in this transformers; using eager attention (slower, same numbers)",
                       type(model).__name__)
    if not trainable:
        model.eval()
        model.requires_grad_(False)
    return model
