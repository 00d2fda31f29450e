"""The tokenizer as GGUF metadata (`tokenizer.ggml.*`): vocabulary, merges, token types, special token ids.

A GGUF carries no tokenizer.json: llama.cpp (and transformers' GGUF loader) rebuild the tokenizer from these keys.
Two kinds are written, read from the Hugging Face tokenizer's own tokenizer.json:
  * byte-level BPE (Llama 3, Qwen2/2.5/3): `tokenizer.ggml.model = gpt2`, the merges, and `tokenizer.ggml.pre`
    naming the pre-tokenizer split llama.cpp must use (recognised from the split regex itself);
  * SentencePiece-style BPE with byte fallback (Llama 2, Mistral, Yi): `tokenizer.ggml.model = llama`, the merges
    and a score per token (its rank: earlier ids merge first).
Anything else is refused in one line before a file is written.
"""
import json
from dataclasses import dataclass
from typing import List, Optional

from ..errors import ArgumentError

# gguf.TokenType values
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

# The split regexes of the byte-level tokenizers llama.cpp knows, by the `tokenizer.ggml.pre` name it gives them.
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
PRE_TOKENIZERS = {LLAMA3_SPLIT: "llama-bpe", QWEN2_SPLIT: "qwen2"}


@dataclass
class GGUFVocab:
    model: str                       # "gpt2" | "llama"
    pre: Optional[str]
    tokens: List[str]
    types: List[int]
    merges: List[str]
    scores: Optional[List[float]]
    add_bos: bool                    # set by the writer from the training template (`starts_with_bos`)
    add_space_prefix: Optional[bool] = None


def _split_regexes(pre) -> List[str]:
    if not pre:
        return []
    if pre.get("type") == "Sequence":
        return [r for p in pre.get("pretokenizers", []) for r in _split_regexes(p)]
    if pre.get("type") == "Split":
        pattern = pre.get("pattern") or {}
        return [pattern.get("Regex") or pattern.get("String") or ""]
    return []


def _has(node, kind: str) -> bool:
    if not node:
        return False
    if node.get("type") == kind:
        return True
    return any(_has(p, kind) for p in node.get("pretokenizers", []) + node.get("normalizers", []))


def _merge_strings(merges) -> List[str]:
    return [m if isinstance(m, str) else " ".join(m) for m in merges]


def gguf_vocab(tokenizer, vocab_size: int, where: str = "the tokenizer") -> GGUFVocab:
    """The GGUF vocabulary of a Hugging Face fast tokenizer, padded to the model's `vocab_size` rows."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ArgumentError(f"{where}: a slow (Python) tokenizer; GGUF export needs a tokenizer.json")
    data = json.loads(backend.to_str())
    model = data.get("model") or {}
    if model.get("type") != "BPE":
        raise ArgumentError(f"{where}: a {model.get('type')} tokenizer, which prefswift cannot write as GGUF "
                            "metadata (byte-level or SentencePiece BPE only); use llama.cpp's convert_hf_to_gguf.py")
    vocab = tokenizer.get_vocab()
    if len(vocab) > vocab_size:
        raise ArgumentError(f"{where}: {len(vocab)} tokens but the model has {vocab_size} embedding rows")
    by_id = {i: t for t, i in vocab.items()}
    added = {a["id"]: a for a in data.get("added_tokens", [])}
    tokens, types = [], []
    byte_level = _has(data.get("pre_tokenizer"), "ByteLevel")
    for i in range(vocab_size):
        tok = by_id.get(i)
        if tok is None:
            tokens.append(f"[PAD{i}]")
            types.append(UNUSED)
        elif i in added:
            tokens.append(tok)
            types.append(CONTROL if added[i].get("special") else USER_DEFINED)
        elif not byte_level and tok.startswith("<0x") and tok.endswith(">") and len(tok) == 6:
            tokens.append(tok)
            types.append(BYTE)
        elif tok == tokenizer.unk_token:
            tokens.append(tok)
            types.append(UNKNOWN)
        else:
            tokens.append(tok)
            types.append(NORMAL)
    merges = _merge_strings(model.get("merges") or [])
    if byte_level:
        regexes = _split_regexes(data.get("pre_tokenizer"))
        pre = next((PRE_TOKENIZERS[r] for r in regexes if r in PRE_TOKENIZERS), None)
        if pre is None:
            raise ArgumentError(f"{where}: a byte-level BPE tokenizer whose pre-tokenizer split llama.cpp does not "
                                "know by name (prefswift recognises the Llama 3 and Qwen2 splits); use llama.cpp's "
                                "convert_hf_to_gguf.py, which lists more")
        return GGUFVocab("gpt2", pre, tokens, types, merges, None, False)
    if not model.get("byte_fallback"):
        raise ArgumentError(f"{where}: a BPE tokenizer that is neither byte-level nor SentencePiece (byte fallback); "
                            "prefswift cannot describe it in GGUF metadata")
    scores = [-float(i) for i in range(vocab_size)]
    space_prefix = _has(data.get("normalizer"), "Prepend") or _has(data.get("pre_tokenizer"), "Metaspace")
    return GGUFVocab("llama", "default", tokens, types, merges, scores, False, space_prefix)


def write_vocab(writer, tokenizer, voc: GGUFVocab, eos_ids) -> None:
    writer.add_tokenizer_model(voc.model)
    if voc.pre:
        writer.add_tokenizer_pre(voc.pre)
    writer.add_token_list(voc.tokens)
    writer.add_token_types(voc.types)
    if voc.scores is not None:
        writer.add_token_scores(voc.scores)
    if voc.merges:
        writer.add_token_merges(voc.merges)
    if tokenizer.bos_token_id is not None:
        writer.add_bos_token_id(int(tokenizer.bos_token_id))
    eos = eos_ids[0] if eos_ids else tokenizer.eos_token_id
    if eos is not None:
        writer.add_eos_token_id(int(eos))
        writer.add_eot_token_id(int(eos))
    if tokenizer.unk_token_id is not None:
        writer.add_unk_token_id(int(tokenizer.unk_token_id))
    if tokenizer.pad_token_id is not None:
        writer.add_pad_token_id(int(tokenizer.pad_token_id))
    writer.add_add_bos_token(voc.add_bos)
    writer.add_add_eos_token(False)
    if voc.add_space_prefix is not None:
        writer.add_add_space_prefix(voc.add_space_prefix)


__all__ = ["GGUFVocab", "gguf_vocab", "write_vocab"]
