"""Choice sets that belong to transformers (optimizers, schedulers, FSDP options, report_to integrations), read from
the installed version when a value is checked, so they never go stale and `--help` stays fast."""
from typing import Tuple


def scheduler_types() -> Tuple[str, ...]:
    from transformers.trainer_utils import SchedulerType

    return tuple(s.value for s in SchedulerType)


def optimizers() -> Tuple[str, ...]:
    from transformers.training_args import OptimizerNames

    return tuple(o.value for o in OptimizerNames)


def fsdp_options() -> Tuple[str, ...]:
    from transformers.trainer_utils import FSDPOption

    return tuple(o.value for o in FSDPOption)


def report_targets() -> Tuple[str, ...]:
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    return ("none", "all") + tuple(INTEGRATION_TO_CALLBACK)


DDP_BACKENDS = ("nccl", "gloo", "mpi", "ccl", "hccl", "cncl", "mccl", "xccl")
