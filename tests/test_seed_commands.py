"""The seeds' command lines, run through the real CLI unchanged except model, dataset and --max_steps 2."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prefswift.cli import app

FIXTURES = Path(__file__).parent / "fixtures" / "datasets"
runner = CliRunner()


def run_cli(argv):
    result = runner.invoke(app, argv, catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture()
def seed000_data(tmp_path):
    """Seed 000's sharegpt format, enough rows for a 5% eval split."""
    rows = json.loads((FIXTURES / "sharegpt_seed000.json").read_text())
    path = tmp_path / "data.json"
    path.write_text(json.dumps(rows * 10, ensure_ascii=False))
    return path


SEED_000_LINES = {
    "basic": "--eval_ratio 0.05 --output_dir {out} --beta 0.1 --max_length 2048 --max_prompt_length 1024 --lora_r 16 "
             "--lora_alpha 32 --lora_dropout 0.05 --lora_target_modules q_proj,v_proj,k_proj,o_proj,gate_proj,up_proj,"
             "down_proj --use_flash_attention True --per_device_train_batch_size 4 --gradient_accumulation_steps 4 "
             "--learning_rate 5e-5 --num_train_epochs 3",
    "eval_ratio": "--eval_ratio 0.1 --output_dir {out} --beta 0.1 --lora_r 16 --use_flash_attention True",
    "resume": "--eval_ratio 0.05 --output_dir {out} --resume_from_checkpoint latest --beta 0.1 --lora_r 16 "
              "--use_flash_attention True --per_device_train_batch_size 4 --learning_rate 5e-5",
    "adapter_dir": "--eval_ratio 0.05 --output_dir {out} --lora_adapter_dir {out}_lora/my_model --beta 0.1 --lora_r 16 "
                   "--use_flash_attention True --per_device_train_batch_size 4 --learning_rate 5e-5",
}


@pytest.mark.parametrize("name", list(SEED_000_LINES))
def test_seed_000_orpo_lines(name, tmp_path, seed000_data, tiny_llama3_dir):
    out = tmp_path / "orpo_output"
    line = SEED_000_LINES[name].format(out=out).split()
    argv = ["orpo", "--model_name_or_path", str(tiny_llama3_dir), "--train_file", str(seed000_data)] + line + \
           ["--max_steps", "2", "--save_steps", "1"]
    code, output = run_cli(argv)
    assert code == 0, output
    assert (out / "adapter" / "adapter_model.safetensors").is_file() and (out / "args.json").is_file()
    assert (out / "checkpoint-2").is_dir()
    if name == "adapter_dir":
        assert (tmp_path / "orpo_output_lora" / "my_model" / "adapter_model.safetensors").is_file()
    if name == "resume":  # `latest` again continues from checkpoint-2 to a larger max_steps
        code, output = run_cli(argv[:-4] + ["--max_steps", "3", "--save_steps", "1"])
        assert code == 0, output
        assert "resuming from" in output and (out / "checkpoint-3").is_dir()
        steps = [json.loads(l)["step"] for l in (out / "logging.jsonl").read_text().splitlines()]
        assert steps == sorted(steps)


def test_seed_000_4bit_line_trains_qlora_on_cpu(tmp_path, seed000_data, tiny_llama3_dir):
    """The ORPO script's 4-bit line: QLoRA through bitsandbytes' CPU backend (flash-attn falls back to sdpa)."""
    argv = ["orpo", "--model_name_or_path", str(tiny_llama3_dir), "--train_file", str(seed000_data),
            "--eval_ratio", "0.05", "--output_dir", str(tmp_path / "o"), "--use_4bit", "True", "--beta", "0.1",
            "--lora_r", "16", "--use_flash_attention", "True", "--per_device_train_batch_size", "8",
            "--gradient_accumulation_steps", "2", "--learning_rate", "5e-5", "--max_steps", "2"]
    code, output = run_cli(argv)
    assert code == 0, output
    assert (tmp_path / "o" / "adapter" / "adapter_model.safetensors").is_file()
    assert json.loads((tmp_path / "o" / "args.json").read_text())["quantization_bit"] == 4


def test_seed_004_dpo_line(tmp_path):
    """ms-swift's `swift dpo` line of seed 004 (without the 4-GPU launch variables: see test_distributed)."""
    data_dir = tmp_path / "hh_local"
    (data_dir / "harmless_base_cn").mkdir(parents=True)
    shutil.copy(FIXTURES / "hh_rlhf_cn.jsonl", data_dir / "harmless_base_cn" / "train.jsonl")
    line = ("dpo --model_type tiny-llama3 --ref_model_type tiny-llama3 --model_revision master --sft_type lora "
            "--tuner_backend swift --dtype AUTO --output_dir {out} --dataset hh-rlhf-cn:harmless_base_cn "
            "--num_train_epochs 3 --max_length 1024 --max_prompt_length 512 --check_dataset_strategy none "
            "--lora_rank 8 --lora_alpha 32 --lora_dropout_p 0.05 --lora_target_modules ALL "
            "--gradient_checkpointing true --batch_size 1 --weight_decay 0.1 --learning_rate 5e-5 "
            "--gradient_accumulation_steps 8 --max_grad_norm 1.0 --warmup_ratio 0.03 --eval_steps 2000 "
            "--save_steps 2000 --save_total_limit 2 --logging_steps 10").format(out=tmp_path / "output").split()
    code, output = run_cli(line + ["--dataset_dir", str(data_dir), "--max_steps", "2"])
    assert code == 0, output
    assert "reference: the base model with the LoRA adapter disabled" in output
    run = tmp_path / "output"
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
    rows = [json.loads(l) for l in (run / "logging.jsonl").read_text().splitlines()]
    assert any("rewards/margins" in r for r in rows)


