"""`prefswift sft|orpo|dpo|simpo|cpo|kto|rm`: the training recipe, read top to bottom.

Supports SFT (the NLL of the assistant's answers), ORPO, DPO (14 loss types, several at once with weights; rpo_alpha,
LD-DPO, WPO, f-divergences, TR-DPO),
SimPO, CPO, KTO (unpaired rows; pairs are split) and Bradley-Terry reward models (rm: a sequence classifier); LoRA,
QLoRA (4/8-bit) and full fine-tuning; starting from an SFT adapter; a DPO/KTO reference that is the adapter-disabled
base, a reference adapter, a separate model, a frozen copy or log-probs precomputed once; one CPU or GPU, DDP
(NPROC_PER_NODE, torchrun, accelerate launch), device_map model parallel and MP+DDP, DeepSpeed ZeRO-2/3;
`--resume_from_checkpoint latest`.

Steps: resume point -> validate -> claim the run dir (its lock) and prepare it -> data -> trainer arguments -> device
plan -> models -> trainer (with the nan/inf guard) -> train -> save.
"""
import logging
import os
from pathlib import Path
from typing import List, Optional

from ..algorithms import BatchObjective
from ..algorithms.layout import ROWS, rows_of
from ..arguments import RunArgs
from ..arguments.algorithms import get_spec, needs_reference
from ..data.pipeline import PreparedData, build_preference_data
from ..distributed.device_plan import DevicePlan, gather_device_facts, plan_devices
from ..distributed.env import DistEnv, allow_ddp_over_device_map, dist_env, shutdown_distributed
from ..distributed.shared_dir import check_shared_run_dir
from ..distributed.slurm import apply_slurm_env
from ..distributed.watchdog import watched
from ..errors import ArgumentError
from ..models.loader import (ResolvedModel, default_device, hub_kwargs, load_tokenizer, parse_device_map,
                             resolve_model)
from ..scoring.collators import ListDataset
from ..scoring.logprobs import resolve_chunk_size
from ..run.directory import interrupted_message, prepare_run_dir, restart_or_truncate_log
from ..run.lock import claimed_run_dir
from ..run.state import clear_stopped, write_complete, write_stopped
from ..templates import get_template
from ..train.callbacks import RunFilesCallback
from ..train.collate import make_collator
from ..train.peer_watch import watch_peers
from ..train.ref_sync import SyncReferenceCallback
from ..train.console import ConsoleCallback, format_summary, quiet_library_noise, use_console
from ..train.health import DivergenceWatch, NonFiniteError, NonFiniteGuard
from ..train.resume_schedule import NothingLeftCallback, NothingLeftToTrain, ResumedScheduleCallback
from ..train.saving import save_final
from ..train.setup_model import Models, build_models
from ..train.trainer import PreferenceTrainer
from ..train.training_args import training_arguments
from ..train.validation import validate, validate_run  # noqa: F401 (validate: re-exported, the multi-option checks)
from .common import parse_or_help, run_user_command, setup_logging

logger = logging.getLogger("prefswift")


def main(algo: str, argv: List[str]) -> None:
    """`prefswift <algo> ...`: --dry_run prints the plan; NPROC_PER_NODE relaunches under torchrun; else train."""
    from ..distributed.launch import launch_settings, maybe_relaunch

    def go():
        apply_slurm_env()  # started by srun: SLURM's variables stand in for NNODES/NODE_RANK/... (or RANK/...)
        args = parse_or_help(algo, argv)
        if args.train.dry_run:
            from ..train.dry_run import dry_run
            import typer

            typer.echo(dry_run(algo, argv, args))
            return
        launch = launch_settings(os.environ, always=bool(args.train.deepspeed))  # DeepSpeed needs a process group
        if launch is not None:  # the validation phase before a relaunch: one error line, not one per rank
            plan = validate_run(args, algo, warn=lambda *a, **k: None,
                                world_size=launch.nproc_per_node * launch.nnodes)
            if plan.finished:  # nothing left to train: no processes to start
                print(plan.finished)
                return
        maybe_relaunch([algo] + list(argv), always=bool(args.train.deepspeed))
        setup_logging()
        run_training(args, algo)

    run_user_command(go)
    if dist_env().is_distributed:
        exit_worker()


