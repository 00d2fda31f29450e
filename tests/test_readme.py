"""The README's code runs as written (issue 27: its plugin snippet called torch without importing it).

Convention, checked here:
- every ```python block is a plugin file, as the README uses it: loaded with `--custom_register_path`'s loader, and
  every loss it registers is called on log-ratios (a NameError inside a loss shows only when it is called); the
  files in examples/plugins/ the same way;
- a ```bash block right after the line `<!-- readme-test: run -->` runs, line by line, in an empty folder;
- a ```bash block right after `<!-- readme-test: dry-run -->` is run with `--dry_run true` added to each line (from
  the repository root: its paths are the repository's): training commands whose full run is too long for the suite.
Every other block (```text output, ```jsonc formats, sketches with `...` or placeholders such as RM_DIR) is not run.
The first paragraph's list of commands is checked against `prefswift --help`.
"""
import math
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\s*$")
MARK = re.compile(r"^<!-- readme-test: (run|dry-run) -->$")


def readme_blocks():
    """[(language, code, mark or None, first line number)] of every fenced block in the README."""
    blocks, lines = [], README.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opened = FENCE.match(lines[i])
        if opened and lines[i] != "```":
            mark = MARK.match(lines[i - 1]) if i else None
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            blocks.append((opened.group(1), "\n".join(lines[i + 1:end]) + "\n", mark and mark.group(1), i + 1))
            i = end + 1
        elif lines[i].startswith("```"):  # an untagged block: skip to its end
            i = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```")) + 1
        else:
            i += 1
    return blocks


PYTHON = [(code, line) for lang, code, _, line in readme_blocks() if lang == "python"]
PLUGIN_FILES = sorted((ROOT / "examples" / "plugins").glob("*.py"))
MARKED = [(code, mark, line) for lang, code, mark, line in readme_blocks() if lang == "bash" and mark]


@pytest.fixture
def registries():
    """Loading a plugin registers its losses and algorithms; they are removed again afterwards."""
    from prefswift.algorithms import registry
    from prefswift.arguments import algorithms
    from prefswift.registry import plugins

    saved = (dict(algorithms._SPECS), {k: list(v) for k, v in algorithms._FAMILY_LOSSES.items()},
             {k: dict(v) for k, v in registry._LOSSES.items()}, set(plugins._loaded))
    yield registry
    for target, value in zip((algorithms._SPECS, algorithms._FAMILY_LOSSES, registry._LOSSES, plugins._loaded),
                             saved):
        target.clear()
        target.update(value)


def _run_plugin(path, registry):
    """Load `path` as a plugin; {name: per-pair loss as a list} for every loss it registered, called as the trainer
    calls a loss (log-ratios of chosen and rejected, beta, the options)."""
    import torch

    from prefswift.registry.plugins import load_plugins

    before = {(family, name) for family, losses in registry._LOSSES.items() for name in losses}
    load_plugins(str(path))
    added = [(f, n) for f, losses in registry._LOSSES.items() for n in losses if (f, n) not in before]
    chosen, rejected = torch.tensor([0.5, -1.0, 2.0]), torch.tensor([0.1, 0.3, -0.4])
    options = dict(label_smoothing=0.0, chosen_lengths=torch.tensor([4, 5, 6]),
                   rejected_lengths=torch.tensor([3, 5, 7]))
    return {name: registry.registered_loss(family, name).fn(chosen, rejected, beta=0.1, **options).tolist()
            for family, name in added}


def _hand_sigmoid(c, r, beta=0.1):
    """DPO's sigmoid loss worked by hand: -log sigmoid(beta (c - r)) = log(1 + exp(-beta (c - r)))."""
    return math.log1p(math.exp(-beta * (c - r)))


@pytest.mark.parametrize("source", [f"README.md:{line}" for _, line in PYTHON] +
                         [str(p.relative_to(ROOT)) for p in PLUGIN_FILES])
def test_every_python_block_and_plugin_file_runs_as_written(source, tmp_path, registries):
    if source.startswith("README.md:"):
        code = dict((f"README.md:{line}", code) for code, line in PYTHON)[source]
        path = tmp_path / "readme_plugin.py"
        path.write_text(code, encoding="utf-8")
    else:
        path = ROOT / source
    losses = _run_plugin(path, registries)
    for name, values in losses.items():
        assert len(values) == 3 and all(math.isfinite(v) for v in values), (name, values)
    if "my_sigmoid" in losses:  # the README and the example say it is DPO's sigmoid loss written again
        expected = [_hand_sigmoid(c, r) for c, r in ((0.5, 0.1), (-1.0, 0.3), (2.0, -0.4))]
        assert losses["my_sigmoid"] == pytest.approx(expected, abs=1e-6)


def test_the_readme_has_python_blocks_and_marked_bash_blocks():
    assert PYTHON and {mark for _, mark, _ in MARKED} == {"run", "dry-run"}


def _commands(code):
    """The block's commands: continued lines joined, comments dropped."""
    joined = code.replace("\\\n", " ")
    return [c for c in (line.split("  #")[0].strip() for line in joined.splitlines()) if c and not c.startswith("#")]


@pytest.mark.parametrize("code,mark,line", MARKED, ids=[f"README.md:{line}" for _, _, line in MARKED])
def test_marked_bash_blocks_run(code, mark, line, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1")
    env.pop("NPROC_PER_NODE", None)
    for command in _commands(code):
        argv = shlex.split(command)
        assert argv[0] == "prefswift", f"README.md:{line}: {command}"
        argv = [sys.executable, "-m", "prefswift", *argv[1:]] + (["--dry_run", "true"] if mark == "dry-run" else [])
        proc = subprocess.run(argv, cwd=ROOT if mark == "dry-run" else tmp_path, env=env, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, f"README.md:{line}: {command}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"


def _help_commands():
    """The commands `prefswift --help` prints (its Commands: section), from a fresh process."""
    proc = subprocess.run([sys.executable, "-m", "prefswift", "--help"], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    section = proc.stdout.split("Commands:", 1)[1]
    return {m.group(1) for m in re.finditer(r"^  ([a-z][a-z0-9-]*)\b", section, re.M)}


def test_the_first_paragraph_and_the_commands_table_name_every_command_of_help():
    """Issue 27: the README's top still said "DPO (9 loss types)" and left out KTO, rm and sample. The oracle is the
    live `prefswift --help`: a command added there must be named at the top and in the Commands table."""
    text = README.read_text(encoding="utf-8")
    first = text.split("\n\n")[1]  # the paragraph after the title
    assert not first.startswith(("#", "```")), first
    named = set(re.findall(r"`prefswift ([a-z][a-z0-9-]*)`", first))
    table = text.split("\n## Commands\n", 1)[1].strip().split("\n\n", 1)[0]
    rows = set(re.findall(r"^\| `prefswift ([a-z][a-z0-9-]*)[ `]", table, re.M))
    commands = _help_commands()
    assert named == commands, f"first paragraph: missing {commands - named}, not a command {named - commands}"
    assert rows == commands, f"Commands table: missing {commands - rows}, not a command {rows - commands}"


def test_the_loss_type_count_in_the_readme_is_the_codes():
    from prefswift.arguments.algorithms import loss_types

    text = README.read_text(encoding="utf-8")
    claims = re.findall(r"`prefswift dpo --help` lists \((\d+), `sft` among them\)", text)
    assert claims and all(int(n) == len(loss_types("dpo")) for n in claims) and "sft" in loss_types("dpo")
    assert not re.search(r"\b\d+ loss types\b", text), "a loss-type count that no test checks"
