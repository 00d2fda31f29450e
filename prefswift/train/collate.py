"""Which batch layout a training run uses (see `prefswift.scoring.collators`)."""
from ..arguments import RunArgs
from ..scoring.collators import PairCollator, PrefixSharedCollator


def make_collator(args: RunArgs, pad_token_id: int):
    """Prefix-shared rows (one per pair, a 4D mask: SDPA/eager) unless --prefix_sharing false."""
    if args.pref.prefix_sharing:
        return PrefixSharedCollator(pad_token_id=pad_token_id)
    return PairCollator(pad_token_id=pad_token_id)
