"""End-to-end parity of prefswift's trainer path with TRL 1.16's trainers on the tiny Llama 3 model (fp32).

Both sides get the same three preference pairs (different prompt and response lengths, chosen sometimes longer and
sometimes shorter than rejected). TRL tokenizes the text itself when its trainer is built; our rows are tokenized here
the way TRL's conventions require (tokenizer BOS on the prompt, EOS token after every response), and every test first
asserts that the two collated batches hold identical token ids and masks. Then one `compute_loss` + backward per side:
the loss, every metric both sides log, and the gradient of every trainable parameter must agree.

Our side: `PreferenceTrainer.batch_loss` (PairCollator -> pair_forward -> DPO). TRL's side: `DPOTrainer`,
`trl.experimental.orpo.ORPOTrainer`, `trl.experimental.cpo.CPOTrainer`, built normally and called through
`compute_loss` on a batch made by the trainer's own collator from its own tokenized dataset.

Tolerance: 1e-5 relative to scale — |a - b| <= 1e-5 * max(1, |b|) for scalars (summed log-probs reach ~-100,
where one fp32 ulp is ~8e-6), and max|ga - gb| <= 1e-5 * max|gb| per gradient tensor (the two sides reduce the
log-softmax in different orders: TRL's fused chunked head vs ours).
"""
import copy

import pytest
import torch

trl = pytest.importorskip("trl")
peft = pytest.importorskip("peft")

from datasets import Dataset  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainingArguments  # noqa: E402
from trl import DPOConfig, DPOTrainer  # noqa: E402
from trl.experimental.cpo import CPOConfig, CPOTrainer  # noqa: E402
from trl.experimental.orpo import ORPOConfig, ORPOTrainer  # noqa: E402

from prefswift.scoring.collators import PairCollator, PrefixSharedCollator  # noqa: E402
from prefswift.algorithms import build_objective  # noqa: E402
from prefswift.algorithms.cpo import CPO  # noqa: E402
from prefswift.algorithms.dpo import DPO  # noqa: E402
from prefswift.algorithms.orpo import ORPO  # noqa: E402
from prefswift.algorithms.simpo import SimPO  # noqa: E402
from prefswift.train.trainer import PreferenceTrainer  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*gradient_checkpointing.*:FutureWarning")
TOL = 1e-5
PAIRS = [
    ("Hello world", " yes it is", " no"),
    ("What is two plus three?", " five", " it is six, I think"),
    ("Tell me a short story about a cat.", " Once upon a time a small cat slept in the sun.", " No."),
]
DPO_BASE = ("rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen",
            "logps/rejected")
ORPO_METRICS = DPO_BASE + ("nll_loss", "log_odds_ratio", "log_odds_chosen")


# ------------------------------------------------------------------------------------------------ set-up


@pytest.fixture(scope="module")
def env(tiny_llama3_dir):
    tok = AutoTokenizer.from_pretrained(tiny_llama3_dir)
    policy = AutoModelForCausalLM.from_pretrained(tiny_llama3_dir, dtype=torch.float32)
    reference = copy.deepcopy(policy)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # a different reference, so log-ratios and margins are not zero
        for p in reference.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.02)
    rows = []
    for prompt, chosen, rejected in PAIRS:
        p = tok(prompt)["input_ids"]
        assert p[0] == tok.bos_token_id and p.count(tok.bos_token_id) == 1
        row = {"prompt_input_ids": p}
        for key, answer in (("chosen_input_ids", chosen), ("rejected_input_ids", rejected)):
            full = tok(prompt + answer)["input_ids"]
            assert full[: len(p)] == p  # the prompt tokens do not merge into the answer
            row[key] = full[len(p):] + [tok.eos_token_id]
        rows.append(row)
    dataset = Dataset.from_dict({"prompt": [p for p, _, _ in PAIRS], "chosen": [c for _, c, _ in PAIRS],
                                 "rejected": [r for _, _, r in PAIRS]})
    return {"tok": tok, "policy": policy, "reference": reference, "rows": rows, "dataset": dataset}


