"""The one place that calls the hub client libraries: repository snapshots from ModelScope or Hugging Face.

Models (prefswift.models.loader) and datasets (prefswift.data.hub) both download through `snapshot`, which calls
`huggingface_hub.snapshot_download`, `modelscope.snapshot_download` or `modelscope.dataset_snapshot_download`
(looked up at call time, so the test suite's no-network guard replaces them). The clients resume partial files
themselves and keep their own caches (HF_HOME / MODELSCOPE_CACHE).

`failure_kind` sorts a client exception into auth | missing | network | other, so that every caller can turn it
into one clear line.
"""
import importlib
from typing import Callable, List, Optional, Sequence

from ..third_party import DEFAULT_HUB_TIMEOUT

DEFAULT_REVISION = {"modelscope": "master", "hf": "main"}

LOGIN_HINT = {
    "hf": "log in with `huggingface-cli login` (or `hf auth login`), set HF_TOKEN, or pass --hub_token TOKEN; "
          "gated repos also need their terms accepted on huggingface.co",
    "modelscope": "log in with `modelscope login --token TOKEN`, set MODELSCOPE_API_TOKEN, or pass "
                  "--hub_token TOKEN; gated repos also need access granted on modelscope.cn",
}


def revision_for(hub: str, revision: Optional[str]) -> str:
    """The revision to ask `hub` for: the hub's default branch for None and for the other hub's default name."""
    if revision in (None, "", "master", "main"):
        return DEFAULT_REVISION[hub]
    return revision


_UNREACHABLE = set()  # hubs that failed with a network error in this process: not asked again (retries cost time)


class HubOffline(ConnectionError):
    """The hub already failed to answer in this process, or the environment says offline."""


OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "MODELSCOPE_OFFLINE")


def offline() -> bool:
    """HF_HUB_OFFLINE=1 (or TRANSFORMERS_OFFLINE / MODELSCOPE_OFFLINE): no request to either hub, only caches."""
    import os

    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in OFFLINE_VARS)


def mark_unreachable(hub: str) -> None:
    _UNREACHABLE.add(hub)


# ---------------------------------------------------------------- a hub that never answers
# A firewall that drops packets or a hub that hangs accepts the connection and never answers: the clients' own retries
# and timeouts then add up to many minutes. Before the first request of a process to a hub, one small request with a
# PREFSWIFT_HUB_TIMEOUT-second limit (default 20) asks whether it answers at all; one that does not counts as
# unreachable (callers fall back to the cache with a warning, or fail with one line). The clients' documented timeout
# settings get the same limit for the requests after it (prefswift.third_party, at start-up).
_ANSWERED = set()
_CACHE_FIRST = [False]


def hub_timeout(environ=None) -> float:
    import os

    raw = (environ if environ is not None else os.environ).get("PREFSWIFT_HUB_TIMEOUT", "")
    try:
        value = float(raw) if raw.strip() else DEFAULT_HUB_TIMEOUT
    except ValueError:
        value = -1.0
    if not (value > 0 and value != float("inf")):  # nan, inf, 0 and negative seconds are no limit to wait for
        from ..errors import ArgumentError

        raise ArgumentError(f"PREFSWIFT_HUB_TIMEOUT={raw!r}: give the seconds to wait for a hub's answer (a finite "
                            "number above 0), e.g. 20")
    return value


def endpoint(hub: str) -> str:
    import os

    if hub == "hf":
        return os.environ.get("HF_ENDPOINT", "").rstrip("/") or "https://huggingface.co"
    return os.environ.get("MODELSCOPE_ENDPOINT", "").rstrip("/") or "https://www.modelscope.cn"


def check_answers(hub: str) -> None:
    """Raise HubOffline when `hub` gives no answer (any HTTP status counts as one) within the hub timeout."""
    if hub in _ANSWERED:
        return
    import urllib.error
    import urllib.request

    seconds = hub_timeout()
    try:
        urllib.request.urlopen(urllib.request.Request(endpoint(hub) + "/", method="HEAD"), timeout=seconds).close()
    except urllib.error.HTTPError:
        pass  # an answer
    except Exception as e:  # noqa: BLE001 - timeout, refused, unresolvable: unreachable
        mark_unreachable(hub)
        raise HubOffline(f"{endpoint(hub)} did not answer within {seconds:g} s ({first_line(e, 80)}; "
                         f"PREFSWIFT_HUB_TIMEOUT sets the limit)") from e
    _ANSWERED.add(hub)


def use_cache_first(on: bool = True) -> None:
    """--check_model_is_latest false: what is cached is used without asking the hub (models and datasets)."""
    _CACHE_FIRST[0] = on


def cache_first() -> bool:
    return _CACHE_FIRST[0]


