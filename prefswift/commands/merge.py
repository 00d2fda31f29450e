"""`prefswift merge-lora --ckpt_dir X [--output_dir Y]`: fold a LoRA adapter into its base (`prefswift.merge`)."""
from typing import List

from ..merge import merge_lora
from .common import run_command


def main(argv: List[str]) -> None:
    run_command("merge-lora", argv, lambda args: merge_lora(args, args.infer.merge_output_dir))
