"""The argument tree: both spellings of every seed flag, booleans, lists, config files, unknown flags."""
import json

import pytest

from prefswift.arguments import load_args_json, parse_command
from prefswift.errors import ArgumentError

SEED_004 = """--model_type yi-6b-chat --ref_model_type yi-6b-chat --model_revision master --sft_type lora
 --tuner_backend swift --dtype AUTO --output_dir output --dataset hh-rlhf-cn:harmless_base_cn --num_train_epochs 3
 --max_length 1024 --max_prompt_length 512 --check_dataset_strategy none --lora_rank 8 --lora_alpha 32
 --lora_dropout_p 0.05 --lora_target_modules ALL --gradient_checkpointing true --batch_size 1 --weight_decay 0.1
 --learning_rate 5e-5 --gradient_accumulation_steps 8 --max_grad_norm 1.0 --warmup_ratio 0.03 --eval_steps 2000
 --save_steps 2000 --save_total_limit 2 --logging_steps 10""".split()

SEED_000 = """--model_name_or_path llama3-8b-hf --train_file data.json --eval_ratio 0.05 --output_dir ./orpo_output
 --beta 0.1 --max_length 2048 --max_prompt_length 1024 --lora_r 16 --lora_alpha 32 --lora_dropout 0.05
 --lora_target_modules q_proj,v_proj,k_proj,o_proj,gate_proj,up_proj,down_proj --use_flash_attention True
 --per_device_train_batch_size 4 --gradient_accumulation_steps 4 --learning_rate 5e-5 --num_train_epochs 3""".split()


def test_seed_004_line_parses_to_the_right_fields():
    a = parse_command("dpo", SEED_004)
    assert a.model.model_type == "yi-6b-chat" and a.model.ref_model_type == "yi-6b-chat"
    assert a.data.dataset == ["hh-rlhf-cn:harmless_base_cn"]
    assert a.tuning.lora_rank == 8 and a.tuning.lora_dropout_p == 0.05 and a.tuning.lora_target_modules == ["ALL"]
    assert a.tuning.gradient_checkpointing is True and a.train.batch_size == 1
    assert a.train.warmup_ratio == 0.03 and a.train.save_total_limit == 2 and a.data.check_dataset_strategy == "none"


def test_seed_000_spellings_map_to_the_same_fields():
    a = parse_command("orpo", SEED_000)
    assert a.model.model_id_or_path == "llama3-8b-hf" and a.data.dataset == ["data.json"]
    assert a.tuning.lora_rank == 16 and a.tuning.lora_dropout_p == 0.05
    assert a.tuning.lora_target_modules == ["q_proj", "v_proj", "k_proj", "o_proj", "gate_proj", "up_proj",
                                            "down_proj"]
    assert a.model.use_flash_attention is True and a.train.batch_size == 4 and a.pref.beta == 0.1


@pytest.mark.parametrize("flag,value,expected", [("--use_4bit", "True", 4), ("--use_8bit", "true", 8),
                                                 ("--quantization_bit", "4", 4), ("--use_4bit", "False", 0)])
def test_quantization_spellings(flag, value, expected):
    assert parse_command("orpo", [flag, value]).model.quantization_bit == expected


@pytest.mark.parametrize("raw,expected", [("true", True), ("True", True), ("1", True), ("yes", True),
                                          ("false", False), ("False", False), ("0", False)])
def test_value_style_booleans(raw, expected):
    assert parse_command("dpo", ["--gradient_checkpointing", raw]).tuning.gradient_checkpointing is expected


def test_bare_boolean_flag_hyphens_and_equals():
    a = parse_command("dpo", ["--precompute-ref-log-probs", "--lora-rank=4", "--learning-rate", "1e-4"])
    assert a.pref.precompute_ref_log_probs is True and a.tuning.lora_rank == 4 and a.train.learning_rate == 1e-4


def test_unknown_flag_suggests():
    with pytest.raises(ArgumentError, match=r"unknown option --lora_rnak .*did you mean --lora_rank"):
        parse_command("dpo", ["--lora_rnak", "8"])


