"""Resuming a run safely: the checkpoint's own arguments, a refusal for contradictions, nothing to do when finished.

`--resume_from_checkpoint latest` continues the run the checkpoint belongs to. Training arguments the command line
does not give are taken from the checkpoint's args.json (the run's, not today's defaults: resuming without repeating
`--gradient_accumulation_steps 4 --num_train_epochs 3` keeps them). An explicit value that changes what the checkpoint
is (model, LoRA shape) or how it was trained so far (schedule, data) is refused in one line. Extending the run
(`--max_steps`, `--num_train_epochs`) and changing how it is logged or saved are fine. Another number of processes
than the checkpoint's keeps its global batch (`world_size_change`, prefswift/distributed/world_size.py).
"""
import dataclasses
import json
import logging
from pathlib import Path
from typing import Optional

from ..arguments import ARGS_FILE, RunArgs, section_from_flat
from ..arguments.algorithms import default_beta, default_loss_type, is_algorithm, split_loss_types
from ..arguments.fields import DataArguments
from ..data.pipeline import prompt_budget
from ..distributed.env import dist_env
from ..distributed.world_size import rescale_batch
from ..errors import ArgumentError
from ..registry.plugins import load_plugins
from ..run.state import read_complete
from ..run.checkpoints import checkpoint_world_size, is_deepspeed_checkpoint

logger = logging.getLogger("prefswift")
# what the checkpoint is
SHAPE = ("model_type", "model_id_or_path", "adapter_name_or_path", "quantization_bit", "sft_type", "lora_rank",
         "lora_alpha", "lora_target_modules", "lora_modules_to_save", "use_rslora", "beta", "loss_type",
         "loss_weights", "ld_alpha", "use_weighting", "f_divergence_type", "ref_adapter_name_or_path",
         "desirable_weight", "undesirable_weight")
# how it was trained so far: a different value would not continue the same run
SCHEDULE = ("learning_rate", "lr_scheduler_type", "warmup_ratio", "warmup_steps", "gradient_accumulation_steps",
            "batch_size", "optim", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "seed", "dataset",
            "val_dataset", "dataset_seed", "eval_ratio", "train_dataset_sample", "max_length", "max_prompt_length",
            "deepspeed", "fsdp", "max_tokens_per_batch")
# taken from the checkpoint unless given again (their defaults today may differ from what the run used)
ADOPTED_SECTIONS = ("model", "data", "tuning", "train", "pref")
NOT_ADOPTED = {"output_dir", "resume_from_checkpoint", "overwrite_output_dir", "dry_run", "hub_token",
               "device_map", "report_to", "dataloader_num_workers", "lora_adapter_dir"}


def checkpoint_args(ckpt: Path) -> Optional[dict]:
    path = ckpt / ARGS_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def adopt_checkpoint_args(args: RunArgs, ckpt: Path, world_size: Optional[int] = None) -> RunArgs:
    """The arguments to resume `ckpt` with (see the module doc); ArgumentError for an explicit contradiction.
    `world_size`: the job's number of processes when this process is not in it yet (`--dry_run`, a relaunch)."""
    saved = checkpoint_args(ckpt)
    if saved is None:  # a checkpoint from before args.json was saved with every checkpoint: trust the command line
        return args
    current = args.to_flat_dict()  # local paths absolute, as args.json stores them
    rescaled = world_size_change(args, ckpt, saved, world_size)
    for name in SHAPE + SCHEDULE:
        if rescaled and name in rescaled:
            continue
        if name in args.explicit and name in saved and effective(name, current) != effective(name, saved):
            raise ArgumentError(f"--{name} {_show(_value(args, name))} contradicts the checkpoint {ckpt.name} "
                                f"({_show(effective(name, saved))}): resuming continues that run — drop --{name}, "
                                "or start a new run (--overwrite_output_dir true or another --output_dir)")
    sections = {}
    for section in ADOPTED_SECTIONS:
        current = getattr(args, section)
        if current is None:
            continue
        updates = {f.name: saved[f.name] for f in dataclasses.fields(current)
                   if f.name in saved and f.name not in args.explicit and f.name not in NOT_ADOPTED}
        updates.update({k: v for k, v in (rescaled or {}).items() if hasattr(current, k)})
        sections[section] = dataclasses.replace(current, **updates)
    resumed = dataclasses.replace(args, **sections)
    load_plugins(resumed.model.custom_register_path)  # the run's own algorithm, loss type or template
    return resumed


