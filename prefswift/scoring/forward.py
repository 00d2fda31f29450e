"""One forward path: a batch of pairs in, per-sequence log-prob sums, token counts and the chosen NLL out.

The model is called once through its own `forward` (so DDP / DeepSpeed wrappers see the call) with
`logits_to_keep=1`: it builds logits for one position only. The backbone's last hidden state is captured with a
forward hook and projected through the LM head in chunks of tokens (`prefswift.scoring.logprobs.token_logps`), so
the [rows, tokens, vocab] log-softmax is never materialised.
"""
import dataclasses
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Optional, Tuple

import torch

from ..arguments.fields import LOGPROB_CHUNK_SIZE
from .batches import Batch, PackedPairs, PaddedPairs, PrefixSharedPairs
from .collators import Segment
from ..errors import PrefswiftError
from .head_transform import logit_transform, text_config
from .logprobs import token_log_sum_sq_probs, token_logps

IGNORE = -100


@dataclass
class PairLogps:
    chosen_logps: torch.Tensor       # [B] sum of response-token log-probs
    rejected_logps: torch.Tensor     # [B]
    chosen_tokens: torch.Tensor      # [B] response token counts
    rejected_tokens: torch.Tensor    # [B]
    chosen_nll_sum: torch.Tensor     # scalar: summed NLL of the chosen response tokens of the batch
    chosen_nll_count: torch.Tensor   # scalar: how many tokens that sum covers
    chosen_nll_all_sum: Optional[torch.Tensor] = None    # same over prompt + response tokens (TRL ORPO mode)
    chosen_nll_all_count: Optional[torch.Tensor] = None
    # LD-DPO: [B] sums over the response tokens past min(chosen, rejected) length of the pair
    chosen_tail_logps: Optional[torch.Tensor] = None
    rejected_tail_logps: Optional[torch.Tensor] = None
    # WPO (pair_forward(wpo=True)): [B] mean over response tokens of log p - log sum_v p(v)^2, detached
    chosen_wpo_mean: Optional[torch.Tensor] = None
    rejected_wpo_mean: Optional[torch.Tensor] = None

    @property
    def chosen_nll(self):
        """Token-pooled mean NLL of the chosen responses."""
        return self.chosen_nll_sum / self.chosen_nll_count.clamp(min=1)

    @property
    def chosen_nll_all(self):
        if self.chosen_nll_all_sum is None:
            return None
        return self.chosen_nll_all_sum / self.chosen_nll_all_count.clamp(min=1)

    def pooled_over(self, global_count, global_count_all, world_size: int) -> "PairLogps":
        """A copy whose NLL is pooled over the tokens of all `world_size` DDP ranks instead of this rank's batch.

        DDP averages gradients over ranks, so rank losses of sum_r / (global_count / world_size) make the averaged
        gradient that of sum_all / global_count: the same as one process with the whole global batch.
        """
        return dataclasses.replace(self, chosen_nll_count=global_count / world_size,
                                   chosen_nll_all_count=(None if self.chosen_nll_all_sum is None
                                                         else global_count_all / world_size))

    def ld_logps(self, ld_alpha: Optional[float]):
        """(chosen, rejected) sequence log-probs, the tokens past the pair's shared length weighted by `ld_alpha`
        (LD-DPO; None = plain sums)."""
        if ld_alpha is None:
            return self.chosen_logps, self.rejected_logps
        return (self.chosen_logps - self.chosen_tail_logps + ld_alpha * self.chosen_tail_logps,
                self.rejected_logps - self.rejected_tail_logps + ld_alpha * self.rejected_tail_logps)

    @property
    def chosen_avg_logps(self):
        return self.chosen_logps / self.chosen_tokens.clamp(min=1)

    @property
    def rejected_avg_logps(self):
        return self.rejected_logps / self.rejected_tokens.clamp(min=1)


def unwrap_wrappers(model):
    """The PeftModel (or plain model) under DDP / DeepSpeed wrappers."""
    while hasattr(model, "module") and not hasattr(model, "get_output_embeddings"):
        model = model.module
    return model


def unwrap(model):
    """The causal LM under DDP / DeepSpeed / PEFT wrappers."""
    model = unwrap_wrappers(model)
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return model


