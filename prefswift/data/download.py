"""Download registered preference datasets to a local folder for offline training:
`python scripts/download_preference_dataset.py --list | NAME [...]`.

Files land where `--dataset NAME --dataset_dir DIR` finds them: DIR/NAME/SUBSET/SPLIT.jsonl.
"""
import argparse
import json
import os
import sys
from typing import List

from ..errors import PrefswiftError
from .datasets import get_dataset_spec, list_datasets
from . import loader

def describe() -> str:
    lines = []
    for spec in list_datasets():
        if spec.builtin_dir:
            continue
        alias = f" (also: {', '.join(spec.aliases)})" if spec.aliases else ""
        ids = ", ".join(i for i in (spec.ms_id and f"ModelScope {spec.ms_id}", spec.hf_id and f"HF {spec.hf_id}")
                        if i)
        lines.append(f"{spec.name}{alias}: {spec.description} [{ids}; subsets: {'/'.join(spec.subsets)}]")
    return "\n".join(lines)


def download(name: str, output_dir: str, hub: str = "auto", log=print) -> List[str]:
    spec = get_dataset_spec(name)  # the names and aliases `--dataset` accepts
    which, dataset_id = loader.hub_and_id(spec, hub, log)
    written = []
    for subset in spec.subsets:
        for split in (spec.train_split, spec.test_split):
            if not split:
                continue
            real_subset = None if subset == "default" else subset
            try:
                rows = loader.fetch_from_hub(dataset_id, real_subset, split, which)
            except PrefswiftError:  # a gated or missing repository: already one clear line
                raise
            except Exception as e:  # noqa: BLE001 - the user gets one line per failed split
                if split == spec.test_split:
                    log(f"[download] {spec.name}:{subset} has no '{split}' split ({type(e).__name__}); skipped")
                    continue
                raise PrefswiftError(f"cannot download {dataset_id} (subset {subset}, split {split}) from "
                                     f"{which}: {type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
                                     " — check the network, or try --hub hf / --hub modelscope") from None
            parts = (output_dir, spec.name) + (() if subset == "default" else (subset,))
            path = os.path.join(*parts, f"{split}.jsonl")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                for row in rows:
                    f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            os.replace(tmp, path)
            log(f"[download] {spec.name}:{subset} {split}: {len(rows)} rows -> {path}")
            written.append(path)
    log(f"[download] train offline with: --dataset {spec.name} --dataset_dir {output_dir}")
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Download preference datasets for offline training.")
    parser.add_argument("names", nargs="*", help="dataset names (see --list)")
    parser.add_argument("--list", action="store_true", help="list the datasets that can be downloaded")
    parser.add_argument("--output_dir", default="data", help="where to write (use it as --dataset_dir)")
    parser.add_argument("--hub", default="auto", choices=("auto", "modelscope", "hf"))
    args = parser.parse_args(argv)
    if args.list or not args.names:
        print(describe())
        return 0
    try:
        for name in args.names:
            download(name, args.output_dir, args.hub)
    except PrefswiftError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