def world_size_change(args: RunArgs, ckpt: Path, saved: dict, world: Optional[int] = None) -> Optional[dict]:
    """{batch_size, gradient_accumulation_steps} that keep the checkpoint's global batch when this run has another
    number of processes than the one that saved it (distributed/world_size.py), else None."""
    saved_world, world = checkpoint_world_size(ckpt), world or dist_env().world_size
    if saved_world is None or saved_world == world or "batch_size" not in saved:
        return None
    if is_deepspeed_checkpoint(ckpt):
        raise ArgumentError(f"{ckpt.name} is a DeepSpeed checkpoint partitioned over {saved_world} process(es) and "
                            f"this run has {world}: resume it with {saved_world}, or start a new run from its weights")
    # the same command line again (its values equal the checkpoint's) is not a request to change them
    explicit = {n: _value(args, n) for n in ("batch_size", "gradient_accumulation_steps")
                if n in args.explicit and _value(args, n) != saved.get(n)}
    bs, ga = rescale_batch(saved_world, world, int(saved["batch_size"]), int(saved["gradient_accumulation_steps"]),
                           explicit.get("batch_size"), explicit.get("gradient_accumulation_steps"))
    if dist_env().is_main:
        logger.warning("%s was trained by %d process(es), this run has %d: --batch_size %d "
                       "--gradient_accumulation_steps %d keep its global batch of %d rows", ckpt.name, saved_world,
                       world, bs, ga, bs * ga * world)
    return {"batch_size": bs, "gradient_accumulation_steps": ga}


def _value(args: RunArgs, name: str):
    for section in ADOPTED_SECTIONS:
        current = getattr(args, section)
        if current is not None and hasattr(current, name):
            return getattr(current, name)
    return None


def effective(name: str, flat: dict):
    """The value a run uses for `name` given its flat arguments (args.json's form): an algorithm's or another
    option's default resolved (ORPO with no --beta runs at beta 0.1, so `--beta 0.1` is the same run)."""
    value = flat.get(name)
    command = flat.get("command")
    if name == "beta" and value is None:
        return default_beta(command)
    if name == "loss_type" and value is None and is_algorithm(command):
        return default_loss_type(command)
    if name == "loss_weights" and not value:
        return [1.0] * len(split_loss_types(effective("loss_type", flat)))
    if name == "max_prompt_length" and "max_length" in flat:
        return prompt_budget(section_from_flat(DataArguments, flat))
    return value


def _show(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def finished_message(args: RunArgs, run_dir: Path, resume_from: Optional[Path]) -> Optional[str]:
    """A line saying the run is already complete (nothing to resume), or None when there is training to do."""
    if resume_from is not None:
        run_dir = resume_from.parent  # the checkpoint's own run (another run's only with --overwrite_output_dir)
    done = read_complete(run_dir) if resume_from is not None else None
    if not done:
        return None
    state = resume_from / "trainer_state.json"
    if json.loads(state.read_text(encoding="utf-8")).get("global_step", 0) < done["global_step"]:
        return None  # an earlier checkpoint than the run's end (a later one was removed): it is resumed as asked
    saved = checkpoint_args(resume_from) or {}
    more_steps = "max_steps" in args.explicit and args.train.max_steps > done["global_step"]
    more_epochs = ("num_train_epochs" in args.explicit and "max_steps" not in args.explicit
                   and args.train.num_train_epochs > float(saved.get("num_train_epochs", args.train.num_train_epochs)))
    if more_steps or more_epochs:
        return None
    return (f"[prefswift] the run in {run_dir} is complete (step {done['global_step']} of {done['max_steps']}); "
            "nothing to resume. Give a larger --max_steps or --num_train_epochs to train further")
