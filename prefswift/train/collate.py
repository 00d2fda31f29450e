"""Which batch layout a training run uses (see `prefswift.scoring.collators`)."""
import logging

from ..arguments import RunArgs
from ..models.loader import default_device, flash_attention_problem, resolve_dtype
from ..scoring.collators import PairCollator, PrefixSharedCollator

logger = logging.getLogger("prefswift")


def make_collator(args: RunArgs, resolved, pad_token_id: int):
    """Prefix-shared rows unless flash_attention_2 will run (its kernels take no 4D mask)."""
    m = args.model
    if args.pref.prefix_sharing:
        device = default_device()
        flash = m.use_flash_attention and flash_attention_problem(resolve_dtype(m.dtype, device), device,
                                                                  resolved.spec) is None
        if not flash:
            return PrefixSharedCollator(pad_token_id=pad_token_id)
        logger.info("flash_attention_2: pairs are batched as chosen and rejected rows (no prefix sharing)")
    return PairCollator(pad_token_id=pad_token_id)