def _common_args(tmp_path):
    return dict(output_dir=str(tmp_path / "out"), report_to=[], use_cpu=True, bf16=False,
                gradient_checkpointing=False, disable_dropout=True, dataloader_num_workers=0)


def _ours(env, tmp_path, objective, model, ref_model=None, collator=PairCollator):
    args = TrainingArguments(output_dir=str(tmp_path / "ours"), report_to=[], use_cpu=True)
    # a small odd chunk size, so the chunked LM-head path runs over several chunks per batch
    trainer = PreferenceTrainer(model=model, args=args, objective=objective, ref_model=ref_model,
                                logprob_chunk_size=7)
    batch = collator(pad_token_id=env["tok"].pad_token_id)(env["rows"])
    return trainer, batch


def _step(model, loss_fn):
    """One forward + backward from zero gradients: (loss, {name: grad}) over the trainable parameters."""
    model.train()
    model.zero_grad(set_to_none=True)
    loss = loss_fn()
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert grads and all(g is not None for g in grads.values())
    return loss.detach().item(), grads


def _close(ours, theirs, what):
    assert abs(ours - theirs) <= TOL * max(1.0, abs(theirs)), f"{what}: ours {ours!r} vs TRL {theirs!r}"


def _compare(ours, theirs, our_metrics, trl_metrics, expected):
    (loss_a, grads_a), (loss_b, grads_b) = ours, theirs
    _close(loss_a, loss_b, "loss")
    common = set(our_metrics) & set(trl_metrics)
    assert set(expected) <= common, f"missing metrics: {set(expected) - common}"
    for name in sorted(common):
        _close(our_metrics[name], trl_metrics[name], name)
    assert grads_a.keys() == grads_b.keys()
    assert any(g.abs().max() > 0 for g in grads_b.values())
    for name, gb in grads_b.items():
        err = (grads_a[name] - gb).abs().max().item()
        assert err <= TOL * gb.abs().max().item() + 1e-12, f"grad {name}: max err {err:.3g}, scale {gb.abs().max():.3g}"


def _last(store):
    return {k: v[-1] for k, v in store.items() if v}


# ------------------------------------------------------------------------------------------------ DPO


def _trl_dpo(env, tmp_path, model, ref_model=None, peft_config=None, **config):
    args = DPOConfig(**_common_args(tmp_path), **config)
    trainer = DPOTrainer(model=model, ref_model=ref_model, args=args, train_dataset=env["dataset"],
                         processing_class=env["tok"], peft_config=peft_config)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(PAIRS))])
    return trainer, batch


def _assert_same_dpo_batch(ours, theirs):
    for key in ("input_ids", "attention_mask", "completion_mask"):
        assert torch.equal(ours[key], theirs[key]), key


def _run_dpo(env, tmp_path, objective, trl_config, collator=PairCollator):
    trl_trainer, trl_batch = _trl_dpo(env, tmp_path, copy.deepcopy(env["policy"]),
                                      copy.deepcopy(env["reference"]), **trl_config)
    ours, batch = _ours(env, tmp_path, objective, copy.deepcopy(env["policy"]), copy.deepcopy(env["reference"]),
                        collator=collator)
    if collator is PairCollator:
        _assert_same_dpo_batch(batch, trl_batch)
    theirs = _step(trl_trainer.model, lambda: trl_trainer.compute_loss(trl_trainer.model, trl_batch))
    mine = _step(ours.model, lambda: ours.batch_loss(ours.model, batch, "train"))
    return mine, theirs, _last(ours._metrics["train"]), _last(trl_trainer._metrics["train"])


DPO_CASES = [("sigmoid", 0.0), ("ipo", 0.0), ("hinge", 0.0), ("robust", 0.1), ("bco_pair", 0.0),
             ("sppo_hard", 0.0), ("nca_pair", 0.0), ("apo_zero", 0.0), ("apo_down", 0.0), ("exo_pair", 1e-3),
             ("sigmoid_norm", 0.0), ("discopop", 0.0), ("aot", 0.1), ("aot_unpaired", 0.1)]