def test_python_dash_m_entry_point_and_one_line_errors(tmp_path):
    env = dict(os.environ)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": "a", "chosen": \n')
    proc = subprocess.run([sys.executable, "-m", "prefswift", "orpo", "--model_type", "tiny-llama3", "--dataset",
                           str(bad), "--output_dir", str(tmp_path / "o")], capture_output=True, text=True, env=env,
                          cwd=Path(__file__).parent.parent, timeout=300)
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert err[-1].startswith("error: ") and "bad.jsonl" in err[-1] and "line 2" in err[-1], proc.stderr
    assert "Traceback" not in proc.stderr


def test_seed_003_llamafactory_flow(tmp_path, tiny_qwen_dir):
    """dataset_info.json + dpo_config.yaml (`llamafactory-cli train dpo_config.yaml` -> `prefswift dpo --config`),
    then `llamafactory-cli chat --model_name_or_path --adapter_name_or_path --template` -> `prefswift infer`."""
    data = tmp_path / "data"
    data.mkdir()
    rows = [{"instruction": f"用户指令{i}", "chosen": f"优质回答{i}", "rejected": f"劣质回答{i}"} for i in range(12)]
    (data / "my_preference_data.json").write_text(json.dumps(rows, ensure_ascii=False))
    (data / "dataset_info.json").write_text(json.dumps({"my_preference_dataset": {
        "file_name": "my_preference_data.json", "ranking": True,
        "columns": {"prompt": "instruction", "chosen": "chosen", "rejected": "rejected"}}}))
    out = tmp_path / "saves" / "dpo"
    cfg = tmp_path / "dpo_config.yaml"
    cfg.write_text(f"""### model
model_name_or_path: {tiny_qwen_dir}
trust_remote_code: true
### method
stage: dpo
do_train: true
finetuning_type: lora
lora_rank: 8
lora_target: all
pref_beta: 0.1
pref_loss: sigmoid
pref_ftx: 0.0
### dataset
dataset: my_preference_dataset
dataset_dir: {data}
template: qwen
cutoff_len: 512
overwrite_cache: true
preprocessing_num_workers: 1
### output
output_dir: {out}
logging_steps: 1
save_steps: 2
plot_loss: true
### train
per_device_train_batch_size: 1
gradient_accumulation_steps: 2
learning_rate: 5.0e-6
num_train_epochs: 2.0
lr_scheduler_type: cosine
warmup_ratio: 0.1
bf16: false
val_size: 0.1
""")
    code, output = run_cli(["dpo", "--config", str(cfg), "--max_steps", "2"])
    assert code == 0, output
    assert (out / "images" / "loss.png").is_file() and (out / "checkpoint-2").is_dir()
    code, output = run_cli(["infer", "--model_name_or_path", str(tiny_qwen_dir), "--adapter_name_or_path",
                            str(out / "checkpoint-2"), "--template", "qwen", "--max_new_tokens", "4"])
    assert code == 0, output


def test_seed_003_download_script(tmp_path, monkeypatch, tiny_llama3_dir):
    from prefswift.data import download, loader

    assert "ultrafeedback" in download.describe() and "orca_dpo" in download.describe()
    rows = json.loads((FIXTURES / "ultrafeedback_train_prefs.jsonl").read_text().splitlines()[0])
    calls = []

    def fake_fetch(dataset_id, subset, split, hub):
        calls.append((dataset_id, split, hub))
        return [rows] * 6

    monkeypatch.setattr(loader, "fetch_from_hub", fake_fetch)
    assert download.main(["ultrafeedback", "--output_dir", str(tmp_path / "data"), "--hub", "hf"]) == 0
    assert calls == [("HuggingFaceH4/ultrafeedback_binarized", "train_prefs", "hf"),
                     ("HuggingFaceH4/ultrafeedback_binarized", "test_prefs", "hf")]
    monkeypatch.setattr(loader, "fetch_from_hub", lambda *a: pytest.fail("network used"))
    code, output = run_cli(["preview", "--model_type", "tiny-llama3", "--dataset", "ultrafeedback", "--dataset_dir",
                            str(tmp_path / "data"), "-n", "1"])
    assert code == 0 and "=== pair 0" in output, output
