"""Which batch layout a training run uses (see `prefswift.scoring.collators` and `prefswift.scoring.unpaired`)."""
from ..arguments import RunArgs
from ..arguments.algorithms import get_spec
from ..errors import ArgumentError
from ..scoring.collators import PairCollator, PrefixSharedCollator, pair_tokens
from ..scoring.packing import TokenBudgetBatchSampler
from ..scoring.unpaired import UnpairedCollator


def make_collator(args: RunArgs, pad_token_id: int, attn_implementation: str = "sdpa"):
    """SFT: whole conversations (padding-free packed rows unless --packing false). KTO: unpaired rows (+ their KL
    rows). Pairs: prefix-shared blocks (4D mask: SDPA/eager), several pairs per row unless --packing false. With --prefix_sharing false: chosen rows and rejected rows, padding-free when packing (all
    sequences in one row for flash_attention_2's varlen kernels, rows as long as the longest sequence for SDPA)."""
    if get_spec(args.command).data == "unpaired":
        return UnpairedCollator(pad_token_id=pad_token_id)
    if get_spec(args.command).data == "sft":
        from ..scoring.sft import SftCollator

        return SftCollator(pad_token_id=pad_token_id, packing=args.pref.packing,
                           one_row=attn_implementation == "flash_attention_2")
    if args.pref.prefix_sharing:
        return PrefixSharedCollator(pad_token_id=pad_token_id, packing=args.pref.packing)
    return PairCollator(pad_token_id=pad_token_id, packing=args.pref.packing,
                        one_row=attn_implementation == "flash_attention_2")


def token_budget_sampler(rows, collator, max_tokens: int, seed: int) -> TokenBudgetBatchSampler:
    """--max_tokens_per_batch: batches of `rows` whose tensors, as `collator` lays them out (packed or not, prefix-
    shared or chosen/rejected rows, padding included), hold at most `max_tokens` tokens."""
    tokens = [len(r["input_ids"]) if "input_ids" in r else pair_tokens(r) for r in rows]  # SFT rows: one sequence
    return TokenBudgetBatchSampler(tokens, max_tokens, seed=seed,
                                   batch_tokens=lambda indices: collator.layout_tokens([rows[i] for i in indices]))


def check_layout(args: RunArgs) -> None:
    """Refuse the token-budget combinations that would silently not do what they say."""
    pref, explicit = args.pref, args.explicit
    if pref.max_tokens_per_batch and "batch_size" in explicit:
        raise ArgumentError("--max_tokens_per_batch replaces --per_device_train_batch_size (batches are filled "
                            "by tokens): pass only one of them")
