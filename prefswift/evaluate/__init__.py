"""`prefswift eval`: preference accuracy against the run's reference (`pairs`, `rewards`, `report`, `plot`) and win
rate with a judge model (`winrate`)."""
from .pairs import EVAL_BATCH_SIZE, RewardFn, eval_record, pair_logps, preference_metrics, write_json
from .report import format_table
from .rewards import deltas, evaluation_metrics

__all__ = ["pair_logps", "preference_metrics", "evaluation_metrics", "deltas", "format_table", "eval_record",
           "write_json", "RewardFn", "EVAL_BATCH_SIZE"]
