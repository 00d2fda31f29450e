"""Numeric parity of the loss formulas (prefswift.algorithms.dpo / orpo / cpo / simpo) with TRL 1.16.

TRL's loss code is called directly wherever it runs without a real model:
- DPO: `DPOTrainer._compute_loss` on an `object.__new__` trainer with a fake model that returns per-token
  log-probs the way TRL's fused LM head does (trl/trainer/dpo_trainer.py:1285-1599), reference log-probs
  precomputed (so they come from the batch).
- ORPO: `ORPOTrainer.odds_ratio_loss` (trl/experimental/orpo/orpo_trainer.py).
- CPO / SimPO: `CPOTrainer.cpo_loss` (trl/experimental/cpo/cpo_trainer.py).
Losses, gradients and logged metrics are compared. The whole ORPO/CPO/SimPO batch (loss, metrics, gradients) is
compared through the code path training runs (`PreferenceTrainer.batch_loss`) with TRL's trainers in
test_parity_trl.py.
"""

import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from prefswift.algorithms.cpo import cpo_logps_kind, cpo_loss
from prefswift.algorithms.dpo import dpo_loss
from prefswift.algorithms.orpo import log1mexp, orpo_loss
from prefswift.algorithms.simpo import simpo_loss
from prefswift.arguments.algorithms import DPO_LOSS_TYPES
from trl_metrics import dpo_logps_kind, masked_mean, nll_loss, preference_metrics, sequence_logps

trl_dpo = pytest.importorskip("trl.trainer.dpo_trainer")
trl_orpo = pytest.importorskip("trl.experimental.orpo.orpo_trainer")
trl_cpo = pytest.importorskip("trl.experimental.cpo.cpo_trainer")

ATOL = 1e-6
CPU = torch.device("cpu")


def _accelerator():
    ident = lambda x: x  # noqa: E731 — single process: gather is the identity
    return SimpleNamespace(device=CPU, gather=ident, gather_for_metrics=ident)


def _close(a, b, atol=ATOL):
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    assert torch.allclose(a, b, atol=atol, rtol=1e-6), (a, b)


# ----------------------------------------------------------------------------------------------- DPO


def _dpo_batch(B=6, T=12, seed=0):
    """Right-padded [chosen; rejected] batch like TRL's DataCollatorForPreference, prompt length >= 1."""
    g = torch.Generator().manual_seed(seed)
    completion_mask = torch.zeros(2 * B, T, dtype=torch.long)
    attention_mask = torch.zeros(2 * B, T, dtype=torch.long)
    for i in range(B):
        prompt = int(torch.randint(1, 5, (1,), generator=g))
        for row in (i, B + i):
            comp = int(torch.randint(1, T - prompt + 1, (1,), generator=g))
            attention_mask[row, : prompt + comp] = 1
            completion_mask[row, prompt : prompt + comp] = 1
    input_ids = torch.randint(0, 50, (2 * B, T), generator=g) * attention_mask
    # per-token quantities at the shifted positions (what the fused head returns), zero where masked
    shift = completion_mask[:, 1:].bool()
    per_token = (-torch.rand(2 * B, T - 1, generator=g) * 3).masked_fill(~shift, 0)
    mean_logits = (torch.randn(2 * B, T - 1, generator=g)).masked_fill(~shift, 0)
    entropy = (torch.rand(2 * B, T - 1, generator=g) * 4).masked_fill(~shift, 0)
    is_top1 = (torch.rand(2 * B, T - 1, generator=g) > 0.5) & shift
    ref = -torch.rand(2, B, generator=g) * 20
    return dict(
        input_ids=input_ids,
        attention_mask=attention_mask,
        completion_mask=completion_mask,
        per_token=per_token,
        mean_logits=mean_logits,
        entropy=entropy,
        is_top1=is_top1,
        ref_chosen=ref[0],
        ref_rejected=ref[1],
    )


class _FusedHeadModel(nn.Module):
    """Returns what TRL's fused LM head returns (log_probs etc. zero where the shifted label is -100)."""

    def __init__(self, per_token, entropy, mean_logits, is_top1):
        super().__init__()
        self.per_token = nn.Parameter(per_token.clone())
        self.stats = (entropy, mean_logits, is_top1)

    def forward(self, input_ids, attention_mask, use_cache, labels, fused_lm_head):
        assert fused_lm_head
        mask = labels[:, 1:] != -100
        entropy, mean_logits, is_top1 = self.stats
        return SimpleNamespace(
            log_probs=self.per_token * mask, entropy=entropy, mean_logits=mean_logits, is_top1=is_top1
        )


