"""The MP+DDP device planner: many (GPUs, processes, free memory) shapes, no GPU needed."""
import pytest

from prefswift.distributed.device_plan import (
    DEFAULT_RESERVE_FRACTION,
    FREE_MEMORY_ENV,
    GIB,
    MEMORY_STEP,
    DeviceFacts,
    gather_device_facts,
    parse_memory_list,
    plan_devices,
)
from prefswift.errors import ArgumentError

VALID_SHAPES = [(1, 1), (2, 1), (2, 2), (3, 1), (3, 3), (4, 1), (4, 2), (4, 4), (6, 2), (6, 3), (6, 6),
                (8, 1), (8, 2), (8, 4), (8, 8), (16, 4)]


def free_memory_variants(g):
    return {
        "uniform": [80 * GIB] * g,
        "uneven": [int((10 + 7 * i) * GIB + 12345 * i) for i in range(g)],
        "one_busy": [24 * GIB] * (g - 1) + [5 * GIB + 3],
        "unknown": None,
    }


def expected_mode(g, n):
    if g == n:
        return "single" if n == 1 else "ddp"
    return "mp" if n == 1 else "mp_ddp"


@pytest.mark.parametrize("g,n", VALID_SHAPES)
@pytest.mark.parametrize("variant", ["uniform", "uneven", "one_busy", "unknown"])
def test_every_rank_same_layout_disjoint_and_covering(g, n, variant):
    free = free_memory_variants(g)[variant]
    plans = [plan_devices(g, n, r, free) for r in range(n)]
    gpu_sets = [set(p.gpus) for p in plans]
    # disjoint and covering all visible GPUs, G/N each
    assert sum(len(s) for s in gpu_sets) == g
    assert set().union(*gpu_sets) == set(range(g))
    assert all(len(s) == g // n for s in gpu_sets)
    for r, p in enumerate(plans):
        assert p.mode == expected_mode(g, n)
        assert p.local_rank == r and p.local_world_size == n and p.world_size == n
        # the first GPU of rank r is cuda:r -- the device accelerate/NCCL give LOCAL_RANK r
        assert p.gpus[0] == r
        assert p.device == f"cuda:{r}"
        assert p.backend == "nccl"
    if g // n == 1:
        assert [p.device_map for p in plans] == [{"": r} for r in range(n)]
        assert all(p.max_memory is None for p in plans)
        return
    assert all(p.device_map == "auto" for p in plans)
    if free is None:
        assert all(p.max_memory is None for p in plans)
        return
    bound = int(min(free) * (1 - DEFAULT_RESERVE_FRACTION)) // MEMORY_STEP * MEMORY_STEP
    for p in plans:
        assert list(p.max_memory) == list(p.gpus)  # keyed by the rank's own GPUs, in order
        assert set(p.max_memory.values()) == {bound}  # the same bound everywhere, from the smallest GPU
    assert bound % MEMORY_STEP == 0 and 0 < bound <= min(free)


def test_seed_004_four_gpus_two_processes():
    # CUDA_VISIBLE_DEVICES=0,1,2,3 NPROC_PER_NODE=2 swift dpo ...   ("双卡device_map * 2ddp")
    free = [80 * GIB, 79 * GIB, 80 * GIB, 78 * GIB]
    p0, p1 = (plan_devices(4, 2, r, free) for r in range(2))
    assert p0.mode == p1.mode == "mp_ddp"
    assert p0.gpus == (0, 2) and p1.gpus == (1, 3)
    bound = int(78 * GIB * 0.8) // MEMORY_STEP * MEMORY_STEP
    assert p0.max_memory == {0: bound, 2: bound}
    assert p1.max_memory == {1: bound, 3: bound}
    assert p0.model_load_kwargs() == {"device_map": "auto", "max_memory": {0: bound, 2: bound}}
    assert "model parallel over cuda:1,cuda:3" in p1.describe()
    assert "DDP across 2 processes [nccl]" in p1.describe()


def test_layout_identical_through_accelerate_balancing():
    """Feed each rank's max_memory to accelerate's balanced placement (what device_map="auto" does)."""
    torch = pytest.importorskip("torch")
    from accelerate.utils import get_balanced_memory, infer_auto_device_map
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=6,
                         num_attention_heads=4, num_key_value_heads=4)
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    no_split = model._no_split_modules
    free = [40 * GIB, 3 * GIB, 40 * GIB, 40 * GIB, 9 * GIB, 40 * GIB]  # uneven on purpose
    layouts = []
    for r in range(2):
        plan = plan_devices(6, 2, r, free)
        balanced = get_balanced_memory(model, max_memory=dict(plan.max_memory), no_split_module_classes=no_split)
        device_map = infer_auto_device_map(model, max_memory=balanced, no_split_module_classes=no_split)
        assert set(device_map.values()) <= set(plan.gpus)
        # express each module's device as "the k-th GPU of this rank"
        layouts.append({name: plan.gpus.index(dev) for name, dev in device_map.items()})
    assert layouts[0] == layouts[1]
    assert len(set(layouts[0].values())) > 1  # really spread over several GPUs
    assert layouts[0]["model.embed_tokens"] == 0  # embeddings on cuda:LOCAL_RANK


