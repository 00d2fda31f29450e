"""The names of the files a save writes into a checkpoint-N dir, adapter/ or final/ — so that prefswift, replacing or
rotating a run, removes what it wrote there and nothing else.

Who writes what (a name not listed here is the user's, and stays):
  the Trainer      trainer_state.json, training_args.bin, optimizer.pt, scheduler.pt, scaler.pt, rng_state.pth and
                   rng_state_<rank>.pth; under FSDP (accelerate) pytorch_model_fsdp*.bin, optimizer*.bin and their
                   sharded folders pytorch_model_fsdp_<n>/, optimizer_<n>/; under DeepSpeed global_step<N>/, `latest`,
                   zero_to_fp32.py
  the model        peft: adapter_config.json, adapter_model.safetensors|.bin, README.md (its model card), a second
                   adapter in a folder of its name (`ref`, the reference adapter TRL names so); a full model:
                   config.json, generation_config.json, model.safetensors or its shards and index (or
                   pytorch_model*.bin), the remote code files a `trust_remote_code` model saves with itself
  the tokenizer    tokenizer.json, tokenizer_config.json, special_tokens_map.json, added_tokens.json, chat_template.*,
                   and a slow tokenizer's vocabulary (tokenizer.model, vocab.*, merges.txt, *.tiktoken, spiece.model)
  prefswift        args.json, checkpoint_complete.json (checkpoints.MARKER), the temporary `.NAME.PID.tmp` of a JSON
                   written atomically (files.write_json_atomic); `prefswift eval`/`infer` results in eval_result/ and
                   infer_result/ as <YYYYmmdd-HHMMSS>.json(l)
"""
import re
import shutil
from pathlib import Path
from typing import List

MARKER = "checkpoint_complete.json"  # written last into a checkpoint (checkpoints.py)
STATE = "trainer_state.json"

SAVED_NAMES = frozenset({
    # the Trainer
    STATE, "training_args.bin", "optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state.pth",
    "optimizer.bin", "latest", "zero_to_fp32.py",
    # peft and full models
    "adapter_config.json", "adapter_model.safetensors", "adapter_model.bin", "README.md", "config.json",
    "generation_config.json", "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
    "pytorch_model.bin.index.json",
    # tokenizers
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "chat_template.jinja",
    "chat_template.json", "tokenizer.model", "vocab.json", "vocab.txt", "merges.txt", "spiece.model",
    "sentencepiece.bpe.model",
    # prefswift
    "args.json", MARKER,
})
SAVED_PATTERN = re.compile(
    r"^(rng_state_\d+\.pth"
    r"|model-\d{5}-of-\d{5}\.safetensors|pytorch_model-\d{5}-of-\d{5}\.bin"
    r"|pytorch_model_fsdp(_\d+)?\.bin|optimizer_\d+\.bin"
    r"|(configuration|modeling|tokenization)_\w+\.py|\w+\.tiktoken"
    r"|\.[\w.-]+\.\d+\.tmp)$")
# folders a save writes whole (DeepSpeed's and FSDP's sharded states): removed with everything in them
SAVED_WHOLE_DIRS = re.compile(r"^(global_step\d+|pytorch_model_fsdp_\d+|optimizer_\d+)$")
# folders holding a second peft adapter (the frozen reference's, `prefswift.models.lora.REF_ADAPTER`): same names inside
ADAPTER_SUBDIRS = frozenset({"ref"})
# `prefswift eval` / `infer` results saved under a checkpoint or the adapter (data.selection.result_path)
RESULT_DIRS = frozenset({"eval_result", "infer_result"})
RESULT_FILE = re.compile(r"^\d{8}-\d{6}\.jsonl?$")


def saved_file(name: str) -> bool:
    """True for the name of a file a save writes into a checkpoint, adapter/ or final/ (see the module doc)."""
    return name in SAVED_NAMES or bool(SAVED_PATTERN.match(name))


def saved_entry(path: Path) -> bool:
    """True when `path`, an entry of a checkpoint, adapter/ or final/, is a file a save writes there or a folder a
    save writes that still holds something of the save's (an eval_result/ holding only a user's file is the user's)."""
    if not path.is_dir() or path.is_symlink():
        return saved_file(path.name)
    if SAVED_WHOLE_DIRS.match(path.name):
        return True
    if path.name in ADAPTER_SUBDIRS:
        return any(saved_file(p.name) for p in path.iterdir())
    if path.name in RESULT_DIRS:
        return any(RESULT_FILE.match(p.name) for p in path.iterdir())
    return False


def holds_only_foreign(folder: Path) -> bool:
    """A folder that is not empty and holds nothing a save writes (what is left of a checkpoint-N whose files were
    removed while a user's stayed): it is not a checkpoint, whatever its name."""
    try:
        entries = list(Path(folder).iterdir())
        return bool(entries) and not any(saved_entry(p) for p in entries)
    except OSError:
        return False


def left_by_a_run(path: Path) -> bool:
    """`path` (a run's adapter/, final/, complete.json...) exists and is not a folder holding only a user's files."""
    return path.exists() and not (path.is_dir() and holds_only_foreign(path))


def carry_foreign(old: Path, new: Path) -> List[str]:
    """Before `new` (a save written whole beside it) replaces `old` (adapter/ or final/ of an earlier save): move what
    the user put into `old` over into `new`, so the swap replaces only what prefswift wrote. The names moved."""
    moved = []
    for p in sorted(old.iterdir()):
        if not saved_entry(p) and not (new / p.name).exists() and not (new / p.name).is_symlink():
            p.rename(new / p.name)
            moved.append(p.name)
    return moved


def remove_saved(folder: Path, run_dir: Path, kept: List[str]) -> None:
    """Remove what a save wrote in `folder` (a checkpoint-N, adapter/, final/ or one of their result folders), its
    trainer state and marker first (a removal cut short leaves no checkpoint that looks whole); the folder goes too
    when nothing else is left in it. What stays is appended to `kept`."""
    for first in (STATE, MARKER):
        if (folder / first).is_file() and not (folder / first).is_symlink():
            (folder / first).unlink()
    for p in sorted(folder.iterdir()):
        if p.is_dir() and not p.is_symlink():
            if SAVED_WHOLE_DIRS.match(p.name):
                shutil.rmtree(p)
            elif p.name in ADAPTER_SUBDIRS or p.name in RESULT_DIRS:
                remove_saved(p, run_dir, kept)
            else:
                kept.append(f"{p.relative_to(run_dir)}/")
        elif (RESULT_FILE.match(p.name) if folder.name in RESULT_DIRS else saved_file(p.name)):
            p.unlink()
        else:
            kept.append(str(p.relative_to(run_dir)))
    try:
        folder.rmdir()  # only when empty
    except OSError:
        pass