@pytest.mark.parametrize("loss_type,label_smoothing", DPO_CASES)
def test_dpo_matches_trl(env, tmp_path, loss_type, label_smoothing):
    beta = 0.5
    objective = DPO(beta=beta, loss_type=loss_type, label_smoothing=label_smoothing)
    mine, theirs, ours_m, trl_m = _run_dpo(env, tmp_path, objective, dict(
        beta=beta, loss_type=[loss_type], label_smoothing=label_smoothing))
    _compare(mine, theirs, ours_m, trl_m, DPO_BASE)
    assert abs(trl_m["rewards/margins"]) > 1e-3  # the perturbed reference gives real margins


def test_dpo_rpo_alpha_matches_trl_sigmoid_plus_sft(env, tmp_path):
    beta, alpha = 0.1, 0.7
    objective = DPO(beta=beta, loss_type="sigmoid", rpo_alpha=alpha)
    mine, theirs, ours_m, trl_m = _run_dpo(env, tmp_path, objective, dict(
        beta=beta, loss_type=["sigmoid", "sft"], loss_weights=[1.0, alpha]))
    _compare(mine, theirs, ours_m, trl_m, DPO_BASE)
    # our nll_loss metric is TRL's "sft" loss on its own
    sft_trainer, sft_batch = _trl_dpo(env, tmp_path, copy.deepcopy(env["policy"]), copy.deepcopy(env["reference"]),
                                      beta=beta, loss_type=["sft"])
    with torch.no_grad():
        sft = sft_trainer.compute_loss(sft_trainer.model, sft_batch).item()
    _close(ours_m["nll_loss"], sft, "nll_loss vs TRL sft")


# the DPO family's options (objective fields = TRL DPOConfig fields), alone and combined, in both batch layouts
DPO_FAMILY = {
    "mpo": dict(loss_type="sigmoid,bco_pair,sft", loss_weights=(0.8, 0.2, 1.0)),
    "discopop_tau": dict(loss_type="discopop", discopop_tau=0.3),
    "ld_alpha": dict(loss_type="sigmoid", ld_alpha=0.3),
    "ld_alpha_ipo": dict(loss_type="ipo", ld_alpha=0.0),
    "wpo": dict(loss_type="sigmoid", use_weighting=True),
    "ld_rpo": dict(loss_type="sigmoid", ld_alpha=0.5, rpo_alpha=0.5),
    "forward_kl": dict(loss_type="sigmoid", f_divergence_type="forward_kl"),
    "js": dict(loss_type="sigmoid_norm", f_divergence_type="js"),
    "alpha": dict(loss_type="hinge", f_divergence_type="alpha_divergence", f_alpha_divergence_coef=0.3),
    "all": dict(loss_type="robust,sigmoid", loss_weights=(1.0, 0.3), label_smoothing=0.1, ld_alpha=0.5,
                use_weighting=True, f_divergence_type="alpha", f_alpha_divergence_coef=0.7),
}
# not compared: --use_weighting with sft, where TRL 1.16 fails (an in-place product on the expanded sft loss,
# dpo_trainer.py:1526); prefswift weights sft like every other loss type (test_dpo_weighting_applies_to_sft)
TRL_NAMES = {"js": "js_divergence", "alpha": "alpha_divergence"}


def _trl_config(options):
    """The TRL DPOConfig of an Objective's DPO options (rpo_alpha = a weighted sft loss in TRL 1.16)."""
    config = {k: TRL_NAMES.get(v, v) if k == "f_divergence_type" else v for k, v in options.items()}
    types = config.pop("loss_type").split(",")
    weights = list(config.pop("loss_weights", [1.0] * len(types)))
    if "rpo_alpha" in config:
        types, weights = types + ["sft"], weights + [config.pop("rpo_alpha")]
    return dict(config, loss_type=types, loss_weights=weights)


FAMILY_RUNS = [(case, PairCollator) for case in sorted(DPO_FAMILY)] + \
    [(case, PrefixSharedCollator) for case in ("ld_alpha", "wpo", "all")]  # the layout-dependent reductions


