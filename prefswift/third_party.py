"""Third-party libraries set to what prefswift promises: no network call the user did not ask for, no console line
the user cannot act on. Applied once, when the `prefswift` package is imported, before torch, peft or bitsandbytes
load; each switch is one its library documents, and each leaves a value the user set in the environment alone.
"""
import logging
import math
import os
import sys

# bitsandbytes >= 0.49 asks the hub for these kernel repositories at import (peft imports bitsandbytes), on CPUs with
# AVX512-BF16 or on Apple MPS, whenever the `kernels` package is installed (transformers 5.25 requires it): a request to
# huggingface.co from every command, and a warning line on every command offline. kernels' documented LOCAL_KERNELS
# maps a repository to a local folder; a folder with no build makes the lookup fail here, with no request, and
# bitsandbytes keeps its own kernels, as it does when `kernels` is not installed. PREFSWIFT_HUB_KERNELS=1 allows them.
HUB_KERNELS = ("kernels-community/quantization-bitsandbytes", "kernels-community/bitsandbytes-mps")
NO_KERNEL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "no-hub-kernel")

# Library telemetry: huggingface_hub and datasets (HF_HUB_DISABLE_TELEMETRY), and the cross-tool DO_NOT_TRACK.
OFF = {"HF_HUB_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1"}

# The hub clients' own documented per-request timeouts, set to PREFSWIFT_HUB_TIMEOUT (default 20 s) unless the user
# set them: a hub that stops answering mid-way ends in a bounded time (prefswift.registry.hub_client checks first that
# a hub answers at all).
DEFAULT_HUB_TIMEOUT = 20.0
CLIENT_TIMEOUTS = ("HF_HUB_ETAG_TIMEOUT", "HF_HUB_DOWNLOAD_TIMEOUT", "MODELSCOPE_API_TIMEOUT",
                   "MODELSCOPE_API_CONNECT_TIMEOUT", "MODELSCOPE_DOWNLOAD_TIMEOUT")

# Loggers whose warnings are about the switches above, not about the user's run.
QUIET_LOGGERS = ("bitsandbytes.backends.cpu.ops", "bitsandbytes.backends.mps.ops", "kernels")


def apply(environ=os.environ) -> None:
    if environ.get("PREFSWIFT_HUB_KERNELS") != "1" and "LOCAL_KERNELS" not in environ:
        environ["LOCAL_KERNELS"] = ":".join(f"{repo}={NO_KERNEL_DIR}" for repo in HUB_KERNELS)
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
    for key, value in OFF.items():
        environ.setdefault(key, value)
    try:
        seconds = float(environ.get("PREFSWIFT_HUB_TIMEOUT", "") or DEFAULT_HUB_TIMEOUT)
    except ValueError:
        seconds = DEFAULT_HUB_TIMEOUT  # reported as an error when a hub is first asked
    if not math.isfinite(seconds) or seconds <= 0:  # nan, inf, 0, negative: the same (registry.hub_client)
        seconds = DEFAULT_HUB_TIMEOUT
    for key in CLIENT_TIMEOUTS:
        environ.setdefault(key, str(max(1, int(seconds))))
    # transformers' "Loading weights" / "Writing model shards" and the hub clients' download bars redraw one line with
    # carriage returns: in a log file or a pipe they are noise (huggingface_hub's documented switch, which transformers
    # reads too). A terminal keeps them.
    if not (_is_tty(sys.stdout) and _is_tty(sys.stderr)):
        environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def _is_tty(stream) -> bool:
    try:
        return stream is not None and stream.isatty()
    except ValueError:  # a closed stream
        return False
