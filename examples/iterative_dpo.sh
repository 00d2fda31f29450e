#!/usr/bin/env bash
# Iterative (on-policy) DPO: a reward model, then N rounds of sample -> dpo -> eval. Each round samples K answers per
# prompt from the model being trained, the reward model ranks them, DPO trains on best vs worst starting from the
# previous round's model — merged (merge-lora), it is also the round's reference: the LoRA base with the adapter
# switched off — and the held-out reward (the reward model's mean score of the new policy's answers to held-out
# prompts) says whether the round helped.
#
# A real model (one GPU, 7-8B with LoRA; the reward model from the same base on a preference set):
#   MODEL=qwen2.5-7b-instruct RM_DATASET=hh-rlhf-cn:harmless_base_cn PROMPTS=prompts.jsonl HELDOUT=heldout.jsonl \
#   EVAL_DATASET=hh-rlhf-cn:harmless_base_cn \
#   K=8 ROUNDS=3 RM_STEPS=2000 DPO_STEPS=500 MAX_NEW_TOKENS=512 OUT=output/iterative bash examples/iterative_dpo.sh
# The tiny CPU run (tests/test_iterative_dpo.py runs exactly this): bash examples/iterative_dpo.sh
set -euo pipefail

MODEL="${MODEL:-tiny-llama3}"
RM_DATASET="${RM_DATASET:-demo}"
PROMPTS="${PROMPTS:-demo}"                     # any prompt-only, preference or KTO file, or a registered dataset
EVAL_DATASET="${EVAL_DATASET:-demo}"           # eval's held-out pairs (a registered dataset's test split, or a file)
HELDOUT="${HELDOUT:-$(python -c 'import prefswift.data.datasets as d; print(d._DEMO_DIR)')/demo_test.jsonl}"
ROUNDS="${ROUNDS:-2}"
K="${K:-4}"
RM_STEPS="${RM_STEPS:-100}"
DPO_STEPS="${DPO_STEPS:-16}"
MAX_NEW_TOKENS="${MAX_NEW_TOKENS:-16}"
MAX_PROMPTS="${MAX_PROMPTS:-32}"               # prompts sampled per round (-1: all)
OUT="${OUT:-output/iterative_dpo}"
TRAIN=(--lora_target_modules ALL --batch_size 4 --logging_steps 5 --eval_ratio 0)
SAMPLING=(--num_samples "$K" --max_new_tokens "$MAX_NEW_TOKENS" --temperature 1.0 --seed 42)

mean_reward() {  # the mean reward of every sample of a `prefswift sample` output (kept and dropped prompts alike)
  python - "$1" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
rows = [json.loads(l) for p in (out, out.with_suffix(".dropped.jsonl")) if p.exists() for l in p.read_text().splitlines()]
scores = [s for r in rows for s in r.get("scores", []) if s is not None]
print(f"{sum(scores) / len(scores):.4f} over {len(scores)} answers to {len(rows)} prompts")
PY
}

echo "== reward model"
prefswift rm --model_type "$MODEL" --dataset "$RM_DATASET" --output_dir "$OUT/rm" --max_steps "$RM_STEPS" \
    --learning_rate "${RM_LR:-1e-3}" "${TRAIN[@]}" --overwrite_output_dir true
RM="$OUT/rm"

policy=(--model_type "$MODEL")                  # round 1 samples from the base model and trains from it
prefswift sample "${policy[@]}" --dataset "$HELDOUT" --reward_model "$RM" "${SAMPLING[@]}" \
    --output_file "$OUT/round0/heldout.jsonl" --overwrite true
echo "round 0 (base model) held-out reward: $(mean_reward "$OUT/round0/heldout.jsonl")"

for round in $(seq 1 "$ROUNDS"); do
  dir="$OUT/round$round"
  echo "== round $round: sample"
  prefswift sample "${policy[@]}" --dataset "$PROMPTS" --reward_model "$RM" "${SAMPLING[@]}" \
      --max_prompts "$MAX_PROMPTS" --output_file "$dir/pairs.jsonl" --overwrite true
  echo "== round $round: dpo"
  prefswift dpo "${policy[@]}" --dataset "$dir/pairs.jsonl" --output_dir "$dir/dpo" \
      --max_steps "$DPO_STEPS" --learning_rate "${DPO_LR:-2e-3}" "${TRAIN[@]}" --overwrite_output_dir true
  echo "== round $round: eval"
  prefswift eval --ckpt_dir "$dir/dpo" --dataset "$EVAL_DATASET" --infer_output "$dir/eval.json"
  prefswift merge-lora --ckpt_dir "$dir/dpo/adapter" --merge_output_dir "$dir/merged" --overwrite true
  policy=(--model_type "$MODEL" --model_id_or_path "$dir/merged")  # the next round's start and reference
  prefswift sample "${policy[@]}" --dataset "$HELDOUT" --reward_model "$RM" "${SAMPLING[@]}" \
      --output_file "$dir/heldout.jsonl" --overwrite true
  echo "round $round held-out reward: $(mean_reward "$dir/heldout.jsonl")"
done
