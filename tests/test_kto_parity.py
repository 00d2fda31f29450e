"""KTO parity with TRL 1.16's KTOTrainer on the tiny Llama 3 model (fp32).

Batch level: both sides get the same rows — unpaired (prompt, completion, label) conversations, or pairs that each
side splits into desirable and undesirable rows. TRL tokenizes and unpairs them itself when its trainer is built; ours
go through prefswift's data pipeline (format detection, `unpair`, the llama3 template) and `add_kl_completions`.
Every test first asserts that the two collated batches (and their KL batches) hold identical token ids and masks,
then runs one loss + backward per side: loss, every metric both sides log and every gradient agree to 1e-5 (relative
to scale, as tests/test_parity_trl.py).

Trajectory: `prefswift kto` (the CLI) and TRL's KTOTrainer train the same tiny model on the same file for 3 steps
(full fine-tuning, the whole data set in one batch, AdamW, constant LR, fp32): loss, grad_norm and every KTO metric
within 1e-5 relative at step 1 and 1e-4 over the 3 steps.
"""
import copy
import json

import pytest
import torch

trl = pytest.importorskip("trl")

from datasets import Dataset  # noqa: E402
from transformers import AutoModelForCausalLM, TrainingArguments  # noqa: E402
from trl import KTOConfig, KTOTrainer  # noqa: E402

from prefswift.arguments.fields import DataArguments  # noqa: E402
from prefswift.data.pipeline import build_preference_data  # noqa: E402
from prefswift.data.unpaired import add_kl_completions  # noqa: E402
from prefswift.scoring.unpaired import UnpairedCollator  # noqa: E402
from prefswift.templates import get_template  # noqa: E402
from prefswift.algorithms.kto import KTO  # noqa: E402
from prefswift.train.trainer import PreferenceTrainer  # noqa: E402
import test_parity_trl as pair_parity  # noqa: E402
from test_parity_trl import TOL, _close, _compare as compare, _step  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*gradient_checkpointing.*:FutureWarning")
UNPAIRED = [
    ("Hello world", "yes it is", True),
    ("What is two plus three?", "five", True),
    ("Tell me a short story about a cat.", "Once upon a time a small cat slept in the sun.", False),
    ("Name a colour.", "blue", True),
    ("Is the sky green?", "Yes, always, everywhere, without exception.", False),
]
PAIRS = [
    ("Hello world", "yes it is", "no"),
    ("What is two plus three?", "five", "it is six, I think"),
    ("Tell me a short story about a cat.", "Once upon a time a small cat slept in the sun.", "No."),
]
KTO_METRICS = ("kl", "rewards/chosen", "rewards/rejected", "rewards/margins", "logps/chosen", "logps/rejected")


def _user(text):
    return [{"role": "user", "content": text}]


def _assistant(text):
    return [{"role": "assistant", "content": text}]


def unpaired_rows():
    return [{"prompt": _user(p), "completion": _assistant(c), "label": label} for p, c, label in UNPAIRED]


def paired_rows():
    return [{"prompt": _user(p), "chosen": _assistant(c), "rejected": _assistant(r)} for p, c, r in PAIRS]


def pairs_as_unpaired_rows():
    """PAIRS as unpaired rows, in TRL's unpairing order (every chosen row, then every rejected row)."""
    return [{"prompt": _user(p), "completion": _assistant(c if label else r), "label": label}
            for label in (True, False) for p, c, r in PAIRS]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ------------------------------------------------------------------------------------------------ set-up
# `env` (tests/test_parity_trl.py): the tokenizer, the fp32 policy and a perturbed reference (so log-ratios, rewards
# and the KL baseline are not zero)
env = pair_parity.env


def _our_rows(env, tmp_path, rows):
    data = DataArguments(dataset=[str(write_jsonl(tmp_path / "data.jsonl", rows))], eval_ratio=0.0)
    prepared = build_preference_data(data, get_template("llama3"), env["tok"], log=lambda *a: None, unpaired=True)
    return prepared.train


def _trl(env, tmp_path, rows, batch_size, ref_model=None, peft_config=None, **config):
    args = KTOConfig(output_dir=str(tmp_path / "trl"), report_to=[], use_cpu=True, bf16=False,
                     gradient_checkpointing=False, per_device_train_batch_size=batch_size, **config)
    return KTOTrainer(model=copy.deepcopy(env["policy"]), ref_model=ref_model, args=args,
                      train_dataset=Dataset.from_list(rows), processing_class=env["tok"], peft_config=peft_config)


def _ours(tmp_path, objective, model, ref_model=None):
    args = TrainingArguments(output_dir=str(tmp_path / "ours"), report_to=[], use_cpu=True)
    # a small odd chunk size, so the chunked LM-head path runs over several chunks per batch
    return PreferenceTrainer(model=model, args=args, objective=objective, ref_model=ref_model, logprob_chunk_size=7)


