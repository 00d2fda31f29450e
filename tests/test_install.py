"""scripts/install.sh installs torch by kind of machine (issue 27: it ran a plain `pip install torch==2.13.0`, which
on Linux x86_64 is PyPI's CUDA build with its nvidia-* wheels, unhashed, also on a machine without a GPU).

install.sh runs here against a stand-in venv whose `python` records every pip command instead of running it (and
says whether torch imports), so each branch is checked without downloading anything. The hashes of
requirements/torch-cuda.txt are checked against the one PyPI publishes for torch's own wheel."""
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
# PyPI's sha256 of torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl (https://pypi.org/simple/torch/, read by hand)
PYPI_TORCH_SHA256 = "60fcdcb2f3876e21146cb4524ef06397d727ca9ad5f020818547e25075fe3cb7"


def _stub(path: Path, body: str) -> None:
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def _install(tmp_path, *, torch_present=False, gpu=False, **env):
    """The pip commands install.sh runs (one line each) and its output."""
    venv, tools = tmp_path / "venv", tmp_path / "tools"
    (venv / "bin").mkdir(parents=True)
    tools.mkdir()
    log = tmp_path / "pip.log"
    torch = "echo 2.13.0; exit 0" if torch_present else "exit 1"
    _stub(venv / "bin" / "python", f"""
if [ "$1" = "-c" ]; then case "$2" in *"import torch"*) {torch};; esac; fi
if [ "$1 $2" = "-m pip" ]; then shift 2; echo "pip $*" >> {log}; exit 0; fi
exit 0
""")
    if gpu:
        _stub(tools / "nvidia-smi", 'echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0)"\n')
    path = f"{tools}{os.pathsep}/usr/bin{os.pathsep}/bin"
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "install.sh")], cwd=ROOT, capture_output=True, text=True,
                          env={"PATH": path, "HOME": str(tmp_path), "PREFSWIFT_VENV": str(venv), **env}, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return log.read_text().splitlines(), proc.stdout


def test_a_machine_without_a_gpu_gets_the_cpu_wheel_from_the_cpu_index(tmp_path):
    commands, _ = _install(tmp_path)
    torch = [c for c in commands if "torch" in c]
    assert torch == ["pip install -q --no-deps torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"]
    assert commands[1].startswith("pip install -q --require-hashes --no-deps -r requirements/lock.txt")


def test_a_machine_with_a_gpu_gets_the_hashed_cuda_build(tmp_path):
    commands, _ = _install(tmp_path, gpu=True)
    assert commands[0] == "pip install -q --require-hashes --no-deps -r requirements/torch-cuda.txt"
    assert _install(tmp_path / "forced", PREFSWIFT_TORCH="cuda")[0][0] == commands[0]


def test_a_torch_already_installed_is_kept(tmp_path):
    commands, out = _install(tmp_path, torch_present=True, gpu=True)
    assert not any("torch" in c for c in commands) and "keeping the torch already in" in out


def test_the_cuda_lock_pins_and_hashes_every_file_and_matches_pypi():
    text = (ROOT / "requirements" / "torch-cuda.txt").read_text()
    entries = re.split(r"\n(?=[a-z0-9])", text.split("\n", 3)[3].strip())
    pins = {}
    for entry in entries:
        name, version = re.match(r"^([a-z0-9._-]+)==(\S+)", entry).groups()
        pins[name] = version
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", entry), name
    installed = re.search(r'^TORCH="torch==([^"]+)"', (ROOT / "scripts" / "install.sh").read_text(), re.M).group(1)
    assert pins["torch"] == installed and "triton" in pins and any(n.startswith("nvidia-") for n in pins)
    assert f"sha256:{PYPI_TORCH_SHA256}" in text
    lock = set(re.findall(r"^([a-z0-9._-]+)==", (ROOT / "requirements" / "lock.txt").read_text(), re.M))
    assert not lock & set(pins), "a package pinned in both locks"
