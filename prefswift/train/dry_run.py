"""`--dry_run true`: check the whole command and print the launch and per-rank device plan, loading no weights."""
import os

from ..arguments import RunArgs
from ..arguments.algorithms import get_spec
from ..data import dataset_info
from ..data.datasets import get_dataset_spec, parse_dataset_arg
from ..distributed.device_plan import gather_device_facts
from ..distributed.launch import describe_launch, launch_settings
from ..registry.models import get_model_spec
from .validation import validate_run


def dry_run(algo: str, argv, args: RunArgs) -> str:
    m, t = args.model, args.train
    lines = []
    if m.model_type:
        spec = get_model_spec(m.model_type)
        lines.append(f"model: {spec.model_type} (ModelScope {spec.ms_id}, Hugging Face {spec.hf_id}), "
                     f"template {m.template or spec.template}")
    elif m.model_id_or_path:
        lines.append(f"model: {m.model_id_or_path}")
    for name in args.data.dataset + args.data.val_dataset:  # resolved as the real run does (dataset_info.json too)
        ref = parse_dataset_arg(name)
        if not ref.local and not dataset_info.lookup(args.data.dataset_dir, ref.name):
            get_dataset_spec(ref.name).resolve_subsets(ref.subsets)
    launch = launch_settings(os.environ, always=bool(args.train.deepspeed))
    world = launch.nproc_per_node * launch.nnodes if launch else None  # the job the run would start
    # the run's own checks, all of them: resume point, options, run dir
    plan = validate_run(args, algo, warn=lines.append, world_size=world)
    if plan.finished:
        return "\n".join(lines + [plan.finished, "dry run: nothing was loaded or trained"])
    args, objective = plan.args, plan.objective
    m, t = args.model, args.train
    beta = "" if get_spec(algo).head == "sequence_classification" else f" beta={objective.beta}"  # rm: no beta
    lines.append(f"objective: {algo} loss_type={objective.loss_type}{beta}; "
                 f"{args.tuning.sft_type} (rank {args.tuning.lora_rank}, targets "
                 f"{','.join(args.tuning.lora_target_modules)}); quantization: {m.quantization_bit or 'none'}")
    if t.deepspeed:
        from ..distributed.deepspeed import check_deepspeed_with_reference, resolve_deepspeed, zero_stage

        stage = zero_stage(resolve_deepspeed(t.deepspeed))
        ref = check_deepspeed_with_reference(algo, stage, args.tuning.sft_type,
                                             args.pref.precompute_ref_log_probs,
                                             bool(m.ref_model_type or m.ref_model_id_or_path))
        lines.append(f"deepspeed: ZeRO-{stage} ({t.deepspeed}); reference: {ref}")
    if t.fsdp:  # planned for a GPU machine: the no-CUDA refusal is the real run's
        from ..distributed.fsdp import check_fsdp

        config = check_fsdp(args, algo, cuda=True, n_gpus=0)
        lines.append("fsdp: FSDP2 (fully_shard), " + ", ".join(f"{k}={v}" for k, v in config.items() if k != "version"))
    facts = gather_device_facts()
    measured = facts.n_visible_gpus > 0  # else the plan counts CUDA_VISIBLE_DEVICES (planning for another machine)
    lines.append(describe_launch([algo] + list(argv), os.environ, facts.n_visible_gpus if measured else None,
                                 facts.free_memory if measured else None, use_deepspeed=bool(t.deepspeed)))
    lines.append("dry run: nothing was loaded or trained")
    return "\n".join(lines)