def _trl_dpo(batch, loss_types, loss_weights=None, beta=0.1, label_smoothing=0.0, discopop_tau=0.05,
             f_divergence_type="reverse_kl", f_alpha_divergence_coef=0.5):
    model = _FusedHeadModel(batch["per_token"], batch["entropy"], batch["mean_logits"], batch["is_top1"])
    model.train()
    t = object.__new__(trl_dpo.DPOTrainer)
    t.__dict__.update(
        model=model,
        accelerator=_accelerator(),
        args=SimpleNamespace(discopop_tau=discopop_tau, gradient_checkpointing_kwargs=None),
        aux_loss_enabled=False,
        ld_alpha=None,
        precompute_ref_logps=True,
        f_divergence_type=f_divergence_type,
        f_alpha_divergence_coef=f_alpha_divergence_coef,
        loss_types=list(loss_types),
        loss_weights=loss_weights or [1.0] * len(loss_types),
        beta=beta,
        label_smoothing=label_smoothing,
        use_weighting=False,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
        _total_train_tokens=0,
        _tp_size=1,
    )
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "completion_mask")}
    inputs["ref_chosen_logps"], inputs["ref_rejected_logps"] = batch["ref_chosen"], batch["ref_rejected"]
    loss = t._compute_loss(model, inputs, return_outputs=False)
    loss.backward()
    metrics = {k: v[-1] for k, v in t._metrics["train"].items()}
    return loss.detach(), model.per_token.grad, metrics


def _ours_dpo(batch, loss_types, loss_weights=None, beta=0.1, label_smoothing=0.0, **options):
    per_token = batch["per_token"].clone().requires_grad_(True)
    shift = batch["completion_mask"][:, 1:]
    logps, _ = sequence_logps(per_token, shift)
    lengths = batch["completion_mask"].sum(1)  # TRL divides by the unshifted completion mask
    chosen, rejected = logps.chunk(2)
    c_len, r_len = lengths.chunk(2)
    loss, out = 0.0, None
    for loss_type, w in zip(loss_types, loss_weights or [1.0] * len(loss_types)):
        if loss_type == "sft":
            loss = loss + w * nll_loss(per_token.chunk(2)[0], shift.chunk(2)[0])
            continue
        out = dpo_loss(
            chosen, rejected, batch["ref_chosen"], batch["ref_rejected"], beta=beta, loss_type=loss_type,
            label_smoothing=label_smoothing, chosen_lengths=c_len, rejected_lengths=r_len, **options,
        )  # fmt: skip
        loss = loss + w * out.losses.mean()
    loss.backward()
    if out is None:  # pure sft: rewards still logged by TRL
        out = dpo_loss(chosen, rejected, batch["ref_chosen"], batch["ref_rejected"], beta=beta)
    c_mask, r_mask = shift.chunk(2)
    m_chosen, m_rejected = batch["mean_logits"].chunk(2)
    metrics = preference_metrics(
        "dpo",
        out,
        chosen_logps=chosen,
        rejected_logps=rejected,
        logits_chosen=masked_mean(m_chosen, c_mask),
        logits_rejected=masked_mean(m_rejected, r_mask),
        entropy=masked_mean(batch["entropy"], shift),
        mean_token_accuracy=masked_mean(batch["is_top1"].chunk(2)[0].float(), c_mask),
    )
    return loss.detach(), per_token.grad, metrics


def _ls_for(loss_type):
    return {"robust": 0.1, "exo_pair": 1e-3, "aot": 0.05, "aot_unpaired": 0.05}.get(loss_type, 0.0)


