"""Smaller promises, each checked against hand-written expectations: a plugin loss never silently replaces another of
the same name, PREFSWIFT_HUB_TIMEOUT=nan/inf does not crash a command, and an AlgorithmSpec for data nothing
implements is refused."""
import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest

from prefswift.errors import ArgumentError

ROOT = Path(__file__).parent.parent


@pytest.fixture
def clean_registries(monkeypatch):
    """Registrations made in a test are gone after it."""
    from prefswift.algorithms import registry
    from prefswift.arguments import algorithms
    from prefswift.registry import plugins

    monkeypatch.setattr(registry, "_LOSSES", copy.deepcopy(registry._LOSSES))
    monkeypatch.setattr(algorithms, "_FAMILY_LOSSES", copy.deepcopy(algorithms._FAMILY_LOSSES))
    monkeypatch.setattr(plugins, "_loaded", set(plugins._loaded))


def test_register_loss_refuses_a_name_another_plugin_loss_has(clean_registries, tmp_path):
    from prefswift.algorithms import register_loss
    from prefswift.algorithms.registry import registered_loss
    from prefswift.registry.plugins import load_plugins

    def first(c, r, *, beta, **o):
        return c - r

    def second(c, r, *, beta, **o):
        return r - c

    register_loss("i27_twice")(first)
    register_loss("i27_twice")(first)  # the same definition again: no change
    with pytest.raises(ValueError, match="'i27_twice' of the dpo family is already registered"):
        register_loss("i27_twice")(second)
    assert registered_loss("dpo", "i27_twice").fn is first
    register_loss("i27_twice", replace=True)(second)  # asked for
    assert registered_loss("dpo", "i27_twice").fn is second

    # two plugin files with one loss name: the second is refused in one line naming its file
    body = "from prefswift.algorithms import register_loss\n\n@register_loss('i27_plugin')\n" \
           "def mine(c, r, *, beta, **options):\n    return {}\n"
    (tmp_path / "one.py").write_text(body.format("c"))
    (tmp_path / "two.py").write_text(body.format("-c"))
    load_plugins(str(tmp_path / "one.py"))
    with pytest.raises(ArgumentError) as err:
        load_plugins(str(tmp_path / "two.py"))
    assert str(err.value).startswith(f"--custom_register_path {tmp_path / 'two.py'}: loss type 'i27_plugin'")
    assert "\n" not in str(err.value) and "one.py" in str(err.value)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0"])
def test_a_hub_timeout_that_is_no_number_of_seconds_is_one_line_when_a_hub_is_asked(value):
    from prefswift import third_party
    from prefswift.registry.hub_client import hub_timeout

    environ = {"PREFSWIFT_HUB_TIMEOUT": value}
    third_party.apply(environ)  # at import: the clients keep the default 20 s
    assert environ["HF_HUB_ETAG_TIMEOUT"] == "20" and environ["HF_HUB_DOWNLOAD_TIMEOUT"] == "20"
    with pytest.raises(ArgumentError) as err:
        hub_timeout(environ)
    assert str(err.value).startswith(f"PREFSWIFT_HUB_TIMEOUT={value!r}: give the seconds") and "\n" not in str(err.value)
    assert hub_timeout({"PREFSWIFT_HUB_TIMEOUT": "2.5"}) == 2.5


def test_every_command_starts_with_a_nan_hub_timeout():
    env = dict(os.environ, PREFSWIFT_HUB_TIMEOUT="nan", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "prefswift", "list", "models"], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr


def test_a_prompt_only_algorithm_is_refused_when_registered():
    from prefswift.arguments.algorithms import AlgorithmSpec

    with pytest.raises(ValueError, match="data 'prompt-only' is not implemented"):
        AlgorithmSpec("online", "x", "m:C", data="prompt-only", loss_types=("a",), defaults={"beta": 0.1})
