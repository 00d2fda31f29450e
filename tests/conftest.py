"""Shared test set-up: offline, a per-session PREFSWIFT_HOME (tiny models are built there once)."""
import importlib.util
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("PREFSWIFT_HOME", os.path.join(os.path.dirname(os.path.dirname(__file__)), ".cache",
                                                     "prefswift"))

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_llama3_dir():
    from prefswift.models.tiny import ensure_tiny_model

    return ensure_tiny_model("tiny-llama3")


@pytest.fixture(scope="session")
def tiny_qwen_dir():
    from prefswift.models.tiny import ensure_tiny_model

    return ensure_tiny_model("tiny-qwen")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """No test reaches a hub: dataset fetches and every snapshot entry point of the hub clients fail loudly (tests
    that simulate a hub replace these themselves; tests against tests/mock_hub.py run prefswift in subprocesses,
    which this fixture does not reach)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.delenv("USE_HF", raising=False)

    def refuse(*a, **k):
        raise AssertionError("a test tried to reach the hub")

    from prefswift.data import loader

    monkeypatch.setattr(loader, "fetch_from_hub", refuse)
    for client, names in (("huggingface_hub", ("snapshot_download",)),
                          ("modelscope", ("snapshot_download", "dataset_snapshot_download"))):
        if importlib.util.find_spec(client) is None:  # e.g. a GPU box with only the core training packages
            continue
        for name in names:
            monkeypatch.setattr(f"{client}.{name}", refuse)


# ---------------------------------------------------------------- long end-to-end runs
# `@pytest.mark.slow` marks a long end-to-end run whose kind another test in the default run already covers (a second
# DeepSpeed stage, a second hub...). `bash scripts/test.sh` (CI) leaves them out; `bash scripts/test.sh --all` (or
# PREFSWIFT_SLOW_TESTS=1) runs them too.
def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a long end-to-end run another default test covers in kind "
                                       "(run with PREFSWIFT_SLOW_TESTS=1 or scripts/test.sh --all)")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("PREFSWIFT_SLOW_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="long end-to-end run covered in kind by a default test (PREFSWIFT_SLOW_TESTS=1)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
