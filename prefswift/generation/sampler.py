"""The next token of every row from the step's last-position logits, as transformers' `generate` picks it:

1. repetition penalty (`repetition_penalty` != 1): the logit of every token already in the row (prompt and
   generated) is divided by the penalty when positive, multiplied when negative (transformers'
   RepetitionPenaltyLogitsProcessor);
2. greedy at temperature 0: the largest (penalized) logit;
3. else logits / temperature, only the `top_k` largest kept (ties with the k-th kept too; TopKLogitsWarper), then
   the smallest set of tokens whose probability reaches `top_p` (the most likely always kept), drawn with the row's
   own generator.

Log-probs (when a request asks for them) are those of the model's own distribution, log_softmax(logits), before
the penalty, temperature, top_k and top_p, as OpenAI's and vLLM's servers report them.
"""
import torch

from .types import TokenLogprob


def penalize_repeats(logits: torch.Tensor, seen_ids, penalty: float) -> torch.Tensor:
    """[V] logits with the tokens in `seen_ids` penalized (a copy; `logits` itself is left alone)."""
    if penalty == 1.0 or not len(seen_ids):
        return logits
    seen = torch.as_tensor(seen_ids, dtype=torch.long, device=logits.device).unique()
    picked = logits[seen]
    out = logits.clone()
    out[seen] = torch.where(picked < 0, picked * penalty, picked / penalty)
    return out


def keep_top_k(logits: torch.Tensor, top_k: int) -> torch.Tensor:
    """logits with everything below the k-th largest set to -inf (k <= 0 or >= the vocabulary: unchanged)."""
    if top_k <= 0 or top_k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, top_k).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def nucleus(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """probs with everything outside the smallest set of tokens whose probability reaches top_p set to 0."""
    if top_p >= 1.0:
        return probs
    sorted_p, order = probs.sort(descending=True)
    outside = sorted_p.cumsum(-1) - sorted_p > top_p      # the most likely token is always kept
    sorted_p = sorted_p.masked_fill(outside, 0.0)
    return torch.zeros_like(probs).scatter(-1, order, sorted_p)


def sampling_probs(logits: torch.Tensor, params) -> torch.Tensor:
    """[V] (already penalized) logits -> the distribution a sampled token is drawn from (temperature, top_k, top_p)."""
    scaled = keep_top_k(logits / params.temperature, params.top_k)
    probs = nucleus(torch.softmax(scaled, -1), params.top_p)
    return probs / probs.sum(-1, keepdim=True)


def _token_logprobs(engine, logp_row: torch.Tensor, token: int, top: int):
    decode = engine.tokenizer.decode
    entry = TokenLogprob(token, decode([token]), float(logp_row[token]))
    if top:
        values, ids = logp_row.topk(top)
        entry.top = [TokenLogprob(int(i), decode([int(i)]), float(v)) for v, i in zip(values.tolist(), ids.tolist())]
    return entry


def sample_next(engine, logits: torch.Tensor, rows) -> None:
    greedy = logits.argmax(-1).tolist()
    want_logprobs = any(r.params.logprobs for r in rows)
    logp = torch.log_softmax(logits, -1) if want_logprobs else None
    for i, row in enumerate(rows):
        p = row.params
        if p.temperature == 0 and p.repetition_penalty == 1.0:
            token = greedy[i]       # the common case: nothing per row but a list lookup
        else:
            scores = logits[i]
            if p.repetition_penalty != 1.0:
                scores = penalize_repeats(scores, row.prompt_ids + row.generated, p.repetition_penalty)
            if p.temperature == 0:
                token = int(scores.argmax())
            else:
                token = int(torch.multinomial(sampling_probs(scores, p), 1, generator=row.generator))
        entry = _token_logprobs(engine, logp[i], token, p.top_logprobs) if p.logprobs else None
        row.accept(token, entry)


__all__ = ["sample_next", "penalize_repeats", "keep_top_k", "nucleus", "sampling_probs"]
