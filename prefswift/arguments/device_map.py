"""--device_map values, checked when parsed: what transformers' `from_pretrained(device_map=...)` accepts as prefswift
passes it on (`prefswift.models.loader.parse_device_map`)."""
import json
import re

from ..errors import ArgumentError

STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")
# a torch device string (transformers turns any other string into torch.device(...)); disk only inside a JSON map
DEVICE = re.compile(r"^(cpu|cuda|xpu|mps|hpu|meta)(:\d+)?$")
EXAMPLES = "auto, balanced, balanced_low_0, sequential, cpu, cuda, cuda:N, mps, xpu, or a JSON object such as " \
           "'{\"\": \"cuda:0\"}'"


def check_device_map(flag: str, value) -> None:
    """ArgumentError unless `value` is a placement strategy, a device, or a JSON object {module: device}."""
    if value is None or not str(value).strip():
        return
    text = str(value).strip()
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as e:
            raise ArgumentError(f"--{flag} {text}: not valid JSON ({e.msg} at column {e.colno}); "
                                f"expected {EXAMPLES}") from None
        if not isinstance(parsed, dict):
            raise ArgumentError(f"--{flag} {text}: expected a JSON object mapping module names to devices")
        for module, device in parsed.items():
            ok = (isinstance(device, int) and not isinstance(device, bool) and device >= 0) or (
                isinstance(device, str) and (device == "disk" or DEVICE.match(device)))
            if not ok:
                raise ArgumentError(f"--{flag}: module {module!r} is mapped to {device!r}, which is not a device "
                                    "(cpu, cuda:N, a GPU index, mps, xpu, disk)")
        return
    if text in STRATEGIES or DEVICE.match(text):
        return
    hint = f" (a GPU index is written cuda:{text})" if text.isdigit() else ""
    raise ArgumentError(f"--{flag} {text!r} is not a placement{hint}: expected {EXAMPLES}")