@pytest.mark.parametrize("loss_type", DPO_LOSS_TYPES)
@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_dpo_loss_matches_trl_compute_loss(loss_type, beta):
    batch = _dpo_batch(seed=DPO_LOSS_TYPES.index(loss_type) + int(beta * 100))
    ls = _ls_for(loss_type)
    trl_loss, trl_grad, trl_metrics = _trl_dpo(batch, [loss_type], beta=beta, label_smoothing=ls)
    loss, grad, metrics = _ours_dpo(batch, [loss_type], beta=beta, label_smoothing=ls)
    _close(loss, trl_loss)
    _close(grad, trl_grad)
    for name, value in metrics.items():
        _close(value, trl_metrics[name])
    # every TRL metric that is a function of the batch (num_tokens is trainer state) is produced by us
    assert set(trl_metrics) - {"num_tokens"} == set(metrics)


@pytest.mark.parametrize(
    "loss_types,weights",
    [(["sigmoid", "sft"], [1.0, 0.5]), (["sigmoid", "bco_pair", "sft"], [0.8, 0.2, 1.0]), (["sft"], None)],
)
def test_dpo_multi_loss_and_sft_match_trl(loss_types, weights):
    batch = _dpo_batch(seed=7)
    trl_loss, trl_grad, _ = _trl_dpo(batch, loss_types, weights)
    loss, grad, _ = _ours_dpo(batch, loss_types, weights)
    _close(loss, trl_loss)
    _close(grad, trl_grad)


F_DIVERGENCE_TYPES = ("sigmoid", "sigmoid_norm", "hinge", "ipo", "exo_pair", "robust", "discopop")


@pytest.mark.parametrize("divergence,coef", [("forward_kl", 0.5), ("js_divergence", 0.5), ("alpha_divergence", 0.3),
                                             ("alpha_divergence", 1.5)])
@pytest.mark.parametrize("loss_type", F_DIVERGENCE_TYPES)
def test_dpo_f_divergence_matches_trl(loss_type, divergence, coef):
    """--f_divergence_type / --f_alpha_divergence_coef for every loss type TRL 1.16 allows them with."""
    batch = _dpo_batch(seed=F_DIVERGENCE_TYPES.index(loss_type))
    # log-ratios of order 1 (the divergences exponentiate them): the reference = the policy's sums + noise
    sums, _ = sequence_logps(batch["per_token"], batch["completion_mask"][:, 1:])
    noise = torch.randn(sums.shape, generator=torch.Generator().manual_seed(1))
    batch["ref_chosen"], batch["ref_rejected"] = (sums + noise).chunk(2)
    options = dict(f_divergence_type=divergence, f_alpha_divergence_coef=coef)
    ls = _ls_for(loss_type)
    trl_loss, trl_grad, trl_metrics = _trl_dpo(batch, [loss_type], beta=0.3, label_smoothing=ls, **options)
    loss, grad, metrics = _ours_dpo(batch, [loss_type], beta=0.3, label_smoothing=ls, **options)
    _close(loss, trl_loss)
    _close(grad, trl_grad)
    for name, value in metrics.items():
        _close(value, trl_metrics[name])


@pytest.mark.parametrize("divergence", ["forward_kl", "js_divergence", "alpha_divergence"])
def test_dpo_f_divergence_refused_where_trl_refuses(divergence):
    z = torch.zeros(2)
    with pytest.raises(ValueError, match="f-divergence"):
        dpo_loss(z, z, z, z, beta=0.1, loss_type="bco_pair", f_divergence_type=divergence)


@pytest.mark.parametrize("tau", [0.05, 0.5, 2.0])
def test_dpo_discopop_tau_matches_trl(tau):
    batch = _dpo_batch(seed=5)
    trl_loss, trl_grad, _ = _trl_dpo(batch, ["discopop"], beta=0.5, discopop_tau=tau)
    loss, grad, _ = _ours_dpo(batch, ["discopop"], beta=0.5, discopop_tau=tau)
    _close(loss, trl_loss)
    _close(grad, trl_grad)


def test_dpo_length_normalised_types_accept_means_directly():
    g = torch.Generator().manual_seed(3)
    sums = -torch.rand(4, 5, generator=g, dtype=torch.float64) * 30
    lengths = torch.randint(1, 20, (2, 5), generator=g).double()
    for loss_type in ("ipo", "sigmoid_norm"):
        assert dpo_logps_kind(loss_type) == "mean"
        a = dpo_loss(*sums, beta=0.2, loss_type=loss_type, chosen_lengths=lengths[0], rejected_lengths=lengths[1])
        means = (sums[0] / lengths[0], sums[1] / lengths[1], sums[2] / lengths[0], sums[3] / lengths[1])
        b = dpo_loss(*means, beta=0.2, loss_type=loss_type)
        _close(a.losses, b.losses, atol=1e-12)
        _close(a.chosen_rewards, 0.2 * (sums[0] - sums[2]), atol=1e-12)  # TRL logs rewards from sums
    assert dpo_logps_kind("sigmoid") == "sum"


