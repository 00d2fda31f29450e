"""`prefswift export --ckpt_dir RUN --to gguf|ollama|gguf-lora|safetensors`: see `prefswift.export.run`."""
from typing import List

from ..errors import ArgumentError
from ..export.run import export as export_model
from .common import run_command


def main(argv: List[str]) -> None:
    run_command("export", argv, export)


def export(args) -> None:
    if not (args.infer.ckpt_dir or args.model.model_type or args.model.model_id_or_path):
        raise ArgumentError("export needs --ckpt_dir CKPT: a run dir, a checkpoint-N / adapter dir or a merged model "
                            "dir (or --model_type / --model_id_or_path with --adapter_name_or_path)")
    export_model(args)