@pytest.mark.parametrize("case,collator", FAMILY_RUNS,
                         ids=[f"{c}-{'prefix' if k is PrefixSharedCollator else 'pairs'}" for c, k in FAMILY_RUNS])
def test_dpo_family_options_match_trl(env, tmp_path, case, collator):
    beta, options = 0.5, DPO_FAMILY[case]
    objective = DPO(beta=beta, **options)
    mine, theirs, ours_m, trl_m = _run_dpo(env, tmp_path, objective, dict(beta=beta, **_trl_config(options)),
                                           collator)
    _compare(mine, theirs, ours_m, trl_m, DPO_BASE)
    assert abs(trl_m["rewards/margins"]) > 1e-3


def test_dpo_ld_alpha_and_weighting_act(env, tmp_path):
    """The options change the numbers (so the parity above is not a parity of no-ops)."""
    def loss(**options):
        ours, batch = _ours(env, tmp_path, DPO(beta=0.5, loss_type="sigmoid", **options),
                            copy.deepcopy(env["policy"]), copy.deepcopy(env["reference"]))
        with torch.no_grad():
            return ours.batch_loss(ours.model, batch, "train").item()

    base = loss()
    assert abs(loss(ld_alpha=0.3) - base) > 1e-4 and abs(loss(use_weighting=True) - base) > 1e-4
    _close(loss(ld_alpha=1.0), base, "ld_alpha 1 = plain DPO")


def test_dpo_ld_alpha_precomputed_reference_matches_trl_precompute(env, tmp_path):
    """--precompute_ref_log_probs with --ld_alpha: the stored reference columns are TRL's precomputed LD-weighted
    ones (DPOTrainer(precompute_ref_log_probs=True) fills them before training), and the loss, metrics and gradients
    computed from the stored columns are TRL's from its stored columns."""
    beta, ld_alpha = 0.5, 0.3
    trl_trainer, trl_batch = _trl_dpo(env, tmp_path, copy.deepcopy(env["policy"]), copy.deepcopy(env["reference"]),
                                      beta=beta, loss_type=["sigmoid"], ld_alpha=ld_alpha,
                                      precompute_ref_log_probs=True)
    assert "ref_chosen_logps" in trl_batch
    objective = DPO(beta=beta, loss_type="sigmoid", ld_alpha=ld_alpha)
    ours, _ = _ours(env, tmp_path, objective, copy.deepcopy(env["policy"]), copy.deepcopy(env["reference"]))
    rows = copy.deepcopy(env["rows"])
    ours.precompute_reference(rows, PairCollator(pad_token_id=env["tok"].pad_token_id), batch_size=2)
    for i, row in enumerate(rows):
        for key in ("ref_chosen_logps", "ref_rejected_logps"):
            _close(row[key], float(trl_trainer.train_dataset[i][key]), f"pair {i} {key}")
    batch = PairCollator(pad_token_id=env["tok"].pad_token_id)(rows)
    _assert_same_dpo_batch(batch, trl_batch)
    ours.ref_model = None  # the stored columns alone: no live reference to fall back on
    theirs = _step(trl_trainer.model, lambda: trl_trainer.compute_loss(trl_trainer.model, trl_batch))
    mine = _step(ours.model, lambda: ours.batch_loss(ours.model, batch, "train"))
    _compare(mine, theirs, _last(ours._metrics["train"]), _last(trl_trainer._metrics["train"]), DPO_BASE)
    assert abs(_last(trl_trainer._metrics["train"])["rewards/margins"]) > 1e-3


