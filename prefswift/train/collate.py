"""Which batch layout a training run uses (see `prefswift.scoring.collators` and `prefswift.scoring.unpaired`)."""
from ..arguments import RunArgs
from ..scoring.collators import PairCollator, PrefixSharedCollator
from ..scoring.unpaired import UnpairedCollator


def make_collator(args: RunArgs, pad_token_id: int):
    """KTO: unpaired rows (+ their KL rows). Pairs: prefix-shared rows (one per pair, a 4D mask: SDPA/eager) unless
    --prefix_sharing false."""
    if args.command == "kto":
        return UnpairedCollator(pad_token_id=pad_token_id)
    if args.pref.prefix_sharing:
        return PrefixSharedCollator(pad_token_id=pad_token_id)
    return PairCollator(pad_token_id=pad_token_id)