def exit_worker() -> None:
    """End a finished distributed worker without interpreter teardown: everything is saved and the process group is
    destroyed, but gloo's (and DeepSpeed's) communication threads can still abort the process while Python
    finalizes (`terminate called without an active exception`, exit code 1 for a run that succeeded)."""
    import os
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run_training(args: RunArgs, algo: str, *, log=print, callbacks=()) -> Path:
    """Train and return the run directory. `callbacks`: extra transformers TrainerCallbacks."""
    env = dist_env()
    quiet_library_noise()  # before the models are built (peft warns while it wraps them)
    say = log if env.is_main else (lambda *a, **k: None)
    plan = validate_run(args, algo, warn=say)  # the one validation phase (--dry_run runs the same)
    args, run_dir, objective, resume_from = plan.args, plan.run_dir, plan.objective, plan.resume_from
    if plan.finished:
        say(plan.finished)
        return run_dir
    with claimed_run_dir(run_dir, env.is_main):  # one run at a time in run_dir (its lock, rank 0)
        # `latest` on an unfinished run without one whole checkpoint starts it over (prepare_run_dir says so)
        prepare_run_dir(run_dir, resume_from, args.train.overwrite_output_dir, env.is_main,
                        args.train.resume_from_checkpoint, say)
        return train_in_run_dir(args, algo, objective, run_dir, resume_from, env, say, log, callbacks)


def train_in_run_dir(args: RunArgs, algo: str, objective, run_dir: Path, resume_from, env: DistEnv, say, log,
                     callbacks) -> Path:
    """The run once its dir is claimed: data, models, trainer, training, the final adapter/model."""
    resolved, tokenizer, template = load_tokenizer_and_template(args)
    data = prepare_data(args, template, tokenizer, say, objective)
    # before any model is built: with a ZeRO-3 config this makes from_pretrained partition the weights as they load
    # (zero.Init) instead of loading the whole model into host memory on every rank
    targs = training_arguments(args, run_dir, has_eval=bool(data.eval))
    check_shared_run_dir(run_dir, env)  # several nodes: one run dir that all of them see
    plan, device_map = plan_placement(args, env)
    models = build_models(args, resolved, needs_reference=objective.needs_reference, device_map=device_map,
                          max_memory=plan.max_memory, head=get_spec(algo).head, pad_token_id=tokenizer.pad_token_id)
    announce(args, algo, resolved, template, plan, models, run_dir, env, say)
    trainer, console = build_trainer(args, targs, objective, models, data, tokenizer, run_dir, callbacks)
    # several processes: a rank that dies makes every other one stop within a bound, with one line (not a hang)
    with watched(watch_peers(trainer, run_dir, args.train.ddp_timeout)):
        if objective.needs_reference and args.pref.precompute_ref_log_probs:
            from ..train.reference_cache import precompute_or_load, reference_identity

            precompute_or_load(trainer, data, trainer.data_collator, run_dir, trainer.args.per_device_eval_batch_size,
                               reference_identity(args, models, trainer), say if env.is_main else None)
        if env.is_main:
            restart_or_truncate_log(run_dir, resume_from, say)
            clear_stopped(run_dir)
        train(trainer, run_dir, resume_from, say, record=env.is_main)
        save_final(trainer, args, run_dir, tokenizer, env.is_main, log)
    if env.is_main:
        write_complete(run_dir, trainer.state.global_step, trainer.state.max_steps)
        log(format_summary(console.summary(), run_dir, run_dir / ("adapter" if args.tuning.sft_type == "lora"
                                                                    else "final")))
    shutdown_distributed()
    return run_dir


# ---------------------------------------------------------------------------------------------- the steps

def load_tokenizer_and_template(args: RunArgs):
    m = args.model
    resolved = resolve_model(m.model_type, m.model_id_or_path, **hub_kwargs(m), template=m.template)
    tokenizer = load_tokenizer(resolved.path, m.trust_remote_code)
    return resolved, tokenizer, get_template(resolved.template, tokenizer, str(resolved.path))


def prepare_data(args: RunArgs, template, tokenizer, say, objective: Optional[BatchObjective] = None
                 ) -> PreparedData:
    """The encoded rows the run trains on (pairs, or the unpaired rows of an unpaired algorithm's objective)."""
    missing = template.missing_special_tokens(tokenizer)
    if missing:
        logger.warning("template %s uses %s, which this tokenizer does not have as single tokens: check --template",
                       template.name, ", ".join(missing))
    rows = rows_of(objective.algo) if objective is not None else ROWS["paired"]
    if rows.conversations:
        from ..data.sft_pipeline import build_sft_data

        data = build_sft_data(args.data, template, tokenizer, loss_on=args.pref.loss_on, hub=args.model.hub,
                              token=args.model.hub_token, log=say)
    else:
        data = build_preference_data(args.data, template, tokenizer, hub=args.model.hub, token=args.model.hub_token,
                                     log=say, unpaired=rows.unpaired)
    if not data.train:
        raise ArgumentError("no training pairs left after filtering (see the summary above); check the dataset or "
                            "raise --max_length")
    if objective is not None:
        objective.prepare_rows(data.train, data.eval, args.train.batch_size, say)
    return data