@contextmanager
def capture_last_hidden(causal_lm):
    """Record the backbone's output hidden state during the next forward (public forward-hook API), and the autocast
    the forward ran under (accelerate wraps only the model's forward in autocast; the chunked head runs after it)."""
    store = {}
    backbone = causal_lm.base_model

    def hook(_module, _inputs, output):
        hidden = output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0]
        store["hidden"] = hidden
        device_type = hidden.device.type
        if torch.is_autocast_enabled(device_type):
            store["autocast"] = (device_type, torch.get_autocast_dtype(device_type))

    handle = backbone.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


def pair_forward(model, batch: Batch, *, chunk_size: int = LOGPROB_CHUNK_SIZE, nll_all: bool = False,
                 wpo: bool = False) -> PairLogps:
    """Per-sequence numbers for a batch of pairs, in any of its layouts (`prefswift.scoring.batches`).
    `wpo`: also the WPO statistics (one more LM-head pass, no gradient)."""
    if isinstance(batch, PrefixSharedPairs):
        return _prefix_shared_forward(model, batch, chunk_size, nll_all, wpo)
    if isinstance(batch, (PaddedPairs, PackedPairs)):
        return _concatenated_forward(model, batch, chunk_size, nll_all, wpo)
    raise TypeError(f"pair_forward: a batch of pairs from PairCollator or PrefixSharedCollator, got "
                    f"{type(batch).__name__}")


# attention implementations that apply a 4D boolean tensor mask as given; flex_attention needs a BlockMask (a plain
# tensor handed to its path gives silently wrong numbers), flash-attn kernels take no 4D mask at all
MASK_IMPLEMENTATIONS = ("sdpa", "eager")


def attention_implementation(model) -> str:
    return getattr(unwrap(model).config, "_attn_implementation", None) or "sdpa"


def check_mask_support(model) -> str:
    """Refuse to run the prefix-shared layout (a 4D tensor mask) on an attention that would not apply it; the
    attention the model runs otherwise."""
    impl = attention_implementation(model)
    if impl not in MASK_IMPLEMENTATIONS:
        raise ValueError(f"prefix sharing needs sdpa or eager attention (a 4D tensor mask), the model runs {impl}: "
                         "load it with attn_implementation='sdpa', or use --prefix_sharing false")
    return impl


def check_sliding_window(model, position_ids: torch.Tensor) -> None:
    """A 4D mask is applied as given, so sliding-window layers (Gemma 2/3, Mistral v0.1) would see past their window:
    exact while every sequence is shorter than the window, refused beyond it."""
    cfg = text_config(unwrap(model).config)
    window = getattr(cfg, "sliding_window", None)
    layer_types = getattr(cfg, "layer_types", None)
    slides = window is not None and (layer_types is None or "sliding_attention" in layer_types)
    if slides and int(position_ids.max()) >= window:
        raise PrefswiftError(f"prefix sharing: a sequence of {int(position_ids.max()) + 1} tokens is longer than "
                             f"the model's sliding attention window ({window}), which a 4D mask does not apply; "
                             "use --prefix_sharing false")


