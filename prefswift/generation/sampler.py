"""The next token of every row from the step's last-position logits: greedy at temperature 0, else drawn from
softmax(logits / temperature) restricted to the top_p nucleus, with the row's own generator.

Log-probs (when a request asks for them) are those of the model's own distribution, log_softmax(logits), before
temperature and top_p, as OpenAI's and vLLM's servers report them.
"""
import torch

from .types import TokenLogprob


def _nucleus(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """probs with everything outside the smallest set of tokens whose probability reaches top_p set to 0."""
    if top_p >= 1.0:
        return probs
    sorted_p, order = probs.sort(descending=True)
    outside = sorted_p.cumsum(-1) - sorted_p > top_p      # the most likely token is always kept
    sorted_p = sorted_p.masked_fill(outside, 0.0)
    return torch.zeros_like(probs).scatter(-1, order, sorted_p)


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
        if p.temperature == 0:
            token = greedy[i]
        else:
            probs = _nucleus(torch.softmax(logits[i] / p.temperature, -1), p.top_p)
            token = int(torch.multinomial(probs, 1, generator=row.generator))
        entry = _token_logprobs(engine, logp[i], token, p.top_logprobs) if p.logprobs else None
        row.accept(token, entry)


__all__ = ["sample_next"]