def _assert_same_batches(ours, theirs):
    for key in ("input_ids", "attention_mask", "completion_mask"):
        assert torch.equal(ours[key], theirs[key]), key
        if "KL_input_ids" in theirs:
            assert torch.equal(ours[f"kl_{key}"], theirs[f"KL_{key}"]), f"KL {key}"
        else:
            assert f"kl_{key}" not in ours
    assert torch.equal(ours["label"], theirs["label"].bool())


def run_both(env, tmp_path, rows, objective, batch_size):
    """(our (loss, grads), TRL's, our metrics, TRL's metrics) on one identical batch of `batch_size` rows; both
    sides with the perturbed reference model."""
    trl_trainer = _trl(env, tmp_path, rows, batch_size, ref_model=copy.deepcopy(env["reference"]),
                       beta=objective.beta, loss_type=objective.loss_type,
                       desirable_weight=objective.desirable_weight, undesirable_weight=objective.undesirable_weight)
    ours = _ours(tmp_path, objective, copy.deepcopy(env["policy"]), copy.deepcopy(env["reference"]))
    return step_both(env, tmp_path, rows, trl_trainer, ours, batch_size)


def step_both(env, tmp_path, rows, trl_trainer, ours, batch_size):
    trl_examples = [trl_trainer.train_dataset[i] for i in range(len(trl_trainer.train_dataset))]
    our_rows = _our_rows(env, tmp_path, rows)
    if ours.objective.uses_kl:
        add_kl_completions(our_rows, batch_size)
    assert len(our_rows) == len(trl_examples)
    our_batch = UnpairedCollator(env["tok"].pad_token_id)(our_rows[:batch_size])
    trl_batch = trl_trainer.data_collator(trl_examples[:batch_size])
    _assert_same_batches(our_batch, trl_batch)
    theirs = _step(trl_trainer.model, lambda: trl_trainer.compute_loss(trl_trainer.model, trl_batch))
    mine = _step(ours.model, lambda: ours.batch_loss(ours.model, our_batch, "train"))
    last = lambda store: {k: v[-1] for k, v in store.items() if v}  # noqa: E731
    return mine, theirs, last(ours._metrics["train"]), last(trl_trainer._metrics["train"])


# ------------------------------------------------------------------------------------------------ batch parity


@pytest.mark.parametrize("loss_type,desirable_weight,undesirable_weight", [
    ("kto", 1.0, 1.0), ("kto", 1.33, 0.7), ("apo_zero_unpaired", 1.0, 1.5)])
def test_unpaired_batch_matches_trl(env, tmp_path, loss_type, desirable_weight, undesirable_weight):
    objective = KTO(beta=0.5, loss_type=loss_type, desirable_weight=desirable_weight,
                             undesirable_weight=undesirable_weight)
    mine, theirs, ours_m, trl_m = run_both(env, tmp_path, unpaired_rows(), objective, batch_size=len(UNPAIRED))
    compare(mine, theirs, ours_m, trl_m, KTO_METRICS)
    if loss_type == "kto":
        assert trl_m["kl"] > 1e-3  # the perturbed reference gives a real KL baseline
    else:
        assert trl_m["kl"] == ours_m["kl"] == 0.0


def test_pairs_split_into_desirable_and_undesirable_rows_as_trl(env, tmp_path):
    """Pairs unpaired on both sides (chosen rows, then rejected rows); a batch of 4 of the 6 rows, so the KL rows
    rotate within the batch and the batch mixes labels."""
    objective = KTO(beta=0.1, loss_type="kto")
    mine, theirs, ours_m, trl_m = run_both(env, tmp_path, paired_rows(), objective, batch_size=4)
    compare(mine, theirs, ours_m, trl_m, KTO_METRICS)


def test_batch_of_one_label_logs_no_margin_like_trl(env, tmp_path):
    objective = KTO(beta=0.5, loss_type="kto")
    rows = [r for r in unpaired_rows() if r["label"]]
    mine, theirs, ours_m, trl_m = run_both(env, tmp_path, rows, objective, batch_size=len(rows))
    compare(mine, theirs, ours_m, trl_m, ("kl", "rewards/chosen", "logps/chosen"))
    for name in ("rewards/rejected", "logps/rejected", "rewards/margins"):
        assert name not in ours_m and name not in trl_m


