"""The contract suite's corpus, a synthetic encoder, and the exact numpy references.

The corpus is generated deterministically from word lists in six scripts (English, German,
Chinese, Russian, Arabic, emoji). :class:`SyntheticEncoder` turns a text into an
M3Embedding that behaves like BGE-M3's (one sparse token id and one ColBERT row per word,
shared words give shared token ids and similar rows) through the same API as
``encoder.M3Encoder``, without a model: exact, fast, and text queries work.

References compute every score in float64 from the float32 arrays the database stored.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np

from m3vdb.connectors.base import HybridOptions
from m3vdb.schemas.data import Document, Hit, M3Embedding
from m3vdb.schemas.filters import Filter, matches

DIM = 32
VOCAB = 50_000
SPECIAL_IDS = 4  # ids 0..3 play CLS/PAD/EOS/UNK: never emitted as sparse keys

WORDS: dict[str, list[str]] = {
    "en": "river mountain library window garden engine music winter market letter "
    "bridge forest ocean coffee planet teacher doctor silver village thunder "
    "lantern harbor meadow orchard pepper violin rocket castle desert island".split(),
    "de": "fluss berg bücherei fenster garten motor musik winter markt brief "
    "brücke wald ozean kaffee planet lehrer ärztin silber dorf donner "
    "laterne hafen wiese obstgarten pfeffer geige rakete schloss wüste insel".split(),
    "zh": "河流 山脉 图书馆 窗户 花园 引擎 音乐 冬天 市场 信件 "
    "桥梁 森林 海洋 咖啡 星球 老师 医生 白银 村庄 雷声 "
    "灯笼 港口 草地 果园 胡椒 小提琴 火箭 城堡 沙漠 岛屿".split(),
    "ru": "река гора библиотека окно сад двигатель музыка зима рынок письмо "
    "мост лес океан кофе планета учитель врач серебро деревня гром "
    "фонарь гавань луг сад перец скрипка ракета замок пустыня остров".split(),
    "ar": "نهر جبل مكتبة نافذة حديقة محرك موسيقى شتاء سوق رسالة "
    "جسر غابة محيط قهوة كوكب معلم طبيب فضة قرية رعد "
    "فانوس ميناء مرج بستان فلفل كمان صاروخ قلعة صحراء جزيرة".split(),
    "emoji": "🌊 ⛰️ 📚 🪟 🌷 ⚙️ 🎵 ❄️ 🛒 ✉️ 🌉 🌲 🐋 ☕ 🪐 🧑‍🏫 🩺 🥈 🏘️ ⚡ "
    "🏮 ⚓ 🌾 🍎 🌶️ 🎻 🚀 🏰 🏜️ 🏝️".split(),
}
LANGS = tuple(WORDS)
TAGS = ("news", "blog", "wiki", "forum")
TOPICS = ("wiki", "news", "howto", "faq", "review")  # the list-valued ``tags`` key
SHARED = "2024 ok m3 vdb".split()  # tokens every language uses: cross-language overlap


def _seed(*parts: object) -> int:
    return zlib.crc32("\x1f".join(map(str, parts)).encode("utf-8"))


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@cache
def word_vector(word: str) -> np.ndarray:
    return np.random.default_rng(_seed("w", word)).normal(size=DIM)


def token_id(word: str) -> int:
    return SPECIAL_IDS + _seed("t", word) % (VOCAB - SPECIAL_IDS)


class SyntheticEncoder:
    """``M3Encoder``'s API without a model: dense = mean of word vectors plus noise; sparse =
    one token id per word with a positive weight; ColBERT = one row per word plus an EOS row.
    Deterministic in the text."""

    dense_dim = DIM
    colbert_dim = DIM

    def __init__(self) -> None:
        self.calls = 0

    def encode(
        self,
        texts: Sequence[str],
        *,
        dense: bool = True,
        sparse: bool = True,
        colbert: bool = True,
        max_length: int | None = None,
        show_progress: bool = False,
    ) -> list[M3Embedding]:
        self.calls += 1
        return [self._one(t, dense, sparse, colbert) for t in texts]

    def _one(self, text: str, dense: bool, sparse: bool, colbert: bool) -> M3Embedding:
        words = text.split()
        rng = np.random.default_rng(_seed("doc", text))
        vectors = np.array([word_vector(w) for w in words]).reshape(-1, DIM)
        d = _unit(vectors.sum(axis=0) / max(len(words), 1) + 0.6 * rng.normal(size=DIM))
        weights: dict[int, float] = {}
        for w in words:
            t = token_id(w)
            # max over repeats, as BGE-M3 keeps the max weight of a repeated token
            weights[t] = max(weights.get(t, 0.0), float(0.05 + 0.3 * rng.random()))
        rows = vectors + 0.5 * rng.normal(size=vectors.shape)
        eos = rng.normal(size=(1, DIM))
        c = _unit(np.concatenate([rows, eos]))
        return M3Embedding(
            dense=d if dense else None,
            sparse=weights if sparse else None,
            colbert=c if colbert else None,
        )


@dataclass(frozen=True)
class Corpus:
    docs: tuple[Document, ...]
    embeddings: Mapping[str, M3Embedding]
    queries: tuple[M3Embedding, ...]
    query_texts: tuple[str, ...]

    def pairs(self) -> list[tuple[Document, M3Embedding]]:
        return [(d, self.embeddings[d.id]) for d in self.docs]

    def metadata(self) -> dict[str, Mapping[str, object]]:
        return {d.id: d.metadata for d in self.docs}


@lru_cache(maxsize=4)
def build_corpus(n_docs: int = 300, seed: int = 20240901) -> Corpus:
    """``n_docs`` multilingual documents with metadata, their embeddings, and queries."""
    rng = np.random.default_rng(seed)
    encoder = SyntheticEncoder()
    docs: list[Document] = []
    texts: set[str] = set()
    i = 0
    while len(docs) < n_docs:
        lang = LANGS[i % len(LANGS)]
        words = list(rng.choice(WORDS[lang], size=int(rng.integers(3, 12))))
        if rng.random() < 0.3:
            words.append(str(rng.choice(SHARED)))
        if rng.random() < 0.15:  # a borrowed word from another language
            other = LANGS[int(rng.integers(len(LANGS)))]
            words.append(str(rng.choice(WORDS[other])))
        text = " ".join(words)
        i += 1
        if text in texts:
            continue
        texts.add(text)
        n = len(docs)
        metadata = {
            "lang": lang,
            "year": int(1995 + rng.integers(0, 30)),
            "rating": float(rng.integers(0, 11)) / 2,
            "tag": TAGS[int(rng.integers(len(TAGS)))],
            "public": bool(rng.random() < 0.6),
        }
        metadata.update(_list_metadata(n))
        docs.append(Document(id=f"doc-{n:04d}-{lang}", text=text, metadata=metadata))
    embs = encoder.encode([d.text for d in docs])
    query_texts = []
    for q in range(6):
        lang = LANGS[q % len(LANGS)]
        words = list(rng.choice(WORDS[lang], size=3)) + [str(rng.choice(WORDS[LANGS[q - 1]]))]
        query_texts.append(" ".join(words))
    queries = encoder.encode(query_texts)
    return Corpus(
        docs=tuple(docs),
        embeddings={d.id: e for d, e in zip(docs, embs, strict=True)},
        queries=tuple(queries),
        query_texts=tuple(query_texts),
    )


def _list_metadata(n: int) -> dict[str, object]:
    """List-valued keys of document ``n``, from their own generator so that the corpus's
    other values stay what they were: ``tags`` (strs) and ``cited`` (ints) hold a list, an
    empty list, a scalar, or are absent, so that filters meet every shape on one key."""
    rng = np.random.default_rng(_seed("lists", n))
    out: dict[str, object] = {}
    for key, pool in (("tags", TOPICS), ("cited", tuple(range(1990, 2025)))):
        shape = rng.random()
        if shape < 0.1:
            continue  # absent
        if shape < 0.2:
            out[key] = []
        elif shape < 0.35:
            out[key] = pool[int(rng.integers(len(pool)))]
        else:
            picked = rng.choice(len(pool), size=int(rng.integers(1, 4)), replace=False)
            out[key] = [pool[int(i)] for i in picked]
    return out


# -- exact references ----------------------------------------------------------------------


def eligible(corpus_meta: Mapping[str, Mapping[str, object]], flt: Filter | None) -> list[str]:
    return [i for i, meta in corpus_meta.items() if matches(flt, meta)]


def dense_scores(q: M3Embedding, embs: Mapping[str, M3Embedding], ids: Iterable[str]) -> dict:
    qd = np.asarray(q.dense, dtype=np.float64)
    return {i: float(np.asarray(embs[i].dense, dtype=np.float64) @ qd) for i in ids}


def _float32(weight: float) -> float:
    return float(np.float32(weight))


# What the backend under test keeps of a stored sparse weight: float32, unless its factory
# defines ``stored_sparse_weight`` (Elasticsearch keeps 9 significant bits). Set per backend
# by conftest's ``backend_target``.
_stored_sparse_weight: Callable[[float], float] = _float32


def use_stored_sparse_weight(fn: Callable[[float], float] | None) -> None:
    """Makes :func:`sparse_scores` model the backend's storage (None: float32)."""
    global _stored_sparse_weight
    _stored_sparse_weight = fn or _float32