def snapshot(hub: str, repo_id: str, *, repo_type: str = "model", revision: Optional[str] = None,
             allow_patterns: Optional[Sequence[str]] = None, ignore_patterns: Optional[Sequence[str]] = None,
             token: Optional[str] = None, local_only: bool = False) -> str:
    """Download (or, with local_only, find in the client's cache) a snapshot of `repo_id`; its local directory."""
    if offline() and not local_only:
        try:
            return snapshot(hub, repo_id, repo_type=repo_type, revision=revision, allow_patterns=allow_patterns,
                            ignore_patterns=ignore_patterns, token=token, local_only=True)
        except Exception as e:  # noqa: BLE001 - not cached: say offline, not a hub error
            raise HubOffline(f"offline (HF_HUB_OFFLINE=1) and {repo_id} is not in the {hub} cache") from e
    if hub in _UNREACHABLE and not local_only:
        raise HubOffline(f"{hub} did not answer earlier in this run")
    if not local_only:
        check_answers(hub)
    rev = revision_for(hub, revision)
    kw = {}
    if allow_patterns:
        kw["allow_patterns"] = list(allow_patterns)
    if ignore_patterns:
        kw["ignore_patterns"] = list(ignore_patterns)
    if token:
        kw["token"] = token
    if local_only:
        kw["local_files_only"] = True
    if hub == "hf":
        hf = importlib.import_module("huggingface_hub")
        if repo_type != "model":
            kw["repo_type"] = repo_type
        return str(hf.snapshot_download(repo_id, revision=rev, **kw))
    ms = importlib.import_module("modelscope")
    if repo_type == "dataset":
        if local_only:  # modelscope's own wrapper lacks local_files_only; the modelscope_hub function it wraps has it
            compat = importlib.import_module("modelscope_hub.compat.snapshot_download")
            return str(compat.dataset_snapshot_download(repo_id, revision=rev, **kw))
        return str(ms.dataset_snapshot_download(repo_id, revision=rev, **kw))
    return str(ms.snapshot_download(repo_id, revision=rev, **kw))


def _chain(exc: BaseException) -> List[BaseException]:
    out, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


def _status(exc: BaseException) -> Optional[int]:
    response = getattr(exc, "response", None)
    for value in (getattr(response, "status_code", None), getattr(exc, "status_code", None)):
        if isinstance(value, int):
            return value
    return None


NETWORK_NAMES = ("HubOffline", "ConnectionError", "ConnectError", "ConnectTimeout", "Timeout", "TimeoutException",
                 "ReadTimeout", "NetworkError", "OfflineModeIsEnabled", "ProxyError", "NameResolutionError",
                 "MaxRetryError", "RemoteDisconnected", "gaierror", "ConnectionRefusedError")


def failure_kind(exc: BaseException) -> str:
    """'auth' (401/403, gated), 'missing' (404, no such repo), 'network' (unreachable) or 'other'."""
    chain = _chain(exc)
    for e in chain:
        name = type(e).__name__
        if "Gated" in name or name in ("AuthenticationError", "PermissionDeniedError"):
            return "auth"
        if name in ("RepositoryNotFoundError", "NotExistError", "RevisionNotFoundError"):
            # HF answers 401 for private/gated repos without a token: that is a login problem, not a typo
            return "auth" if _status(e) == 401 else "missing"
    for e in chain:
        status = _status(e)
        if status in (401, 403):
            return "auth"
        if status == 404:
            return "missing"
    for e in chain:
        if type(e).__name__ in NETWORK_NAMES or isinstance(e, (ConnectionError, TimeoutError)):
            return "network"
        text = str(e)
        if any(s in text for s in ("Connection refused", "Failed to resolve", "Max retries exceeded",
                                   "Network is unreachable", "Name or service not known", "connection error",
                                   "check your internet connection")):
            return "network"
    return "other"


def first_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip()
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line[:limit] if line else type(exc).__name__


def refusal_line(exc: BaseException, hub: str, what: str, missing_hint: Callable[[], str], fix_missing: str
                 ) -> Optional[str]:
    """The one line for a hub's refusal, or None when `exc` is no refusal: 401/403 (gated or private: how to log
    in) and 404 (`missing_hint()`, e.g. the closest registered id, then `fix_missing`). `what` names the repo, e.g.
    "model 'org/name'"."""
    from .hubs import HUB_NAMES

    kind = failure_kind(exc)
    if kind == "auth":
        return (f"{HUB_NAMES[hub]} refused access to {what} (gated or private: {first_line(exc, 120)}) — "
                f"{LOGIN_HINT[hub]}")
    if kind == "missing":
        return f"{what} does not exist on {HUB_NAMES[hub]} (404){missing_hint()} — {fix_missing}"
    return None