@pytest.mark.parametrize("argv,msg", [(["--lora_rank", "eight"], "expected int"),
                                      (["--gradient_checkpointing", "maybe"], "expected true or false"),
                                      (["--sft_type", "qlora"], "not one of"),
                                      (["--lora_rank"], "needs a value"),
                                      (["--columns", "[1]"], "JSON object")])
def test_bad_values_give_one_line_errors(argv, msg):
    with pytest.raises(ArgumentError, match=msg) as e:
        parse_command("dpo", argv)
    assert "\n" not in str(e.value)


def test_config_file_and_cli_override(tmp_path):
    cfg = tmp_path / "dpo_config.yaml"
    cfg.write_text("model_name_or_path: ./Qwen3-4B-Base\nadapter_name_or_path: ./sft/checkpoint-2000\n"
                   "stage: dpo\ndataset: ultrafeedback\npref_beta: 0.2\npref_loss: hinge\npref_ftx: 0.1\n"
                   "template: qwen3\ncutoff_len: 512\nlearning_rate: 5.0e-6\nper_device_train_batch_size: 1\n"
                   "gradient_accumulation_steps: 8\nnum_train_epochs: 2.0\noutput_dir: ./saves/dpo\n")
    a = parse_command("dpo", ["--config", str(cfg), "--learning_rate", "1e-6"])
    assert a.model.adapter_name_or_path == "./sft/checkpoint-2000" and a.model.template == "qwen3"
    assert a.pref.beta == 0.2 and a.pref.loss_type == "hinge" and a.pref.rpo_alpha == 0.1
    assert a.data.max_length == 512 and a.data.dataset == ["ultrafeedback"]
    assert a.train.learning_rate == 1e-6  # the command line wins
    assert a.train.gradient_accumulation_steps == 8


def test_config_file_unknown_key_names_the_file(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"lora_rnk": 8}))
    with pytest.raises(ArgumentError, match=r"unknown option --lora_rnk in .*c.json.*did you mean --lora_rank"):
        parse_command("orpo", ["--config", str(cfg)])


def test_args_json_round_trip(tmp_path):
    a = parse_command("orpo", SEED_000)
    a.save(tmp_path)
    flat = load_args_json(tmp_path / "checkpoint-5")  # found in the parent run dir too
    assert flat["lora_rank"] == 16 and flat["dataset"] == ["data.json"] and flat["command"] == "orpo"


def test_infer_rejects_training_flags():
    with pytest.raises(ArgumentError, match="unknown option --lora_rank for `prefswift infer`"):
        parse_command("infer", ["--lora_rank", "8"])


@pytest.mark.parametrize("value", ["auto", "balanced", "balanced_low_0", "sequential", "cpu", "cuda", "cuda:1", "mps",
                                   '{"": "cpu"}', '{"model.embed_tokens": 0, "lm_head": "disk"}'])
def test_device_map_values_transformers_accepts_are_accepted(value):
    from transformers.integrations.accelerate import check_and_set_device_map

    from prefswift.models.loader import parse_device_map

    args = parse_command("dpo", ["--model_type", "tiny-llama3", "--device_map", value])
    check_and_set_device_map(parse_device_map(args.model.device_map))  # the oracle: raises on a bad placement


@pytest.mark.parametrize("command,flag", [("dpo", "device_map"), ("infer", "device_map"), ("eval", "device_map"),
                                          ("merge-lora", "merge_device_map")])
@pytest.mark.parametrize("value", ["notadevice", "0", "cuda:x", '{"": "gpu"}', "{oops"])
def test_a_device_map_that_is_no_placement_is_refused_when_parsed(command, flag, value):
    from transformers.integrations.accelerate import check_and_set_device_map

    if not value.startswith("{"):
        with pytest.raises(ValueError):  # what the user got before: transformers' traceback when the model loaded
            check_and_set_device_map(value)
    with pytest.raises(ArgumentError) as err:
        parse_command(command, ["--model_type", "tiny-llama3", f"--{flag}", value])
    assert "\n" not in str(err.value) and "cuda:N" in str(err.value) or "not a device" in str(err.value)
