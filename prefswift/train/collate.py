"""Which batch layout a training run uses (see `prefswift.scoring.collators`)."""
from ..arguments import RunArgs
from ..errors import ArgumentError
from ..scoring.collators import PairCollator, PrefixSharedCollator


def make_collator(args: RunArgs, pad_token_id: int):
    """Prefix-shared blocks (4D mask: SDPA/eager), several pairs per row unless --packing false; chosen rows and
    rejected rows with --prefix_sharing false."""
    if args.pref.prefix_sharing:
        return PrefixSharedCollator(pad_token_id=pad_token_id, packing=args.pref.packing)
    return PairCollator(pad_token_id=pad_token_id)


def check_layout(args: RunArgs) -> None:
    """Packing and token budgets need the prefix-shared layout; refuse the combinations that would silently do
    nothing."""
    pref, explicit = args.pref, args.explicit
    if pref.prefix_sharing:
        if pref.max_tokens_per_batch and "batch_size" in explicit:
            raise ArgumentError("--max_tokens_per_batch replaces --per_device_train_batch_size (batches are filled "
                                "by tokens): pass only one of them")
        return
    if pref.packing and "packing" in explicit:
        raise ArgumentError("--packing true needs prefix sharing: drop --prefix_sharing false (packing puts "
                            "prompt+chosen+rejected blocks of several pairs in one row)")
    if pref.max_tokens_per_batch:
        raise ArgumentError("--max_tokens_per_batch needs prefix sharing (it fills packed rows): drop "
                            "--prefix_sharing false, or use --per_device_train_batch_size")