def test_precomputed_reference_gives_the_live_numbers(env, tmp_path):
    objective = KTO(beta=0.5, loss_type="kto")
    rows = _our_rows(env, tmp_path, unpaired_rows())
    add_kl_completions(rows, len(rows))
    collator = UnpairedCollator(env["tok"].pad_token_id)
    ours = _ours(tmp_path, objective, copy.deepcopy(env["policy"]), copy.deepcopy(env["reference"]))
    live = _step(ours.model, lambda: ours.batch_loss(ours.model, collator(rows), "train"))
    ours.precompute_reference(rows, collator, batch_size=2)
    assert all({"ref_logps", "ref_kl_logps"} <= set(r) for r in rows)
    batch = collator(rows)
    assert "ref_logps" in batch and "ref_kl_logps" in batch
    pre = _step(ours.model, lambda: ours.batch_loss(ours.model, batch, "train"))
    _close(pre[0], live[0], "loss")
    for name, g in live[1].items():
        assert torch.allclose(pre[1][name], g, atol=1e-6, rtol=1e-5), name


def test_lora_reference_is_the_adapter_disabled_base(env, tmp_path):
    """TRL wraps the base with `peft_config` (reference = adapter off); we get the same PEFT model (a non-zero
    adapter, weights copied from TRL's) and no ref_model: same batch, loss, metrics and LoRA gradients."""
    from peft import LoraConfig, get_peft_model

    def lora():
        return LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj", "gate_proj"],
                          init_lora_weights=False, task_type="CAUSAL_LM")

    rows = unpaired_rows()
    trl_trainer = _trl(env, tmp_path, rows, len(rows), peft_config=lora(), beta=0.5)
    assert trl_trainer.ref_model is None
    model = get_peft_model(copy.deepcopy(env["policy"]), lora())
    model.load_state_dict({k: v for k, v in trl_trainer.model.state_dict().items() if "lora_" in k}, strict=False)
    ours = _ours(tmp_path, KTO(beta=0.5), model)
    mine, theirs, ours_m, trl_m = step_both(env, tmp_path, rows, trl_trainer, ours, len(rows))
    assert all("lora_" in name for name in mine[1])
    compare(mine, theirs, ours_m, trl_m, KTO_METRICS)
    assert abs(trl_m["rewards/margins"]) > 1e-4  # the adapter-off reference differs from the policy


# ------------------------------------------------------------------------------------------------ trajectory


def _log_rows(history):
    return [r for r in history if "loss" in r and "step" in r]


def test_cli_trajectory_matches_trl_kto_trainer(env, tiny_llama3_dir, tmp_path, capsys):
    """3 steps of `prefswift kto` vs TRL's KTOTrainer: full fine-tuning, the whole data set in one batch (so order
    cannot differ), AdamW, constant LR, fp32, live reference = the initial weights. The rows are PAIRS unpaired:
    there the KL baseline is positive after step 1 (on UNPAIRED it clamps to 0), so the trajectory exercises it."""
    from prefswift.cli import main

    rows = pairs_as_unpaired_rows()
    data = write_jsonl(tmp_path / "kto.jsonl", rows)
    n, lr, beta = len(rows), 1e-3, 0.5
    out = tmp_path / "ours"
    with pytest.raises(SystemExit) as done:  # typer's standalone mode
        main(["kto", "--model_id_or_path", str(tiny_llama3_dir), "--template", "llama3", "--dataset", str(data),
              "--sft_type", "full", "--dtype", "fp32", "--batch_size", str(n), "--max_steps", "3",
              "--learning_rate", str(lr), "--lr_scheduler_type", "constant", "--optim", "adamw_torch",
              "--logging_steps", "1", "--save_strategy", "no", "--eval_ratio", "0", "--beta", str(beta),
              "--gradient_checkpointing", "false", "--output_dir", str(out)])
    assert done.value.code in (0, None)
    capsys.readouterr()
    ours = _log_rows(json.loads(line) for line in (out / "logging.jsonl").read_text().splitlines())

    args = KTOConfig(output_dir=str(tmp_path / "trl"), report_to=[], use_cpu=True, bf16=False,
                     gradient_checkpointing=False, per_device_train_batch_size=n, max_steps=3, learning_rate=lr,
                     lr_scheduler_type="constant", optim="adamw_torch", logging_steps=1, save_strategy="no",
                     beta=beta, seed=42)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama3_dir, dtype=torch.float32)
    trainer = KTOTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                         processing_class=env["tok"])
    trainer.train()
    theirs = _log_rows(trainer.state.log_history)

    assert [r["step"] for r in ours] == [r["step"] for r in theirs] == [1, 2, 3]
    names = ("loss", "grad_norm") + KTO_METRICS
    for step, (a, b) in enumerate(zip(ours, theirs), start=1):
        for name in names:
            assert name in a and name in b, (step, name)
            tol = TOL if step == 1 else 1e-4
            assert abs(a[name] - b[name]) <= tol * max(1.0, abs(b[name])), (step, name, a[name], b[name])
    assert abs(theirs[-1]["loss"] - theirs[0]["loss"]) > 1e-4  # the runs really moved
    assert theirs[-1]["kl"] > 1e-3  # and the KL baseline is in play