def _plain_forward_logps(model, batch):
    """Oracle from the model's own logits (no prefswift code): per-token log-probs of the next token, the completion
    mask aligned with them, and log sum_v p_v^2 at each position (WPO's normaliser)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1].double()
    logp = torch.log_softmax(logits, dim=-1)
    tokens = logp.gather(-1, batch["input_ids"][:, 1:, None]).squeeze(-1)
    return tokens, batch["completion_mask"][:, 1:].double(), torch.logsumexp(2 * logp, dim=-1)


def test_dpo_weighting_applies_to_sft(env, tmp_path):
    """WPO + sft, against the model's own logits and the formulas written out (TRL 1.16 cannot run this pair: an
    in-place product on its expanded sft loss): sft = the chosen completion tokens' NLL pooled over the batch;
    WPO weight of a pair = exp(mean_t(logp_t - log sum_v p_v^2)) over the chosen tokens times the same over the
    rejected tokens (WPO paper eq. 2, TRL dpo_trainer.py:1518); loss = mean over pairs of sft * weight."""
    ours, batch = _ours(env, tmp_path, DPO(beta=0.5, loss_type="sft", use_weighting=True),
                        copy.deepcopy(env["policy"]), copy.deepcopy(env["reference"]))
    with torch.no_grad():
        loss = ours.batch_loss(ours.model, batch, "train")
        tokens, mask, log_sum_sq = _plain_forward_logps(ours.model, batch)
    B = len(PAIRS)
    sft = -(tokens * mask)[:B].sum() / mask[:B].sum()
    per_sequence = torch.exp(((tokens - log_sum_sq) * mask).sum(1) / mask.sum(1))
    weights = per_sequence[:B] * per_sequence[B:]
    assert 0 < weights.min() and weights.max() < 1 and weights.max() - weights.min() > 1e-3
    _close(loss.item(), (sft * weights).mean().item(), "weighted sft")


def test_dpo_ref_adapter_matches_trl_ref_adapter(env, tmp_path):
    """--ref_adapter_name_or_path: TRL trains a pretrained PEFT model against its "ref" adapter; we load the same
    weights as adapter "ref" from a directory (`load_reference_adapter`) and switch to it for the reference."""
    from peft import LoraConfig, PeftModel, get_peft_model

    from prefswift.models.lora import REF_ADAPTER, load_reference_adapter

    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj", "gate_proj"],
                        init_lora_weights=False, task_type="CAUSAL_LM")
    torch.manual_seed(0)
    start = get_peft_model(copy.deepcopy(env["policy"]), config)
    trl_trainer, trl_batch = _trl_dpo(env, tmp_path, copy.deepcopy(start), beta=0.5)
    trl_model = trl_trainer.model
    assert REF_ADAPTER in trl_model.peft_config
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # a reference adapter that differs from the trained one
        for name, p in trl_model.named_parameters():
            if f".{REF_ADAPTER}." in name:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
    trl_model.save_pretrained(str(tmp_path / "saved"), selected_adapters=[REF_ADAPTER])
    ours_model = copy.deepcopy(start)
    load_reference_adapter(ours_model, str(tmp_path / "saved" / REF_ADAPTER))
    assert isinstance(ours_model, PeftModel) and ours_model.active_adapter == "default"

    ours, batch = _ours(env, tmp_path, DPO(beta=0.5, loss_type="sigmoid"), ours_model)
    _assert_same_dpo_batch(batch, trl_batch)
    theirs = _step(trl_model, lambda: trl_trainer.compute_loss(trl_model, trl_batch))
    mine = _step(ours.model, lambda: ours.batch_loss(ours.model, batch, "train"))
    assert mine[1].keys() == theirs[1].keys() and not any(f".{REF_ADAPTER}." in n for n in mine[1])
    _compare(mine, theirs, _last(ours._metrics["train"]), _last(trl_trainer._metrics["train"]), DPO_BASE)
    assert abs(_last(trl_trainer._metrics["train"])["rewards/margins"]) > 1e-3
    assert ours_model.active_adapter == "default"


def test_dpo_lora_reference_is_the_adapter_disabled_base(env, tmp_path):
    """TRL wraps the base with `peft_config` (reference = adapters disabled); we get the same PEFT model (a non-zero
    adapter: init_lora_weights=False, weights copied from TRL's) and no ref_model."""
    from peft import LoraConfig, get_peft_model

    def lora():
        return LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj", "gate_proj"],
                          init_lora_weights=False, task_type="CAUSAL_LM")

    beta = 0.5
    trl_trainer, trl_batch = _trl_dpo(env, tmp_path, copy.deepcopy(env["policy"]), peft_config=lora(), beta=beta)
    assert trl_trainer.ref_model is None and "ref" not in trl_trainer.model.peft_config
    model = get_peft_model(copy.deepcopy(env["policy"]), lora())
    trl_state = trl_trainer.model.state_dict()
    missing = model.load_state_dict({k: v for k, v in trl_state.items() if "lora_" in k}, strict=False)
    assert not missing.unexpected_keys
    for name, p in model.named_parameters():  # identical weights, the adapter really non-zero
        assert torch.equal(p, trl_state[name]), name
    assert any(p.abs().max() > 0 for n, p in model.named_parameters() if "lora_B" in n)

    ours, batch = _ours(env, tmp_path, DPO(beta=beta, loss_type="sigmoid"), model)
    _assert_same_dpo_batch(batch, trl_batch)
    theirs = _step(trl_trainer.model, lambda: trl_trainer.compute_loss(trl_trainer.model, trl_batch))
    mine = _step(ours.model, lambda: ours.batch_loss(ours.model, batch, "train"))
    assert all("lora_" in n for n in mine[1])
    _compare(mine, theirs, _last(ours._metrics["train"]), _last(trl_trainer._metrics["train"]), DPO_BASE)
    assert abs(_last(trl_trainer._metrics["train"])["rewards/margins"]) > 1e-4  # adapter-off reference differs


