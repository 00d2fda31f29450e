"""Prefix sharing (one row per pair, 4D mask, restarted positions) gives the numbers of the concatenated layout:
per-sequence log-probs, token counts, both NLLs and the gradients."""
import pytest
import torch
from transformers import AutoModelForCausalLM

from prefswift.scoring.collators import PairCollator, PrefixSharedCollator
from prefswift.scoring.forward import pair_forward

SHAPES = [(5, 3, 4), (9, 6, 1), (2, 7, 7), (12, 1, 9)]  # prompt, chosen, rejected lengths: padding on every row


def rows(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [{"prompt_input_ids": torch.randint(10, 900, (p,), generator=g).tolist(),
             "chosen_input_ids": torch.randint(10, 900, (c,), generator=g).tolist(),
             "rejected_input_ids": torch.randint(10, 900, (r,), generator=g).tolist()} for p, c, r in SHAPES]


@pytest.mark.parametrize("which", ["tiny_llama3_dir", "tiny_qwen_dir"])
@pytest.mark.parametrize("nll_all", [False, True])
def test_prefix_shared_equals_concatenated(request, which, nll_all):
    model = AutoModelForCausalLM.from_pretrained(str(request.getfixturevalue(which)), attn_implementation="sdpa")
    data = rows()
    grads = []
    outs = []
    for collator in (PairCollator(0), PrefixSharedCollator(0)):
        model.zero_grad()
        out = pair_forward(model, collator(data), chunk_size=5, nll_all=nll_all)
        loss = out.chosen_logps.sum() - 0.5 * out.rejected_logps.sum() + (out.chosen_nll_all if nll_all
                                                                          else out.chosen_nll)
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
        outs.append(out)
    a, b = outs
    for name in ("chosen_logps", "rejected_logps", "chosen_tokens", "rejected_tokens", "chosen_nll"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), atol=1e-5, rtol=1e-6)
    if nll_all:
        torch.testing.assert_close(a.chosen_nll_all, b.chosen_nll_all, atol=1e-6, rtol=1e-6)
    for n in grads[0]:
        scale = grads[0][n].abs().max().clamp(min=1e-6)
        assert (grads[0][n] - grads[1][n]).abs().max() / scale < 1e-4, n


def test_prefix_shared_batch_shape_and_mask():
    batch = PrefixSharedCollator(0)(rows())
    b, t = batch["input_ids"].shape
    assert b == len(SHAPES) and t == max(p + c + r for p, c, r in SHAPES)
    mask = batch["attention_mask"][0, 0]  # pair 0: prompt 5, chosen 3, rejected 4
    assert mask[5:8, :5].all() and mask[8:12, :5].all()          # both responses see the prompt
    assert not mask[8:12, 5:8].any()                              # rejected never sees chosen
    assert batch["position_ids"][0, 8].item() == 5                # rejected positions restart after the prompt
    assert batch["pred_index"][0, 4 + 3].item() == 4              # first rejected token predicted from prompt end
    assert mask.any(-1).all()                                     # no fully masked row (padding sees itself)