def mask_for(impl: str, mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The 4D boolean mask (True = may attend) in the form `impl` applies. SDPA takes it as is; transformers' eager
    attention *adds* a 4D mask to the scores as given, so a boolean one would add 1/0 instead of masking: it gets
    0 / the dtype's minimum (what transformers' own eager mask holds)."""
    if impl != "eager" or mask.dtype != torch.bool:
        return mask
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)


def _backbone_hidden(model, **inputs):
    causal_lm = unwrap(model)
    with capture_last_hidden(causal_lm) as store:
        model(**inputs, use_cache=False, logits_to_keep=1)
    return causal_lm, store.pop("hidden"), store.get("autocast")


def _as_backbone(autocast):
    """The autocast the backbone ran in, for LM-head work done after it (so a head upcast to fp32, as QLoRA does,
    still runs its GEMMs in the compute dtype)."""
    return torch.autocast(autocast[0], dtype=autocast[1]) if autocast else nullcontext()


def _head_logps(causal_lm, hidden, labels, chunk_size: int, autocast) -> torch.Tensor:
    """Chunked LM-head log-probs under the backbone's autocast, with the model's own logit scale / soft-cap."""
    scale, cap = logit_transform(causal_lm.config)
    with _as_backbone(autocast):
        return token_logps(hidden, causal_lm.get_output_embeddings(), labels, chunk_size=chunk_size,
                           logit_scale=scale, logit_softcap=cap)


def _head_wpo_aligned(causal_lm, hidden, labels, per_token, chunk_size: int, autocast) -> torch.Tensor:
    """log p(token) - log sum_v p(v)^2 per position (detached), for the WPO weights."""
    scale, cap = logit_transform(causal_lm.config)
    with _as_backbone(autocast):
        return per_token.detach() - token_log_sum_sq_probs(hidden, causal_lm.get_output_embeddings(), labels,
                                                           chunk_size=chunk_size, logit_scale=scale,
                                                           logit_softcap=cap)


def _concatenated_forward(model, batch, chunk_size: int, nll_all: bool, wpo: bool) -> PairLogps:
    """Chosen rows then rejected rows (PairCollator), one forward. Padding-free packed rows (with seq_id: no mask,
    positions restarting per sequence) are put back into one row per sequence after the LM head, so both layouts
    reduce the same way."""
    input_ids, completion_mask = batch["input_ids"], batch["completion_mask"]
    packed = isinstance(batch, PackedPairs)
    if packed:
        causal_lm, hidden, autocast = _backbone_hidden(model, input_ids=input_ids, position_ids=batch["position_ids"])
        seq_id = batch["seq_id"]
        real = (seq_id[:, 1:] == seq_id[:, :-1]) & (seq_id[:, 1:] >= 0)  # the predictor is in the same sequence
    else:
        attention_mask = batch["attention_mask"]
        causal_lm, hidden, autocast = _backbone_hidden(model, input_ids=input_ids, attention_mask=attention_mask)
        real = attention_mask[:, 1:].bool()
    hidden = hidden[:, :-1]
    # token t is predicted from position t-1: score response tokens (and, for nll_all, every real token)
    comp_mask = completion_mask[:, 1:].bool() & real
    score_mask = real if nll_all else comp_mask
    labels = input_ids[:, 1:].masked_fill(~score_mask, IGNORE)
    per_token = _head_logps(causal_lm, hidden, labels, chunk_size, autocast)
    aligned = _head_wpo_aligned(causal_lm, hidden, labels, per_token, chunk_size, autocast) if wpo else None
    comp, full = comp_mask.to(per_token.dtype), score_mask.to(per_token.dtype)
    if packed:
        rows = _sequence_rows(seq_id, batch["position_ids"], real)
        per_token, comp, full = rows(per_token), rows(comp), rows(full)
        aligned = rows(aligned) if wpo else None
    b = per_token.shape[0] // 2
    return _reduce(per_token[:b], per_token[b:], comp[:b], comp[b:], full[:b] if nll_all else None,
                   (aligned[:b], aligned[b:]) if wpo else None)


def _sequence_rows(seq_id, position_ids, real):
    """For packed rows: a function taking [R, T-1] per-target-token values to [sequences, L] — one row per
    sequence, the token at position p in column p-1, as in the padded layout."""
    sid = seq_id[:, 1:][real]
    col = position_ids[:, 1:].to(seq_id.device)[real] - 1
    shape = (int(seq_id.max()) + 1, int(col.max()) + 1)

    def rows(values):
        return values.new_zeros(shape).index_put((sid, col), values[real.to(values.device)])

    return rows


def completion_logps(model, input_ids, attention_mask, completion_mask, *,
                     chunk_size: int = LOGPROB_CHUNK_SIZE) -> Tuple[torch.Tensor, torch.Tensor]:
    """One forward over right-padded rows: ([B] sum of the completion tokens' log-probs, [B] their counts)."""
    causal_lm, hidden, autocast = _backbone_hidden(model, input_ids=input_ids, attention_mask=attention_mask)
    score_mask = completion_mask[:, 1:].bool()
    labels = input_ids[:, 1:].masked_fill(~score_mask, IGNORE)
    per_token = _head_logps(causal_lm, hidden[:, :-1], labels, chunk_size, autocast)
    mask = score_mask.to(per_token.dtype)
    return (per_token * mask).sum(-1), mask.sum(-1)


def _prefix_shared_forward(model, batch, chunk_size: int, nll_all: bool, wpo: bool) -> PairLogps:
    """Prompt, chosen, rejected blocks with a 4D mask, one or several pairs per row (PrefixSharedCollator)."""
    impl = check_mask_support(model)
    check_sliding_window(model, batch["position_ids"])
    mask = mask_for(impl, batch["attention_mask"], _scores_dtype(model))
    causal_lm, hidden, autocast = _backbone_hidden(model, input_ids=batch["input_ids"], attention_mask=mask,
                                                   position_ids=batch["position_ids"])
    # model parallel: the last hidden state lives where the final norm is, the batch where the embeddings are.
    # pred_index is flat over rows x positions (packed rows hold several pairs): [B pairs, K] -> [B, K, H]
    pred_index = batch["pred_index"].to(hidden.device)
    gathered = hidden.reshape(-1, hidden.shape[-1])[pred_index]
    seg = batch["score_seg"]
    is_chosen, is_rejected, is_prompt = seg == Segment.CHOSEN, seg == Segment.REJECTED, seg == Segment.PROMPT
    scored = is_chosen | is_rejected | (is_prompt & nll_all)
    labels = batch["target_ids"].masked_fill(~scored, IGNORE)
    per_token = _head_logps(causal_lm, gathered, labels, chunk_size, autocast)
    chosen, rejected = is_chosen.to(per_token.dtype), is_rejected.to(per_token.dtype)
    full = (is_chosen | is_prompt).to(per_token.dtype) if nll_all else None
    aligned = _head_wpo_aligned(causal_lm, gathered, labels, per_token, chunk_size, autocast) if wpo else None
    return _reduce(per_token, per_token, chosen, rejected, full, (aligned, aligned) if wpo else None)


def _scores_dtype(model) -> torch.dtype:
    """The dtype eager attention's scores have: autocast's when it is on, else the model's floating weights'."""
    for device_type in ("cuda", "cpu"):
        if torch.is_autocast_enabled(device_type):
            return torch.get_autocast_dtype(device_type)
    causal_lm = unwrap(model)
    return next((p.dtype for p in causal_lm.parameters() if p.is_floating_point()), torch.float32)


def _reduce(chosen_tok, rejected_tok, chosen_mask, rejected_mask, chosen_full_mask=None, wpo_aligned=None
            ) -> PairLogps:
    """Per-token log-probs + masks -> per-sequence sums, counts, the pooled chosen NLL (over the whole chosen
    sequence too with `chosen_full_mask`), LD-DPO's tails and, with `wpo_aligned` ((chosen, rejected) per-token
    values), the WPO means."""
    chosen_tokens, rejected_tokens = chosen_mask.sum(-1), rejected_mask.sum(-1)
    shared = torch.minimum(chosen_tokens, rejected_tokens).unsqueeze(-1)
    full = chosen_full_mask is not None
    return PairLogps(
        chosen_logps=(chosen_tok * chosen_mask).sum(-1), rejected_logps=(rejected_tok * rejected_mask).sum(-1),
        chosen_tokens=chosen_tokens, rejected_tokens=rejected_tokens,
        chosen_nll_sum=-(chosen_tok * chosen_mask).sum(), chosen_nll_count=chosen_mask.sum(),
        chosen_nll_all_sum=-(chosen_tok * chosen_full_mask).sum() if full else None,
        chosen_nll_all_count=chosen_full_mask.sum() if full else None,
        chosen_tail_logps=(chosen_tok * chosen_mask * (chosen_mask.cumsum(-1) > shared)).sum(-1),
        rejected_tail_logps=(rejected_tok * rejected_mask * (rejected_mask.cumsum(-1) > shared)).sum(-1),
        chosen_wpo_mean=_masked_mean(wpo_aligned[0], chosen_mask) if wpo_aligned else None,
        rejected_wpo_mean=_masked_mean(wpo_aligned[1], rejected_mask) if wpo_aligned else None)


def _masked_mean(values, mask):
    """[B] mean of `values` over `mask` per row (at least one token counted)."""
    return (values * mask).sum(-1) / mask.sum(-1).clamp(min=1)