def test_dpo_reference_formulas_fp64():
    """Hand-written formulas from trl/trainer/dpo_trainer.py:1387-1481 (TRL 1.16), float64, with input gradients."""
    F = torch.nn.functional
    g = torch.Generator().manual_seed(11)
    x = (-torch.rand(4, 8, generator=g, dtype=torch.float64) * 10).requires_grad_(True)
    beta = 0.3
    c, r, rc, rr = x
    cl, rl = c - rc, r - rr
    d = cl - rl
    ref = {
        "sigmoid": -F.logsigmoid(beta * d),  # :1388
        "hinge": torch.relu(1 - beta * d),  # :1391
        "nca_pair": -F.logsigmoid(beta * cl) - 0.5 * F.logsigmoid(-beta * cl) - 0.5 * F.logsigmoid(-beta * rl),  # :1422
        "bco_pair": -F.logsigmoid(beta * cl) - F.logsigmoid(-beta * rl),  # :1436
        "sppo_hard": (cl - 0.5 / beta) ** 2 + (rl + 0.5 / beta) ** 2,  # :1443-1445
        "apo_zero": 1 - torch.sigmoid(beta * cl) + torch.sigmoid(beta * rl),  # :1471-1473
        "apo_down": torch.sigmoid(beta * cl) + 1 - torch.sigmoid(beta * d),  # :1479-1481
    }
    for loss_type, expected in ref.items():
        (g_ref,) = torch.autograd.grad(expected.sum(), x)
        ours = dpo_loss(c, r, rc, rr, beta=beta, loss_type=loss_type).losses
        (g_ours,) = torch.autograd.grad(ours.sum(), x)
        _close(ours, expected, atol=1e-12)
        _close(g_ours, g_ref, atol=1e-12)


def test_dpo_argument_errors():
    z = torch.zeros(2)
    with pytest.raises(ValueError, match="unknown DPO loss type 'nope'"):
        dpo_loss(z, z, z, z, beta=0.1, loss_type="nope")
    with pytest.raises(ValueError, match="label_smoothing"):
        dpo_loss(z, z, z, z, beta=0.1, loss_type="robust", label_smoothing=0.6)
    with pytest.raises(ValueError, match="label_smoothing"):
        dpo_loss(z, z, z, z, beta=0.1, loss_type="exo_pair")


# ----------------------------------------------------------------------------------------------- ORPO


def _orpo_trainer(beta):
    t = object.__new__(trl_orpo.ORPOTrainer)
    t.__dict__.update(beta=beta, accelerator=_accelerator(), is_encoder_decoder=False, padding_value=0,
                      aux_loss_enabled=False)  # fmt: skip
    return t


@pytest.mark.parametrize("beta", [0.1, 1.0])
def test_orpo_loss_matches_trl_odds_ratio_loss(beta):
    g = torch.Generator().manual_seed(5)
    # average log-probs on both sides of -ln2 (log1mexp branch point), some near 0
    avg = -torch.cat([torch.rand(2, 16, generator=g) * 3, torch.rand(2, 4, generator=g) * 1e-3], dim=1)
    a = avg.clone().requires_grad_(True)
    trl_losses, trl_cr, trl_rr, trl_ratio, trl_log_odds = _orpo_trainer(beta).odds_ratio_loss(a[0], a[1])
    (trl_grad,) = torch.autograd.grad(-trl_losses.mean(), a)  # TRL: loss = nll - losses.mean()
    b = avg.clone().requires_grad_(True)
    out = orpo_loss(b[0], b[1], beta=beta)
    (grad,) = torch.autograd.grad(out.losses.mean(), b)
    _close(out.losses, -trl_losses)
    _close(grad, trl_grad)
    _close(out.chosen_rewards, trl_cr)
    _close(out.rejected_rewards, trl_rr)
    _close(out.extras["log_odds_ratio"].mean(), trl_ratio)
    _close(out.extras["log_odds_chosen"].mean(), trl_log_odds)


