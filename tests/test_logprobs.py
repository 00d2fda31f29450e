"""prefswift.scoring.logprobs: chunked token log-probs equal the naive full-logits computation (values and grads),
and TRL 1.16's fused LM head on a tiny Llama."""

import pytest
import torch
from torch import nn

from prefswift.scoring.logprobs import token_logps
from trl_metrics import masked_mean, next_token_labels, sequence_logps, token_logps_with_stats


def _naive(hidden, head, labels, ignore_index=-100):
    logits = head(hidden)
    logits = logits.to(torch.float64 if logits.dtype == torch.float64 else torch.float32)
    logp = logits.log_softmax(-1)
    mask = labels != ignore_index
    picked = logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return picked * mask


def _setup(dtype, B=3, T=9, H=8, V=37, seed=0, bias=True):
    g = torch.Generator().manual_seed(seed)
    head = nn.Linear(H, V, bias=bias).to(dtype)
    with torch.no_grad():
        head.weight.copy_(torch.randn(V, H, generator=g, dtype=dtype))
        if bias:
            head.bias.copy_(torch.randn(V, generator=g, dtype=dtype))
    hidden = torch.randn(B, T, H, generator=g, dtype=dtype)
    labels = torch.randint(0, V, (B, T), generator=g)
    labels[torch.rand(B, T, generator=g) < 0.3] = -100
    labels[0] = -100  # a fully ignored row
    return hidden, head, labels


def _grads(fn, hidden, head, labels, weight):
    hidden = hidden.clone().requires_grad_(True)
    head.zero_grad()
    out = fn(hidden, head, labels)
    (out * weight).sum().backward()
    return out.detach(), hidden.grad, head.weight.grad.clone(), head.bias.grad.clone()