# ------------------------------------------------------------------------------------------------ ORPO / CPO


def _trl_orpo_like(env, tmp_path, trainer_cls, config_cls, model, **config):
    args = config_cls(**_common_args(tmp_path), max_length=512, **config)
    trainer = trainer_cls(model=model, args=args, train_dataset=env["dataset"], processing_class=env["tok"])
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(PAIRS))])
    return trainer, batch


def _assert_same_orpo_batch(ours, trainer, batch):
    cat = trainer.concatenated_inputs(batch, padding_value=trainer.processing_class.pad_token_id)
    assert torch.equal(ours["input_ids"], cat["concatenated_input_ids"])
    assert torch.equal(ours["attention_mask"], cat["concatenated_attention_mask"])
    assert torch.equal(ours["completion_mask"].bool(), cat["concatenated_labels"] != -100)


def _run_reference_free(env, tmp_path, objective, trainer_cls, config_cls, trl_config):
    trl_trainer, trl_batch = _trl_orpo_like(env, tmp_path, trainer_cls, config_cls, copy.deepcopy(env["policy"]),
                                            **trl_config)
    ours, batch = _ours(env, tmp_path, objective, copy.deepcopy(env["policy"]))
    _assert_same_orpo_batch(batch, trl_trainer, trl_batch)
    theirs = _step(trl_trainer.model, lambda: trl_trainer.compute_loss(trl_trainer.model, trl_batch))
    mine = _step(ours.model, lambda: ours.batch_loss(ours.model, batch, "train"))
    return mine, theirs, _last(ours._metrics["train"]), _last(trl_trainer._stored_metrics["train"])


@pytest.mark.parametrize("beta", [0.1, 0.25])
def test_orpo_nll_scope_all_matches_trl(env, tmp_path, beta):
    objective = ORPO(beta=beta, orpo_nll_scope="all")
    mine, theirs, ours_m, trl_m = _run_reference_free(env, tmp_path, objective, ORPOTrainer, ORPOConfig,
                                                      dict(beta=beta))
    _compare(mine, theirs, ours_m, trl_m, ORPO_METRICS)


