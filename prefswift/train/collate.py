"""Which batch layout a training run uses (see `prefswift.scoring.collators` and `prefswift.scoring.unpaired`)."""
from ..arguments import RunArgs
from ..errors import ArgumentError
from ..scoring.collators import PairCollator, PrefixSharedCollator
from ..scoring.unpaired import UnpairedCollator


def make_collator(args: RunArgs, pad_token_id: int, attn_implementation: str = "sdpa"):
    """KTO: unpaired rows (+ their KL rows). Pairs: prefix-shared blocks (4D mask: SDPA/eager), several pairs per row
    unless --packing false. With --prefix_sharing false: chosen rows and rejected rows, padding-free when packing (all
    sequences in one row for flash_attention_2's varlen kernels, rows as long as the longest sequence for SDPA)."""
    if args.command == "kto":
        return UnpairedCollator(pad_token_id=pad_token_id)
    if args.pref.prefix_sharing:
        return PrefixSharedCollator(pad_token_id=pad_token_id, packing=args.pref.packing)
    return PairCollator(pad_token_id=pad_token_id, packing=args.pref.packing,
                        one_row=attn_implementation == "flash_attention_2")


def check_layout(args: RunArgs) -> None:
    """Refuse the token-budget combinations that would silently not do what they say."""
    pref, explicit = args.pref, args.explicit
    if pref.max_tokens_per_batch and "batch_size" in explicit:
        raise ArgumentError("--max_tokens_per_batch replaces --per_device_train_batch_size (batches are filled "
                            "by tokens): pass only one of them")
    if pref.prefix_sharing:
        return
    if pref.max_tokens_per_batch and not pref.packing:
        raise ArgumentError("--max_tokens_per_batch with --prefix_sharing false needs --packing true (the budget "
                            "counts the tokens of padding-free rows)")
