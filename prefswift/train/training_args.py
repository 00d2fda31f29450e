"""transformers.TrainingArguments from prefswift's arguments: the one place the Trainer's settings are derived."""
from pathlib import Path

from ..arguments import RunArgs
from ..arguments.algorithms import get_spec
from ..distributed.env import dist_env, init_process_group
from ..errors import ArgumentError
from ..models.loader import default_device
from ..models.precision import training_precision


def training_arguments(args: RunArgs, run_dir: Path, has_eval: bool):
    from transformers import TrainingArguments

    t, m = args.train, args.model
    cuda = default_device() == "cuda"
    precision = training_precision(m.dtype, full_finetune=args.tuning.sft_type == "full", deepspeed=bool(t.deepspeed))
    bf16, fp16 = precision.bf16, precision.fp16
    eval_steps = steps_or_ratio(t.eval_steps or t.save_steps)
    eval_strategy = t.eval_strategy or ("steps" if has_eval else "no")
    if eval_strategy != "no" and not has_eval:
        raise ArgumentError(f"--eval_strategy {eval_strategy}: there is no eval data (--eval_ratio 0 and no "
                            "--val_dataset); give some, or drop --eval_strategy")
    kwargs = dict(
        output_dir=str(run_dir), num_train_epochs=t.num_train_epochs, max_steps=t.max_steps,
        per_device_train_batch_size=t.batch_size, per_device_eval_batch_size=t.eval_batch_size or t.batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps, learning_rate=t.learning_rate,
        weight_decay=t.weight_decay, adam_beta1=t.adam_beta1, adam_beta2=t.adam_beta2, adam_epsilon=t.adam_epsilon,
        max_grad_norm=t.max_grad_norm, lr_scheduler_type=t.lr_scheduler_type,
        # transformers 5: a float warmup_steps < 1 is a ratio of the total steps
        warmup_steps=t.warmup_steps or t.warmup_ratio, optim=t.optim, logging_steps=t.logging_steps,
        save_strategy=t.save_strategy, save_steps=steps_or_ratio(t.save_steps),
        save_total_limit=None, save_only_model=t.save_only_model, seed=t.seed, data_seed=t.seed,
        eval_strategy=eval_strategy, eval_steps=eval_steps if eval_strategy == "steps" else None,
        # --save_total_limit is applied by RunFilesCallback once the new checkpoint is marked whole (the Trainer's
        # own rotation runs before that: a kill in between could leave no whole checkpoint)
        dataloader_num_workers=t.dataloader_num_workers, report_to=[r for r in t.report_to if r != "none"] or "none",
        remove_unused_columns=False, logging_nan_inf_filter=False, bf16=bf16, fp16=fp16, ddp_backend=t.ddp_backend or (
            "gloo" if not cuda and dist_env().is_distributed else None),
        ddp_timeout=t.ddp_timeout, ddp_find_unused_parameters=False,
        # the console is prefswift's ConsoleCallback (train/console.py): no Trainer tqdm; tokens/s from the tokens in
        # the data the collators count (`num_tokens`; the Trainer's own count would include padding and a packed
        # layout's shape), added to state.num_input_tokens_seen by PreferenceTrainer
        logging_first_step=True, disable_tqdm=True, include_num_input_tokens_seen="no", use_cpu=not cuda,
    )
    if get_spec(args.command).data == "unpaired":
        # as TRL's KTOConfig: batches in data order, so each row's KL completion (the previous row's, within its
        # batch: prefswift.data.unpaired.add_kl_completions) comes from the batch it is trained in
        kwargs["train_sampling_strategy"] = "sequential"
    if t.deepspeed:
        from ..distributed.deepspeed import resolve_deepspeed

        kwargs["deepspeed"] = resolve_deepspeed(t.deepspeed)
    if t.fsdp:
        from ..distributed.fsdp import fsdp_config

        kwargs["fsdp"], kwargs["fsdp_config"] = True, fsdp_config(t.fsdp, t.fsdp_config)
    if kwargs["ddp_backend"] and not cuda:  # several CPU processes: --ddp_timeout bounds gloo's collectives too
        init_process_group(kwargs["ddp_backend"], t.ddp_timeout)
    targs = TrainingArguments(**kwargs)
    if t.deepspeed and not cuda:
        # accelerate's CPU path sets up torch.distributed but not deepspeed.comm, which zero.Init (ZeRO-3 loading
        # partitioned weights) needs to see the world size; on GPU accelerate has done this already
        import deepspeed

        deepspeed.init_distributed(dist_backend="gloo", auto_mpi_discovery=False)
    return targs


def steps_or_ratio(value: float):
    """--save_steps / --eval_steps: a whole number of steps, or below 1 a fraction of the run (as transformers)."""
    if value < 1:
        return float(value)
    if not float(value).is_integer():
        raise ArgumentError(f"--save_steps/--eval_steps {value}: give a whole number of steps, or a fraction below 1")
    return int(value)
