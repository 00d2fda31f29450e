"""The one validation phase: every check that involves several options, for the training run and `--dry_run` alike,
before anything heavy is loaded or written. (Each value's own range, and whether an option acts for the command at
all, were checked when it was parsed.) Every refusal is one ArgumentError line that names the options.

Order: data options -> batch layout -> the algorithm's own options (`BatchObjective.check`) -> model loading ->
training (optimizer, steps, DeepSpeed) -> outputs (run dir, adapter dir, --push_to_hub, --report_to).
"""
import dataclasses
import importlib.util
from pathlib import Path
from typing import Optional

from ..algorithms import BatchObjective, build_objective
from ..arguments import RunArgs
from ..data.pipeline import check_data_options, parse_columns
from ..distributed.fsdp import check_fsdp
from ..errors import ArgumentError
from ..models.lineage import with_sft_start
from ..models.loader import default_device
from ..models.precision import training_precision
from ..models.push import check_push
from .collate import check_layout
from ..run.directory import check_run_dir, resolve_resume
from ..run.ownership import check_adapter_dir, check_output_path
from .resume import adopt_checkpoint_args, finished_message
from .training_args import steps_or_ratio

# pip package of each --report_to integration whose name differs from it
REPORT_TO_PACKAGES = {"azure_ml": "azureml-core", "flyte": "flytekit", "comet_ml": "comet_ml"}


@dataclasses.dataclass
class RunPlan:
    """What the validation phase decided: the arguments to train with (a resumed run's own, from its checkpoint),
    the objective, the checkpoint to resume from, and `finished` (the one line to print) when there is nothing left
    to train."""
    args: RunArgs
    run_dir: Path
    objective: Optional[BatchObjective] = None
    resume_from: Optional[Path] = None
    finished: Optional[str] = None


def validate_run(args: RunArgs, algo: str, warn=print, world_size: Optional[int] = None) -> RunPlan:
    """The whole validation phase of a training command, for the run and `--dry_run` alike, writing nothing: the
    resume point and the checkpoint's arguments (train/resume.py), the multi-option checks (`validate`), what cannot
    be resumed, and the run directory (run/directory.py `check_run_dir`; `prepare_run_dir` checks it again under the
    run's lock before it removes anything). `world_size`: the job's, when this process is not in it yet."""
    run_dir = Path(args.train.output_dir).expanduser().resolve()
    check_output_path(run_dir)
    resume_from = resolve_resume(run_dir, args.train.resume_from_checkpoint, warn=warn,
                                 overwrite=args.train.overwrite_output_dir)
    if resume_from is not None:
        args = adopt_checkpoint_args(args, resume_from, world_size)
        finished = finished_message(args, run_dir, resume_from)
        if finished:
            return RunPlan(args, run_dir, resume_from=resume_from, finished=finished)
    objective = validate(args, algo)
    args = with_sft_start(args, run_dir)  # an SFT run to start from: its adapter, the reference, the lineage
    if args.model.adapter_name_or_path:
        objective = validate(args, algo)  # the resolved start and reference (--ref_model base) pass the same checks
    if resume_from is not None and args.pref.sync_ref_model:
        raise ArgumentError("--sync_ref_model runs cannot be resumed: checkpoints do not hold the mixed reference "
                            "model; start a new run (--overwrite_output_dir true or another --output_dir)")
    check_run_dir(run_dir, resume_from, args.train.overwrite_output_dir, args.train.resume_from_checkpoint)
    return RunPlan(args, run_dir, objective, resume_from)


def validate(args: RunArgs, algo: str) -> BatchObjective:
    """The objective the command trains with, once every multi-option check has passed."""
    check_data_options(args.data)
    parse_columns(args.data.columns)
    check_layout(args)
    objective = build_objective(algo, args.pref)
    objective.check(args)
    check_model_options(args)
    check_training_options(args, algo)
    check_outputs(args)
    return objective


def check_model_options(args: RunArgs) -> None:
    m, full = args.model, args.tuning.sft_type == "full"
    if m.quantization_bit and full:
        raise ArgumentError("--quantization_bit / --use_4bit / --use_8bit need --sft_type lora (QLoRA); "
                            "full fine-tuning cannot update quantized weights")
    if m.quantization_bit and m.adapter_name_or_path:
        raise ArgumentError("--adapter_name_or_path with 4/8-bit loading is not supported: merge the SFT adapter "
                            "first (prefswift merge-lora) and train on the merged model")
    training_precision(m.dtype, full_finetune=full, deepspeed=bool(args.train.deepspeed))  # fp16 needs CUDA


def check_training_options(args: RunArgs, algo: str) -> None:
    t = args.train
    if ("8bit" in t.optim or "paged" in t.optim) and default_device() != "cuda":
        raise ArgumentError(f"--optim {t.optim} needs a CUDA GPU and bitsandbytes; on this machine use adamw_torch")
    steps_or_ratio(t.save_steps)
    if t.eval_steps is not None:
        steps_or_ratio(t.eval_steps)
    if t.deepspeed:
        check_deepspeed(args, algo)
    check_fsdp(args, algo)  # --fsdp: what FSDP2 cannot run is refused here


def check_deepspeed(args: RunArgs, algo: str) -> None:
    from ..distributed.deepspeed import check_deepspeed_with_reference, resolve_deepspeed, zero_stage

    m = args.model
    if importlib.util.find_spec("deepspeed") is None:
        raise ArgumentError("--deepspeed needs the deepspeed package: pip install 'deepspeed>=0.16' "
                            "(or pip install -r requirements/gpu.txt)")
    stage = zero_stage(resolve_deepspeed(args.train.deepspeed))
    check_deepspeed_with_reference(algo, stage, args.tuning.sft_type, args.pref.precompute_ref_log_probs,
                                   bool(m.ref_model_type or m.ref_model_id_or_path))
    if args.train.skip_nonfinite_steps:
        raise ArgumentError("--skip_nonfinite_steps does not apply with --deepspeed (DeepSpeed steps its own "
                            "optimizer): drop it; a non-finite step then stops the run")
    if stage == 3 and m.quantization_bit:
        raise ArgumentError("--deepspeed zero3 with 4/8-bit loading (QLoRA) is not supported: use --deepspeed "
                            "zero2 (each GPU holds the quantized base), or DDP without DeepSpeed")


def check_outputs(args: RunArgs) -> None:
    m = args.model
    check_push(args.push.push_to_hub, args.push.hub_model_id, m.hub, m.hub_token)
    run_dir = Path(args.train.output_dir).expanduser().resolve()
    check_output_path(run_dir)
    if args.train.lora_adapter_dir and args.tuning.sft_type == "lora":
        check_adapter_dir(Path(args.train.lora_adapter_dir), run_dir)
    check_report_to(args.train.report_to)


def check_report_to(report_to) -> None:
    """--report_to tensorboard|wandb|...: the package must be there before anything loads or is written."""
    wanted = [r for r in report_to if r not in ("none", "all")]
    if not wanted:
        return
    from transformers.integrations import get_available_reporting_integrations

    missing = [r for r in wanted if r not in get_available_reporting_integrations()]
    if missing:
        pip = " ".join(REPORT_TO_PACKAGES.get(r, r) for r in missing)
        raise ArgumentError(f"--report_to {','.join(missing)}: not installed — pip install {pip} (or drop it; "
                            "logging.jsonl and the plots are always written)")


__all__ = ["RunPlan", "validate", "validate_run", "check_report_to"]
