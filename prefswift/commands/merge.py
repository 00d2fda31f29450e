"""`prefswift merge-lora --ckpt_dir X [--output_dir Y]`: fold a LoRA adapter into its base (`prefswift.merge`)."""
from typing import List

from ..errors import ArgumentError
from ..merge import merge_lora
from .common import run_command


def main(argv: List[str]) -> None:
    run_command("merge-lora", argv, merge)


def merge(args) -> None:
    if not (args.infer.ckpt_dir or args.model.adapter_name_or_path):
        raise ArgumentError("merge-lora needs --ckpt_dir CKPT: a LoRA checkpoint (checkpoint-N), its adapter/ dir or "
                            "the run dir (or --adapter_name_or_path A with --model_type / --model_id_or_path)")
    merge_lora(args, args.infer.merge_output_dir)