def sparse_scores(q: M3Embedding, embs: Mapping[str, M3Embedding], ids: Iterable[str]) -> dict:
    """Only documents sharing a token with the query (databases return no others)."""
    assert q.sparse is not None
    out = {}
    for i in ids:
        doc = embs[i].sparse or {}
        shared = set(doc) & set(q.sparse)
        if shared:
            # query weights travel as float32; stored ones as the backend keeps them
            out[i] = float(
                sum(
                    _stored_sparse_weight(doc[t]) * np.float64(np.float32(q.sparse[t]))
                    for t in shared
                )
            )
    return out


def maxsim_scores(
    q: M3Embedding,
    embs: Mapping[str, M3Embedding],
    ids: Iterable[str],
    *,
    float16: bool = False,
) -> dict:
    """ColBERT MaxSim as databases compute it: SUM over query rows of the best dot."""
    qc = np.asarray(q.colbert, dtype=np.float64)
    out = {}
    for i in ids:
        rows = np.asarray(embs[i].colbert, dtype=np.float32)
        if float16:
            rows = rows.astype(np.float16)
        out[i] = float((qc @ rows.astype(np.float64).T).max(axis=1).sum())
    return out


def top(scores: Mapping[str, float], n: int) -> list[str]:
    return sorted(scores, key=lambda i: (-scores[i], i))[:n]