def test_orpo_default_nll_is_the_chosen_responses_cross_entropy(env, tmp_path):
    """prefswift's default ORPO NLL (--orpo_nll_scope response): cross-entropy of the chosen response tokens only,
    pooled over the batch, from the model's own logits; the loss = that NLL + mean(-beta * logsigmoid(log odds))
    with log odds = log(p_c / (1 - p_c)) - log(p_r / (1 - p_r)), p = exp(mean response log-prob)."""
    beta = 0.25
    ours, batch = _ours(env, tmp_path, ORPO(beta=beta), copy.deepcopy(env["policy"]))
    with torch.no_grad():
        loss = ours.batch_loss(ours.model, batch, "train").item()
        tokens, mask, _ = _plain_forward_logps(ours.model, batch)
    B = len(PAIRS)
    nll = -(tokens * mask)[:B].sum() / mask[:B].sum()
    _close(_last(ours._metrics["train"])["nll_loss"], nll.item(), "nll_loss")
    avg = (tokens * mask).sum(1) / mask.sum(1)
    log_odds = (avg - torch.log1p(-torch.exp(avg)))[:B] - (avg - torch.log1p(-torch.exp(avg)))[B:]
    _close(loss, (nll - beta * torch.nn.functional.logsigmoid(log_odds).mean()).item(), "ORPO loss")


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_simpo_matches_trl_cpo_simpo(env, tmp_path, label_smoothing):
    beta, gamma = 2.0, 0.8
    objective = SimPO(beta=beta, simpo_gamma=gamma, label_smoothing=label_smoothing)
    assert objective.cpo_alpha == 0.0  # the paper's SimPO: no NLL term unless asked for
    mine, theirs, ours_m, trl_m = _run_reference_free(env, tmp_path, objective, CPOTrainer, CPOConfig, dict(
        beta=beta, loss_type="simpo", simpo_gamma=gamma, cpo_alpha=0.0, label_smoothing=label_smoothing))
    _compare(mine, theirs, ours_m, trl_m, DPO_BASE)


@pytest.mark.parametrize("loss_type,label_smoothing,cpo_alpha", [
    ("sigmoid", 0.0, 1.0), ("sigmoid", 0.1, 1.0), ("ipo", 0.0, 0.5), ("hinge", 0.0, 1.0)])
def test_cpo_matches_trl(env, tmp_path, loss_type, label_smoothing, cpo_alpha):
    beta = 0.1
    objective = CPO(beta=beta, loss_type=loss_type, cpo_alpha=cpo_alpha,
                          label_smoothing=label_smoothing)
    mine, theirs, ours_m, trl_m = _run_reference_free(env, tmp_path, objective, CPOTrainer, CPOConfig, dict(
        beta=beta, loss_type=loss_type, cpo_alpha=cpo_alpha, label_smoothing=label_smoothing))
    _compare(mine, theirs, ours_m, trl_m, DPO_BASE + ("nll_loss",))


# ------------------------------------------------------------------------------------------------ objective, by hand


def test_objective_defaults_and_ties_by_hand():
    """The loss type a run gets when it names none (TRL's defaults: sigmoid for DPO and CPO, simpo for SimPO), and
    rewards/accuracies counts a tie as wrong, as TRL's `chosen_rewards > rejected_rewards` does. CPO sigmoid, beta
    0.1: pair 0 ties (-4 vs -4: rewards -0.4 each), pair 1 wins (-2 vs -6: 0.4 margin) -> accuracy [0, 1]."""
    from prefswift.arguments import parse_command
    from prefswift.scoring.forward import PairLogps

    for algo, default in (("dpo", "sigmoid"), ("cpo", "sigmoid"), ("simpo", "simpo"), ("orpo", "orpo")):
        assert build_objective(algo, parse_command(algo, []).pref).loss_type == default
    pol = PairLogps(chosen_logps=torch.tensor([-4.0, -2.0]), rejected_logps=torch.tensor([-4.0, -6.0]),
                    chosen_tokens=torch.tensor([2.0, 2.0]), rejected_tokens=torch.tensor([2.0, 3.0]),
                    chosen_nll_sum=torch.tensor(6.0), chosen_nll_count=torch.tensor(4.0))
    _, m = CPO(beta=0.1, loss_type="sigmoid", cpo_alpha=1.0).compute(pol)
    assert m["rewards/accuracies"].tolist() == [0.0, 1.0]
    assert m["rewards/margins"].tolist() == pytest.approx([0.0, 0.4])