def test_log1mexp_accuracy_and_orpo_at_zero():
    x = -torch.logspace(-12, 2, 200, dtype=torch.float64)
    exact = torch.tensor([math.log(-math.expm1(v)) for v in x.tolist()], dtype=torch.float64)
    assert torch.allclose(log1mexp(x), exact, rtol=1e-12)
    out = orpo_loss(torch.tensor([0.0, -0.5]), torch.tensor([-1.0, 0.0]), beta=0.1)
    assert torch.isfinite(out.losses).all()


# ----------------------------------------------------------------------------------------------- CPO / SimPO


def _cpo_trainer(beta, loss_type, label_smoothing=0.0, simpo_gamma=0.5, alpha=0.0, cpo_alpha=1.0):
    t = object.__new__(trl_cpo.CPOTrainer)
    t.__dict__.update(beta=beta, loss_type=loss_type, label_smoothing=label_smoothing, simpo_gamma=simpo_gamma,
                      alpha=alpha, cpo_alpha=cpo_alpha, accelerator=_accelerator(), is_encoder_decoder=False,
                      pad_token_id=0, aux_loss_enabled=False)  # fmt: skip
    return t


@pytest.mark.parametrize("loss_type", ["sigmoid", "hinge", "ipo", "simpo"])
@pytest.mark.parametrize("label_smoothing,alpha", [(0.0, 0.0), (0.1, 0.0), (0.0, 0.3)])
def test_cpo_loss_matches_trl(loss_type, label_smoothing, alpha):
    g = torch.Generator().manual_seed(9)
    scale = 3.0 if cpo_logps_kind(loss_type) == "mean" else 40.0
    x = -torch.rand(2, 16, generator=g) * scale
    if alpha:
        x = x / scale  # keep p^-alpha moderate
    a = x.clone().requires_grad_(True)
    t = _cpo_trainer(0.2, loss_type, label_smoothing, simpo_gamma=0.7, alpha=alpha)
    trl_losses, trl_cr, trl_rr = t.cpo_loss(a[0], a[1])
    (trl_grad,) = torch.autograd.grad(trl_losses.mean(), a)
    b = x.clone().requires_grad_(True)
    out = cpo_loss(b[0], b[1], beta=0.2, loss_type=loss_type, label_smoothing=label_smoothing, simpo_gamma=0.7,
                   alpha=alpha)  # fmt: skip
    (grad,) = torch.autograd.grad(out.losses.mean(), b)
    _close(out.losses, trl_losses)
    _close(grad, trl_grad)
    _close(out.chosen_rewards, trl_cr)
    _close(out.rejected_rewards, trl_rr)


def test_simpo_matches_trl_cpo_simpo():
    g = torch.Generator().manual_seed(10)
    x = -torch.rand(2, 16, generator=g) * 3
    a = x.clone().requires_grad_(True)
    trl_losses, trl_cr, _ = _cpo_trainer(2.0, "simpo", 0.05, simpo_gamma=1.0).cpo_loss(a[0], a[1])
    (trl_grad,) = torch.autograd.grad(trl_losses.mean(), a)
    b = x.clone().requires_grad_(True)
    out = simpo_loss(b[0], b[1], beta=2.0, gamma=1.0, label_smoothing=0.05)
    (grad,) = torch.autograd.grad(out.losses.mean(), b)
    _close(out.losses, trl_losses)
    _close(grad, trl_grad)
    _close(out.chosen_rewards, trl_cr)
    # reference formula: -logsigmoid(beta*(c - r) - gamma) without smoothing
    ref = -nn.functional.logsigmoid(2.0 * (x[0] - x[1]) - 1.0)
    _close(simpo_loss(x[0], x[1], beta=2.0, gamma=1.0).losses, ref)


def test_cpo_argument_errors():
    z = torch.zeros(2)
    with pytest.raises(ValueError, match="unknown CPO loss type 'kto_pair'"):
        cpo_loss(z, z, beta=0.1, loss_type="kto_pair")
    with pytest.raises(ValueError):
        cpo_logps_kind("bogus")