def test_reserve_fraction_and_rounding():
    free = [10 * GIB + 7, 10 * GIB + 7]
    assert plan_devices(2, 1, 0, free, reserve_fraction=0.0).max_memory == {0: 10 * GIB, 1: 10 * GIB}
    half = plan_devices(2, 1, 0, free, reserve_fraction=0.5).max_memory
    assert half == {0: 5 * GIB, 1: 5 * GIB}
    with pytest.raises(ValueError):
        plan_devices(2, 1, 0, free, reserve_fraction=1.0)


def test_cpu_plans():
    single = plan_devices(0, 1, 0, None)
    assert (single.mode, single.gpus, single.device_map, single.max_memory) == ("cpu", (), None, None)
    assert single.device == "cpu" and single.model_load_kwargs() == {}
    assert single.describe().endswith(": CPU")
    ddp = [plan_devices(0, 2, r, []) for r in range(2)]
    assert all(p.mode == "cpu" and p.backend == "gloo" and p.world_size == 2 for p in ddp)
    assert "DDP across 2 processes [gloo]" in ddp[1].describe()


def test_multi_node_world_size():
    plans = [plan_devices(4, 2, r, [16 * GIB] * 4, world_size=4) for r in range(2)]
    assert all(p.world_size == 4 and p.mode == "mp_ddp" for p in plans)
    one_gpu_two_nodes = plan_devices(1, 1, 0, [GIB], world_size=2)
    assert one_gpu_two_nodes.mode == "ddp"
    one_proc_per_node = plan_devices(2, 1, 0, [GIB, GIB], world_size=3)
    assert one_proc_per_node.mode == "mp_ddp"
    with pytest.raises(ValueError):
        plan_devices(4, 2, 0, None, world_size=3)


@pytest.mark.parametrize("gpus, nproc", [(2, 1), (4, 1), (4, 2), (8, 2)])
def test_a_run_on_two_nodes_plans_for_the_whole_world(monkeypatch, gpus, nproc):
    """2 nodes x `gpus` GPUs, `nproc` processes per node, each spreading its model over gpus/nproc GPUs (device_map
    model parallel inside a node): the run's own placement (commands/train.plan_placement, given the process's place
    as torchrun sets it) enables DDP across all 2 x nproc processes over the spread model. Expected values by hand:
    24 GiB free x 0.8 = 19.2 GiB, rounded down to 256 MiB = 19.00 GiB; GPUs r, r+nproc, ..."""
    import os

    from prefswift.arguments import parse_command
    from prefswift.commands import train as train_command
    from prefswift.distributed.env import BYPASS_DEVICE_MAP_ENV, DistEnv

    monkeypatch.setattr(train_command, "gather_device_facts", lambda: DeviceFacts(gpus, [24 * GIB] * gpus))
    monkeypatch.setenv(BYPASS_DEVICE_MAP_ENV, "false")
    args = parse_command("dpo", ["--model_type", "tiny-llama3", "--dataset", "demo"])
    world = 2 * nproc
    local = nproc - 1  # the last process of node 1
    env = DistEnv(rank=nproc + local, local_rank=local, world_size=world, local_world_size=nproc, is_main=False)
    plan, device_map = train_command.plan_placement(args, env)
    mine = list(range(local, gpus, nproc))
    assert (plan.mode, plan.world_size, list(plan.gpus), device_map) == ("mp_ddp", world, mine, "auto")
    assert plan.max_memory == {g: 19 * GIB for g in mine}
    assert os.environ[BYPASS_DEVICE_MAP_ENV] == "true"  # accelerate wraps the spread model in DDP
    assert plan.describe() == (
        f"local rank {local}/{nproc} (world size {world}): model parallel over "
        f"{','.join(f'cuda:{g}' for g in mine)} (device_map=auto, max_memory 19.00 GiB each) + DDP across {world} "
        f"processes [nccl]")


