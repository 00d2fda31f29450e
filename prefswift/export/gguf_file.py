"""Write one GGUF file from a model's state dict with the `gguf` package (pure Python: no llama.cpp build).

Out types, as llama.cpp's own converter applies them: 1-D tensors (norms, biases) stay f32; 2-D weights are stored
as f16 / bf16 / f32, or block-quantized by `gguf.quants` (q8_0, q4_0, q5_0: 32 values per block with one scale).
A weight whose rows are not a whole number of blocks is written as f16 instead (llama.cpp does the same).
"""
from pathlib import Path
from typing import Callable, Dict, Optional

import numpy as np



def _types():
    import gguf

    Q = gguf.GGMLQuantizationType
    F = gguf.LlamaFileType
    return {"f32": (Q.F32, F.ALL_F32), "f16": (Q.F16, F.MOSTLY_F16), "bf16": (Q.BF16, F.MOSTLY_BF16),
            "q8_0": (Q.Q8_0, F.MOSTLY_Q8_0), "q4_0": (Q.Q4_0, F.MOSTLY_Q4_0), "q5_0": (Q.Q5_0, F.MOSTLY_Q5_0)}


def encode_tensor(data: np.ndarray, outtype: str):
    """(array to write, its GGML type) for one float32 tensor."""
    import gguf

    Q = gguf.GGMLQuantizationType
    qtype = _types()[outtype][0]
    if data.ndim <= 1 or qtype == Q.F32:
        return data.astype(np.float32), Q.F32
    if qtype == Q.F16:
        return data.astype(np.float16), Q.F16
    try:
        return gguf.quants.quantize(data, qtype), qtype
    except gguf.QuantError:  # rows not a whole number of blocks
        return data.astype(np.float16), Q.F16


def file_type(outtype: str) -> int:
    return int(_types()[outtype][1])


class GGUFOut:
    """One GGUF being written: metadata first (`writer`), then tensors (`add`), then `finish` writes the file."""

    def __init__(self, path: Path, arch: str):
        import gguf

        self.path = Path(path)
        self.writer = gguf.GGUFWriter(str(self.path), arch)
        self.types: Dict[str, int] = {}

    def add(self, name: str, data: np.ndarray, outtype: str) -> None:
        array, qtype = encode_tensor(data, outtype)
        raw = None if qtype.name in ("F32", "F16") else qtype
        self.writer.add_tensor(name, array, raw_dtype=raw)
        self.types[name] = qtype.name

    def finish(self) -> None:
        w = self.writer
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()


def map_state_dict(state: Dict[str, "np.ndarray"], arch: str, n_layers: int,
                   transform: Optional[Callable] = None, skip: Callable[[str], bool] = lambda n: False):
    """[(gguf name, hf name, float32 array)] in state order; (hf names with no GGUF name) as the second value."""
    import gguf

    arch_enum = next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == arch)
    names = gguf.get_tensor_name_map(arch_enum, n_layers)
    mapped, unmapped = [], []
    for hf_name, tensor in state.items():
        if skip(hf_name):
            continue
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            unmapped.append(hf_name)
            continue
        data = tensor if transform is None else transform(hf_name, tensor)
        mapped.append((gguf_name, hf_name, data))
    return mapped, unmapped


__all__ = ["GGUFOut", "encode_tensor", "file_type", "map_state_dict"]
