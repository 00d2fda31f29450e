"""`prefswift eval` on a checkpoint reports exactly the implicit rewards its training logged (eval_rewards/*) for
every option that changes how log-probs are reduced: --ld_alpha (policy and reference LD-weighted alike), WPO,
multi-loss weights, every DPO loss type, f-divergences, a precomputed reference, SimPO's and CPO's averaging. The
oracle is the run's own eval log (same weights, same pairs: the run's eval split, one eval batch)."""
import json

import pytest

from prefswift.arguments import parse_command
from test_eval_reference import train_and_eval, write_rows

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

OPTIONS = [
    ("dpo", ["--ld_alpha", "0.5"]),
    ("dpo", ["--ld_alpha", "0.3", "--use_weighting", "true", "--rpo_alpha", "0.5",
             "--precompute_ref_log_probs", "true"]),
    ("dpo", ["--loss_type", "ipo,sigmoid_norm,hinge", "--loss_weights", "1,0.5,0.2",
             "--f_divergence_type", "js_divergence", "--ld_alpha", "0.7"]),
    ("dpo", ["--loss_type", "robust,exo_pair,nca_pair,bco_pair,sppo_hard,apo_zero,apo_down,discopop,aot,"
             "aot_unpaired", "--label_smoothing", "0.1"]),
    ("simpo", []),
    ("cpo", ["--loss_type", "simpo"]),
    ("cpo", []),
]


@pytest.mark.parametrize("algo,extra", OPTIONS, ids=[f"{a}-{' '.join(e[:2]) or 'default'}" for a, e in OPTIONS])
def test_eval_rewards_equal_the_eval_rewards_training_logged(tmp_path, algo, extra):
    first = extra == OPTIONS[0][1]
    result, logged = train_and_eval(tmp_path, algo, extra, *(["--compare_to", "tiny-llama3"] if first else []))
    m = result["metrics"]
    assert m["pairs"] == 3
    for name in ("chosen", "rejected", "margins", "accuracies"):
        key = {"margins": "reward_margin", "accuracies": "reward_accuracy"}.get(name, f"reward_{name}")
        assert m[key] == pytest.approx(logged[f"eval_rewards/{name}"], abs=1e-5), name
    assert abs(m["reward_margin"]) > 1e-4
    if first:  # the base model against itself (the reference): rewards exactly 0 with LD weighting too
        other = result["compare_to"]["metrics"]
        assert other["reward_chosen"] == 0 and other["reward_rejected"] == 0 and other["reward_margin"] == 0