def test_deepspeed_one_gpu_per_process_leaves_placement_to_deepspeed():
    plans = [plan_devices(4, 4, r, [GIB] * 4, use_deepspeed=True) for r in range(4)]
    assert all(p.mode == "ddp" and p.device_map is None and p.gpus == (r,) for r, p in enumerate(plans))
    assert plans[0].model_load_kwargs() == {}
    assert "placed by DeepSpeed" in plans[0].describe()
    assert plan_devices(1, 1, 0, [GIB], use_deepspeed=True).mode == "single"


@pytest.mark.parametrize("g,n", [(4, 2), (2, 1), (8, 4), (8, 1)])
def test_deepspeed_with_model_parallel_is_refused(g, n):
    with pytest.raises(ArgumentError) as err:
        plan_devices(g, n, 0, None, use_deepspeed=True)
    msg = str(err.value)
    assert "\n" not in msg
    assert "DeepSpeed shards/partitions the model itself" in msg
    assert f"NPROC_PER_NODE={g}" in msg and "zero3" in msg and "drop --deepspeed" in msg


def test_deepspeed_without_gpus_runs_on_cpu():
    """DeepSpeed 0.19 runs ZeRO on CPU with gloo (tests/test_deepspeed_cpu.py trains with it)."""
    plan = plan_devices(0, 2, 1, None, use_deepspeed=True)
    assert (plan.mode, plan.device_map, plan.backend) == ("cpu", None, "gloo")


@pytest.mark.parametrize("g,n,hint", [
    (2, 4, "[1, 2]"), (1, 2, "[1]"), (3, 4, "[1, 3]"),   # more processes than GPUs
])
def test_more_processes_than_gpus(g, n, hint):
    with pytest.raises(ArgumentError) as err:
        plan_devices(g, n, 0, None)
    msg = str(err.value)
    assert f"NPROC_PER_NODE={n} but only {g} GPU(s)" in msg and hint in msg and "CUDA_VISIBLE_DEVICES" in msg


@pytest.mark.parametrize("g,n,hint", [(4, 3, "[1, 2, 4]"), (6, 4, "[1, 2, 3, 6]"), (5, 2, "[1, 5]")])
def test_processes_must_divide_gpus(g, n, hint):
    with pytest.raises(ArgumentError) as err:
        plan_devices(g, n, 0, None)
    msg = str(err.value)
    assert "does not divide" in msg and hint in msg
    assert f"CUDA_VISIBLE_DEVICES to {n * (g // n)} GPUs" in msg


def test_bad_inputs():
    with pytest.raises(ValueError):
        plan_devices(4, 2, 2, None)  # local rank out of range
    with pytest.raises(ValueError):
        plan_devices(4, 2, 0, [GIB] * 3)  # free memory for the wrong number of GPUs
    with pytest.raises(ArgumentError):
        plan_devices(4, 0, 0, None)
    with pytest.raises(ArgumentError, match="no free memory"):
        plan_devices(2, 1, 0, [GIB, 0])
    with pytest.raises(ArgumentError, match="leaves nothing"):
        plan_devices(2, 1, 0, [GIB, 100 * 1024**2])


def test_model_load_kwargs_needs_memory_for_mp():
    with pytest.raises(ValueError):
        plan_devices(4, 2, 0, None).model_load_kwargs()
    assert "max_memory unknown" in plan_devices(4, 2, 0, None).describe()
    assert plan_devices(2, 2, 1, None).model_load_kwargs() == {"device_map": {"": 1}}


def test_gather_device_facts_without_gpus():
    assert gather_device_facts({}) == DeviceFacts(0, [])


def test_parse_memory_list():
    assert parse_memory_list("24GiB, 1.5gib,1000,2MB") == [24 * GIB, int(1.5 * GIB), 1000, 2_000_000]
    with pytest.raises(ArgumentError, match=FREE_MEMORY_ENV):
        parse_memory_list("24GiB,lots")
    with pytest.raises(ArgumentError):
        parse_memory_list("24XB")
