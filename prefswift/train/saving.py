"""The end of a run: the final adapter (LoRA) or model (full fine-tuning), written whole or not at all."""
import shutil
from pathlib import Path

from ..arguments import RunArgs
from ..models.lora import REF_ADAPTER
from ..models.push import push_result
from ..run.ownership import check_adapter_dir, replace_dir
from ..run.saved_files import carry_foreign


def save_final(trainer, args: RunArgs, run_dir: Path, tokenizer, main: bool, log) -> None:
    """LoRA: the adapter to run_dir/adapter (+ --lora_adapter_dir); full: the model to run_dir/final."""
    lora = args.tuning.sft_type == "lora"
    target = run_dir / ("adapter" if lora else "final")
    tmp = target.with_name(target.name + ".tmp")
    trainer.save_model(str(tmp))  # collective under DeepSpeed; writes on rank 0
    if not main:
        return
    if lora and (args.model.ref_adapter_name_or_path or args.model.continue_adapter):  # peft saves every adapter:
        # not the frozen reference's copy
        shutil.rmtree(tmp / REF_ADAPTER, ignore_errors=True)
    tokenizer.save_pretrained(str(tmp))
    args.save(tmp)
    if target.exists():
        carry_foreign(target, tmp)  # a file the user put into the earlier adapter/ (final/) stays where it was
        shutil.rmtree(target)
    tmp.rename(target)
    log(f"[prefswift] saved {'adapter' if lora else 'model'} to {target}")
    if lora and args.train.lora_adapter_dir:
        extra = Path(args.train.lora_adapter_dir).expanduser().resolve()
        check_adapter_dir(extra, run_dir)  # again: checked before training, the folder may have changed since
        replace_dir(target, extra)
        log(f"[prefswift] saved adapter to {extra}")
    push_result(args, target, log)

