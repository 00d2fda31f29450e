#!/usr/bin/env bash
# SFT, then DPO from it: sft -> eval -> dpo from the SFT run -> eval against it -> merge -> infer.
# The DPO run starts from the SFT run (--adapter_name_or_path SFT_RUN): the SFT adapter is merged into the base, a
# new LoRA adapter trains on top, and the reference is the SFT model (its first-step rewards are 0). args.json records
# the chain base -> SFT run -> DPO run, so eval, merge-lora and infer on the DPO run rebuild all of it.
# (--continue_adapter true trains the SFT adapter itself instead, its frozen copy the reference.)
#
# A real model (one GPU, 7-8B with LoRA):
#   MODEL=qwen2.5-7b-instruct SFT_DATASET='alpaca-gpt4-data-en#5000' DPO_DATASET=ultrafeedback \
#   EVAL_DATASET=ultrafeedback \
#   SFT_EPOCHS=1 DPO_STEPS=1000 SFT_LR=1e-4 DPO_LR=5e-6 OUT=output/sft_then_dpo bash examples/sft_then_dpo.sh
# The tiny CPU run (tests/test_sft_then_dpo.py runs exactly this): bash examples/sft_then_dpo.sh
set -euo pipefail

MODEL="${MODEL:-tiny-llama3}"
SFT_DATASET="${SFT_DATASET:-demo-sft}"
DPO_DATASET="${DPO_DATASET:-demo}"
EVAL_DATASET="${EVAL_DATASET:-demo}"            # held-out pairs (demo: its test split, questions never trained on)
SFT_EPOCHS="${SFT_EPOCHS:-4}"
DPO_STEPS="${DPO_STEPS:-20}"
OUT="${OUT:-output/sft_then_dpo}"
TRAIN=(--model_type "$MODEL" --lora_target_modules ALL --batch_size 8 --logging_steps 20 --save_steps 1000
       --gradient_checkpointing false --overwrite_output_dir true)

echo "== sft"
prefswift sft "${TRAIN[@]}" --dataset "$SFT_DATASET" --output_dir "$OUT/sft" --num_train_epochs "$SFT_EPOCHS" \
    --lora_rank 16 --learning_rate "${SFT_LR:-5e-3}"
echo "== eval the SFT model (log-prob accuracy on held-out pairs)"
prefswift eval --ckpt_dir "$OUT/sft" --dataset "$EVAL_DATASET" --infer_output "$OUT/sft_eval.json"
echo "== dpo from the SFT run (reference: the SFT model)"
prefswift dpo "${TRAIN[@]}" --adapter_name_or_path "$OUT/sft" --dataset "$DPO_DATASET" --output_dir "$OUT/dpo" \
    --max_steps "$DPO_STEPS" --learning_rate "${DPO_LR:-2e-3}" --eval_ratio 0
echo "== eval the DPO run against the SFT model"
prefswift eval --ckpt_dir "$OUT/dpo" --dataset "$EVAL_DATASET" --compare_to "$OUT/sft" \
    --infer_output "$OUT/dpo_eval.json"
echo "== merge (base + SFT + DPO) and infer"
prefswift merge-lora --ckpt_dir "$OUT/dpo" --merge_output_dir "$OUT/merged" --overwrite true
prefswift infer --model_type "$MODEL" --model_id_or_path "$OUT/merged" --dataset "$EVAL_DATASET" \
    --max_new_tokens 8 --infer_output "$OUT/heldout.jsonl"
python -m prefswift.data.demo check "$OUT/heldout.jsonl" || true