def plan_placement(args: RunArgs, env: DistEnv):
    """(device plan, device_map): seed the RNG (LoRA initialisation draws from it: runs with one seed start
    identical), then decide which GPUs this process uses and how its model is spread over them (--device_map wins)."""
    from transformers import set_seed

    set_seed(args.train.seed)
    facts = gather_device_facts()
    plan = plan_devices(facts.n_visible_gpus, env.local_world_size, env.local_rank, facts.free_memory,
                        use_deepspeed=bool(args.train.deepspeed), world_size=env.world_size)  # all nodes' processes
    device_map = plan.device_map if args.model.device_map is None else parse_device_map(args.model.device_map)
    if plan.mode == "mp_ddp":
        if args.model.quantization_bit:
            raise ArgumentError("a 4/8-bit model cannot be spread over several GPUs per process under DDP "
                                "(accelerate refuses it): set NPROC_PER_NODE to the number of GPUs, or run one "
                                "process with the model spread over all GPUs")
        allow_ddp_over_device_map()
    return plan, device_map


def announce(args: RunArgs, algo: str, resolved: ResolvedModel, template, plan: DevicePlan, models: Models,
             run_dir: Path, env: DistEnv, say) -> None:
    """One summary line (+ the reference) and args.json in the run dir, on rank 0."""
    if not env.is_main:
        return
    say(f"[prefswift] {algo} | model {resolved.path} | template {template.name} | {args.tuning.sft_type} | "
        f"devices: {plan.describe()}")
    if needs_reference(algo):
        say(f"[prefswift] reference: {models.note}")
    args.save(run_dir)


def train(trainer: PreferenceTrainer, run_dir: Path, resume_from, say, record: bool = True) -> None:
    """trainer.train(); Ctrl-C ends with where the run stopped and the command that continues it (exit code 130).
    A run that ends early leaves stopped.json saying why (`record`: rank 0), for every command that reads runs."""
    def stopped(reason: str, message: str) -> None:
        if record:
            write_stopped(run_dir, reason, trainer.state.global_step, message)

    try:
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    except NothingLeftToTrain:  # killed after the last checkpoint, before the final save: only that is left to do
        say(f"[prefswift] {resume_from.name} is the run's last step ({trainer.state.global_step} of "
            f"{trainer.state.max_steps}): nothing left to train")
        trainer.callback_handler.on_train_end(trainer.args, trainer.state, trainer.control)
    except KeyboardInterrupt:
        message = interrupted_message(run_dir, trainer.state.global_step)
        stopped("interrupted", message)
        say(message)
        raise SystemExit(130) from None
    except NonFiniteError as e:
        stopped("non-finite", str(e))
        raise
    except Exception as e:
        stopped("failed", f"{type(e).__name__}: {e}")
        raise


def build_trainer(args: RunArgs, targs, objective: BatchObjective, models: Models,
                  data: PreparedData, tokenizer, run_dir: Path, callbacks=()):
    """(the trainer, its console: progress bar, metric lines, final summary)."""
    console = ConsoleCallback()
    trainer = PreferenceTrainer(
        model=models.policy, args=targs, objective=objective,
        ref_model=models.reference,
        logprob_chunk_size=resolve_chunk_size(args.pref.logprob_chunk_size, models.policy.config.vocab_size,
                                              default_device()),
        train_dataset=ListDataset(data.train), eval_dataset=ListDataset(data.eval) if data.eval else None,
        data_collator=make_collator(args, tokenizer.pad_token_id,
                                    getattr(models.policy.config, "_attn_implementation", None) or "sdpa"),
        processing_class=tokenizer,
        max_tokens_per_batch=args.pref.max_tokens_per_batch,
        callbacks=[RunFilesCallback(run_dir, args), ResumedScheduleCallback(), NothingLeftCallback(), *callbacks])
    if args.pref.sync_ref_model:
        trainer.add_callback(SyncReferenceCallback(trainer.ref_model, trainer.model, args.pref.ref_model_mixup_alpha,
                                                   args.pref.ref_model_sync_steps))
    use_console(trainer, console)
    on_rank0 = trainer.is_world_process_zero()
    trainer.add_callback(NonFiniteGuard(trainer, args.train.skip_nonfinite_steps,
                                        console.warn if on_rank0 else (lambda line: None)))
    trainer.add_callback(DivergenceWatch(console.warn))  # after the console: a warning follows its metric line
    return trainer, console


__all__ = ["main", "run_training"]