@pytest.mark.parametrize("dtype,atol", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
@pytest.mark.parametrize("chunk_size", [1, 4, 1024])
def test_values_and_grads_match_naive(dtype, atol, chunk_size):
    hidden, head, labels = _setup(dtype)
    weight = torch.randn(labels.shape, generator=torch.Generator().manual_seed(1), dtype=dtype)  # upstream grad
    ours = _grads(lambda h, m, lab: token_logps(h, m, lab, chunk_size=chunk_size), hidden, head, labels, weight)
    ref = _grads(_naive, hidden, head, labels, weight)
    assert ours[0].dtype == dtype
    for a, b in zip(ours, ref):
        # scale-relative: |log p| ~ 10 here and 1e-6 absolute is below one float32 ulp at that size
        tol = atol * max(1.0, b.abs().max().item())
        assert (a - b).abs().max().item() <= tol, (a - b).abs().max()
    assert (ours[0][labels == -100] == 0).all()


def test_flat_input_and_no_grad_path():
    hidden, head, labels = _setup(torch.float64)
    flat = token_logps(hidden.reshape(-1, hidden.size(-1)), head, labels.reshape(-1), chunk_size=5)
    with torch.no_grad():
        nograd = token_logps(hidden, head, labels, chunk_size=5)
    assert torch.allclose(flat.view(labels.shape), _naive(hidden, head, labels).detach(), atol=1e-12)
    assert torch.equal(nograd, flat.view(labels.shape).detach())


class _WrappedHead(nn.Module):
    """A head that is not a plain nn.Linear (as a LoRA-wrapped one): called as a module, never the frozen-head path."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x)


@pytest.mark.parametrize("case", ["head-trains", "frozen-wrapped-head", "head-trains-hidden-frozen", "no-grad"])
def test_backward_recomputes_chunk_logits_instead_of_saving_them(case):
    """Whenever a gradient flows (into the hidden states or the head), each chunk's logits are recomputed in backward
    instead of kept: one extra head call per chunk; under no_grad one call per chunk."""
    hidden, head, labels = _setup(torch.float32)
    if case == "frozen-wrapped-head":
        head = _WrappedHead(head.requires_grad_(False))
    calls = []
    head.register_forward_hook(lambda mod, inp, out: calls.append(inp[0].shape[0]))
    n_valid = int((labels != -100).sum())
    chunk = 4
    n_chunks = -(-n_valid // chunk)
    with torch.set_grad_enabled(case != "no-grad"):
        out = token_logps(hidden.requires_grad_(case != "head-trains-hidden-frozen"), head, labels, chunk_size=chunk)
    assert len(calls) == n_chunks and sum(calls) == n_valid  # only labelled positions are projected
    if case == "no-grad":
        assert not out.requires_grad
        return
    out.sum().backward()
    assert len(calls) == 2 * n_chunks  # each chunk's logits recomputed once in backward


def test_log_sum_sq_probs_match_naive():
    """WPO's normaliser log sum_v p_v^2 at every labelled position, 0 elsewhere. Hand-worked: a head of zeros gives
    uniform p = 1/V, so log(V * V^-2) = -log V (V = 37: -3.6109)."""
    from prefswift.scoring.logprobs import token_log_sum_sq_probs

    hidden, head, labels = _setup(torch.float64)
    got = token_log_sum_sq_probs(hidden, head, labels, chunk_size=4)
    p = head(hidden).softmax(-1)
    want = torch.log((p ** 2).sum(-1)) * (labels != -100)
    torch.testing.assert_close(got, want.detach(), atol=1e-12, rtol=1e-12)
    assert (got[labels == -100] == 0).all() and (got[labels != -100] < 0).all()
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
    uniform = token_log_sum_sq_probs(hidden, head, labels, chunk_size=5)
    assert uniform[labels != -100].sub(-3.6109).abs().max() < 1e-4


def test_bf16_hidden_gives_float32_logps():
    hidden, head, labels = _setup(torch.bfloat16)
    out = token_logps(hidden, head, labels, chunk_size=3)
    assert out.dtype == torch.float32
    assert torch.allclose(out, _naive(hidden, head, labels), atol=1e-5)


def test_all_ignored_is_zero_and_still_differentiable():
    hidden, head, labels = _setup(torch.float32)
    labels[:] = -100
    h = hidden.clone().requires_grad_(True)
    out = token_logps(h, head, labels)
    assert torch.equal(out, torch.zeros_like(out))
    out.sum().backward()
    assert torch.equal(h.grad, torch.zeros_like(h)) and torch.equal(head.weight.grad, torch.zeros_like(head.weight))


def test_stats_match_naive():
    hidden, head, labels = _setup(torch.float64)
    h = hidden.clone().requires_grad_(True)
    res = token_logps_with_stats(h, head, labels, chunk_size=4)
    logits = head(hidden)
    mask = labels != -100
    logp = logits.log_softmax(-1)
    entropy = -(logp.exp() * logp).sum(-1) * mask
    assert torch.allclose(res.logps, _naive(hidden, head, labels), atol=1e-12)
    assert torch.allclose(res.entropy, entropy, atol=1e-12)
    assert torch.allclose(res.mean_logits, logits.mean(-1) * mask, atol=1e-12)
    assert torch.equal(res.is_top1, (logits.argmax(-1) == labels) & mask)
    assert not res.entropy.requires_grad and not res.mean_logits.requires_grad
    res.logps.sum().backward()  # stats are not recomputed (nor appended) during backward
    assert h.grad is not None


def test_logit_scale_and_softcap():
    hidden, head, labels = _setup(torch.float64)

    class Scaled(nn.Module):
        def forward(self, x):
            return torch.tanh(head(x) * 0.5 / 3.0) * 3.0

    ours = token_logps(hidden, head, labels, logit_scale=0.5, logit_softcap=3.0)
    assert torch.allclose(ours, _naive(hidden, Scaled(), labels), atol=1e-12)


def test_peft_lora_lm_head_is_applied_and_trained():
    peft = pytest.importorskip("peft")

    class Tiny(nn.Module):
        def __init__(self, head):
            super().__init__()
            self.lm_head = head

    hidden, head, labels = _setup(torch.float64, bias=False)
    model = peft.get_peft_model(
        Tiny(head), peft.LoraConfig(r=2, target_modules=["lm_head"], init_lora_weights=False, lora_dropout=0.0)
    )
    lora_head = model.base_model.model.lm_head
    ours = token_logps(hidden, lora_head, labels, chunk_size=4)
    without_adapter = _naive(hidden, head, labels)  # `head` is now the LoRA layer's base_layer
    naive = _naive(hidden, lora_head, labels)
    assert torch.allclose(ours, naive, atol=1e-12)
    assert not torch.allclose(ours, without_adapter, atol=1e-3)  # the adapter really acts
    lora_params = [p for n, p in model.named_parameters() if "lora_" in n]
    g_ours = torch.autograd.grad(ours.sum(), lora_params)
    g_ref = torch.autograd.grad(naive.sum(), lora_params)
    for a, b in zip(g_ours, g_ref):
        assert torch.allclose(a, b, atol=1e-12)


def test_matches_trl_fused_lm_head_on_tiny_llama():
    transformers = pytest.importorskip("transformers")
    trl_utils = pytest.importorskip("trl.trainer.utils")
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                   num_attention_heads=2, num_key_value_heads=2)  # fmt: skip
    model = transformers.LlamaForCausalLM(cfg).float()
    trl_utils.add_fused_lm_head(model, outputs=("log_probs", "entropy", "mean_logits", "is_top1"))
    input_ids = torch.randint(0, 64, (3, 10))
    attention = torch.ones_like(input_ids)
    attention[1, 7:] = 0
    completion = torch.zeros_like(input_ids)
    completion[:, 4:] = 1
    completion *= attention
    trl_labels = input_ids.masked_fill(completion == 0, -100)  # as DPOTrainer builds them
    trl_out = model(input_ids=input_ids, attention_mask=attention, labels=trl_labels, fused_lm_head=True)

    hidden = model.model(input_ids=input_ids, attention_mask=attention).last_hidden_state
    labels = next_token_labels(input_ids, completion)
    ours = token_logps_with_stats(hidden, model.lm_head, labels, chunk_size=5)
    # TRL's outputs cover positions 0..T-2; ours cover 0..T-1 with the last one ignored
    for name in ("logps", "entropy", "mean_logits"):
        theirs = getattr(trl_out, "log_probs" if name == "logps" else name)
        assert torch.allclose(getattr(ours, name)[:, :-1], theirs, atol=1e-5), name
    assert torch.equal(ours.is_top1[:, :-1], trl_out.is_top1)
    # gradients w.r.t. every parameter
    g_theirs = torch.autograd.grad(trl_out.log_probs.sum(), list(model.parameters()))
    g_ours = torch.autograd.grad(ours.logps.sum(), list(model.parameters()))
    for a, b in zip(g_ours, g_theirs):
        assert torch.allclose(a, b, atol=1e-5)


def test_sequence_logps_next_token_labels_masked_mean():
    ids = torch.tensor([[5, 6, 7, 8], [1, 2, 0, 0]])
    mask = torch.tensor([[0, 1, 1, 1], [0, 1, 0, 0]])
    assert next_token_labels(ids, mask).tolist() == [[6, 7, 8, -100], [2, -100, -100, -100]]
    tok = torch.tensor([[-1.0, -2.0, -3.0, 0.0], [-4.0, 0.0, 0.0, 0.0]])
    s, n = sequence_logps(tok, next_token_labels(ids, mask) != -100)
    assert s.tolist() == [-6.0, -4.0] and n.tolist() == [3.0, 1.0]
    assert masked_mean(tok, tok != 0).item() == pytest.approx(-2.5)
    assert masked_mean(tok, torch.zeros_like(tok)).item() == 0.0


@pytest.mark.parametrize("bias,scale,cap", [(False, 1.0, None), (True, 0.5, None), (False, 1.0, 3.0),
                                            (True, 2.0, 5.0)])
def test_frozen_head_backward_equals_autograd(bias, scale, cap):
    """The frozen (LoRA) head's written-out backward: values and gradients equal autograd's through the module."""
    from prefswift.scoring.frozen_head import is_frozen_linear_head

    torch.manual_seed(0)
    head = nn.Linear(16, 40, bias=bias).double().requires_grad_(False)
    assert is_frozen_linear_head(head)
    hidden = torch.randn(3, 7, 16, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 40, (3, 7))
    labels[1, 2:] = -100
    ours = token_logps(hidden, head, labels, chunk_size=4, logit_scale=scale, logit_softcap=cap)
    (g_ours,) = torch.autograd.grad((ours * torch.linspace(0.5, 2, 7)).sum(), hidden)

    def naive(h):
        z = head(h) * scale
        z = torch.tanh(z / cap) * cap if cap else z
        return z.log_softmax(-1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1) * (labels != -100)

    want = naive(hidden)
    (g_want,) = torch.autograd.grad((want * torch.linspace(0.5, 2, 7)).sum(), hidden)
    torch.testing.assert_close(ours, want, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(g_ours, g_want, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("frozen", [True, False], ids=["frozen-head", "trainable-head-checkpointed"])
def test_head_under_bf16_autocast_matches_plain_autograd(frozen):
    """Under bf16 autocast both head paths (the frozen head's written-out backward, the trainable head's checkpointed
    chunks) give the numbers of plain autograd through the same bf16 matmul, log-softmax in fp32: values to 1e-6,
    gradient to 1e-4 relative (measured: <= 1e-5; only summation order differs). Against full fp32 the gradient's
    relative error is bf16's rounding of the logits and of the backward matmul: measured 0.27-0.30% over five seeds
    (bf16's unit roundoff is 0.39%), bound 0.6%; a gradient scaled by 1.5% is 1.5% off and fails both checks."""
    torch.manual_seed(0)
    head = nn.Linear(32, 64, bias=False)
    head.requires_grad_(not frozen)
    hidden = torch.randn(2, 9, 32, requires_grad=True)
    labels = torch.randint(0, 64, (2, 9))
    weights = torch.linspace(0.5, 2, 9)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = token_logps(hidden, head, labels, chunk_size=5)
    (g_ours,) = torch.autograd.grad((ours * weights).sum(), hidden)

    def plain(dtype):
        logits = nn.functional.linear(hidden.to(dtype), head.weight.detach().to(dtype)).float()
        values = logits.log_softmax(-1).gather(-1, labels[..., None]).squeeze(-1)
        return values, torch.autograd.grad((values * weights).sum(), hidden)[0]

    def rel(a, b):
        return ((a - b).norm() / b.norm()).item()

    bf16, g_bf16 = plain(torch.bfloat16)
    fp32, g_fp32 = plain(torch.float32)
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, bf16, atol=1e-6, rtol=0)
    assert rel(g_ours, g_bf16) <= 1e-4
    assert (ours - fp32).abs().max() <= 1e-2                      # |logit| ~ 1: bf16 rounding of the logits
    assert rel(g_ours, g_fp32) <= 6e-3


def test_chunk_size_default_suits_the_device():
    """0 = auto: the CPU default measured here; on a GPU a 1 GiB budget of fp32 logits (large chunks: 256-token
    chunks made DPO slower than TRL on an H200)."""
    from prefswift.arguments import parse_command
    from prefswift.scoring.logprobs import resolve_chunk_size

    assert parse_command("dpo", []).pref.logprob_chunk_size == 0
    assert resolve_chunk_size(0, 152064, "cpu") == 256
    assert resolve_chunk_size(0, 152064, "cuda") == 1728 and resolve_chunk_size(0, 128256, "cuda") == 2048
    assert resolve_chunk_size(0, 32, "cuda") > 256 and resolve_chunk_size(0, 10**9, "cuda") == 256
    assert resolve_chunk_size(512, 152064, "cuda") == 512
    assert all(type(resolve_chunk_size(0, v, d)) is int for v in (32, 152064) for d in ("cpu", "cuda"))
    assert resolve_chunk_size(0, 1, "cuda") == resolve_chunk_size(0, 0, "cuda") == 2 ** 30 // 4  # 1 GiB of fp32


def test_only_partitioned_parameters_are_gathered():
    """The frozen head gathers a DeepSpeed ZeRO-3 weight only while it is partitioned: an ordinary parameter, or a
    ZeRO-3 one an outer context already made available, needs no gathering (no deepspeed call at all)."""
    from contextlib import nullcontext
    from types import SimpleNamespace

    from prefswift.scoring.frozen_head import _gathered

    plain = nn.Parameter(torch.zeros(2))
    available = nn.Parameter(torch.zeros(2))
    available.ds_id, available.ds_status = 7, SimpleNamespace(name="AVAILABLE")
    assert type(_gathered([plain])) is nullcontext and type(_gathered([plain, available])) is nullcontext


@pytest.mark.parametrize("bias", [False, True])
def test_a_partitioned_frozen_head_is_gathered_in_forward_and_backward(monkeypatch, bias):
    """ZeRO-3 contract of the frozen head, without DeepSpeed: a weight marked partitioned (ds_id, status not
    AVAILABLE) is handed to deepspeed.zero.GatheredParameters once in forward and once in backward, with the head's
    real parameters only (no None for a missing bias), and the numbers are still autograd's."""
    import sys
    from contextlib import contextmanager
    from types import SimpleNamespace

    gathered = []

    @contextmanager
    def gathered_parameters(params, modifier_rank=None):
        gathered.append(list(params))
        yield

    monkeypatch.setitem(sys.modules, "deepspeed", SimpleNamespace(zero=SimpleNamespace(
        GatheredParameters=gathered_parameters)))
    torch.manual_seed(0)
    head = nn.Linear(8, 16, bias=bias).double().requires_grad_(False)
    for p in head.parameters():
        p.ds_id, p.ds_status = 1, SimpleNamespace(name="NOT_AVAILABLE")
    hidden = torch.randn(5, 8, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 16, (5,))
    out = token_logps(hidden, head, labels, chunk_size=8)
    out.sum().backward()
    params = [head.weight] + ([head.bias] if bias else [])
    assert len(gathered) == 2 and all(len(g) == len(params) and all(a is b for a, b in zip(g, params))
                                      for g in gathered)
    want = torch.log_softmax(head(hidden), -1).gather(-1, labels[:, None]).squeeze(-1)
    (g_want,) = torch.autograd.grad(want.sum(), hidden)
    torch.testing.assert_close(out, want.detach(), atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(hidden.grad, g_want, atol=1e-12, rtol=1e-12)