def rrf(lists: Sequence[Sequence[str]], k: int) -> dict[str, float]:
    """Reciprocal rank fusion as ``connectors.base`` defines it: sum of 1 / (k + rank), rank
    1-based."""
    out: dict[str, float] = {}
    for ranked in lists:
        for rank, i in enumerate(ranked, start=1):
            out[i] = out.get(i, 0.0) + 1.0 / (k + rank)
    return out


@dataclass(frozen=True)
class HybridReference:
    """What a correct hybrid search returns.

    ``scores`` are the reference scores of every document that may appear (fused scores, or
    MaxSim when reranking); ``required`` are those that MUST be considered (all of them,
    unless the cut of the fused list falls inside a tie, whose members are optional);
    ``expected_len`` is the number of hits.
    """

    scores: dict[str, float]
    required: frozenset[str]
    expected_len: int


def hybrid_reference(
    q: M3Embedding,
    embs: Mapping[str, M3Embedding],
    ids: Sequence[str],
    k: int,
    options: HybridOptions,
    fuse_weighted,
    *,
    rerank_available: bool,
    float16: bool = False,
    tie_tol: float = 1e-6,
) -> HybridReference:
    """Dense and sparse top-``candidates`` (each filtered: ``ids`` are the filter's
    matches), fused (RRF or the backend's weighted formula), optionally MaxSim-reranked."""
    c = options.candidate_count(k)
    dense = dense_scores(q, embs, ids)
    sparse = sparse_scores(q, embs, ids) if q.sparse else {}
    cand_d = top(dense, c)
    cand_s = top(sparse, c)
    if options.fusion == "rrf":
        fused = rrf([cand_d, cand_s], options.rrf_k)
    else:
        fused = fuse_weighted(
            {i: dense[i] for i in cand_d}, {i: sparse[i] for i in cand_s}, options.weights
        )
    if not (options.rerank and rerank_available):
        return HybridReference(fused, frozenset(fused), min(k, len(fused)))
    n_fused = min(c, len(fused))
    ranked = top(fused, len(fused))
    if n_fused == len(fused):
        required, allowed = set(ranked), set(ranked)
    else:
        cut = fused[ranked[n_fused - 1]]
        required = {i for i in ranked if fused[i] > cut + tie_tol}
        allowed = {i for i in ranked if fused[i] >= cut - tie_tol}
    scores = maxsim_scores(q, embs, allowed, float16=float16)
    return HybridReference(scores, frozenset(required), min(k, n_fused))


def assert_ranking(
    hits: Sequence[Hit],
    scores: Mapping[str, float],
    k: int,
    *,
    tol: float,
    required: Iterable[str] | None = None,
    expected_len: int | None = None,
    what: str = "",
) -> None:
    """Checks hits against reference scores, robust to ties and float near-ties.

    Every hit is a reference document with its reference score (within ``tol``), hits are in
    descending reference order (within ``tol``), the count is right, and no required
    document that scores better than the last hit by more than ``tol`` is missing.
    """
    got = [h.id for h in hits]
    label = f"{what}: " if what else ""
    assert len(got) == len(set(got)), f"{label}duplicate ids {got}"
    want_len = min(k, len(scores)) if expected_len is None else expected_len
    assert len(got) == want_len, f"{label}{len(got)} hits, expected {want_len}: {got}"
    for h in hits:
        assert h.id in scores, f"{label}{h.id} is not a valid result (filter or candidate set)"
        assert abs(h.score - scores[h.id]) <= tol, (
            f"{label}{h.id} scored {h.score}, reference {scores[h.id]}"
        )
    ref = [scores[i] for i in got]
    for a, b in zip(ref, ref[1:]):
        assert a >= b - tol, f"{label}hits out of order: reference scores {ref}"
    if got:
        floor = min(ref)
        pool = scores if required is None else required
        missed = [i for i in pool if i not in got and scores[i] > floor + tol]
        assert not missed, (
            f"{label}missing better documents {missed[:5]} "
            f"(scores {[scores[i] for i in missed[:5]]} > last hit {floor})"
        )
