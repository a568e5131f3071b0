"""Every search mode against an exact numpy computation over the same stored vectors.

Troubleshooting: a failure names the query, the mode and the document ids. "missing better
documents" means the database returned worse documents than the reference (an approximate
index, a filter applied only after the candidate stage, a wrong metric); "is not a valid
result" means a document that fails the filter or was not a candidate came back.
"""

from __future__ import annotations

import pytest
from conftest import ContractBackend, corpus_spec
from contract_data import (
    Corpus,
    SyntheticEncoder,
    assert_ranking,
    dense_scores,
    eligible,
    hybrid_reference,
    maxsim_scores,
    rrf,
    sparse_scores,
    top,
)

from m3vdb.connectors import Connector, HybridOptions, M3Embedding
from m3vdb.schemas.filters import Filter, and_, eq, in_, or_, parse_filter, range_

FILTERS: dict[str, Filter | dict | None] = {
    "none": None,
    "eq-keyword": eq("lang", "de"),
    "dict-range-and-eq": {"lang": "en", "year": {"gte": 2005, "lt": 2020}},
    "or-in": or_(eq("tag", "wiki"), in_("lang", ["zh", "ar"])),
    "float-range-bool": and_(range_("rating", gte=2.5), eq("public", True)),
    "in-int": in_("year", [1995, 1996, 1997, 2000, 2001, 2002, 2010, 2011, 2012, 2013]),
    "dict-or": {"$or": [{"lang": "ru"}, {"rating": {"lte": 1.0}}]},
    # ``tags`` holds lists, empty lists, scalars, or is absent: any element matches
    "eq-list": eq("tags", "news"),
    "in-list": in_("tags", ["faq", "howto"]),
    "or-with-list": {"$or": [{"tags": "review"}, {"lang": "zh", "tags": {"in": ["wiki"]}}]},
    # JSON types: True is not 1 and 2005 is not True (only lang "ru" can match)
    "eq-bool-vs-int": or_(eq("public", 1), eq("year", True), eq("lang", "ru")),
}
# A range over a list matches when ONE element is within every bound. Backends that cannot
# express it (``RANGE_OVER_LISTS = False`` in their factory) must match the scalars only.
RANGE_OVER_LIST_FILTERS: dict[str, Filter] = {
    "range-list": range_("cited", gte=2010, lt=2015),
    "range-list-and-eq": and_(range_("cited", gt=2019), eq("tags", "wiki")),
}


def _ids(corpus: Corpus, flt: object) -> list[str]:
    return eligible(corpus.metadata(), parse_filter(flt))  # type: ignore[arg-type]


@pytest.mark.parametrize("flt", list(FILTERS.values()), ids=list(FILTERS))
@pytest.mark.parametrize("mode", ["dense", "sparse", "colbert"])
def test_single_signal_modes_equal_numpy(
    corpus_store: Connector,
    corpus: Corpus,
    backend_target,
    mode: str,
    flt: object,
) -> None:
    """dense = dot, sparse = sum of shared q_w * p_w, colbert = SUM of per-row max dot."""
    tol = backend_target.factory.SCORE_TOLERANCE
    ids = _ids(corpus, flt)
    assert ids, "the filter must match part of the corpus for this test to mean anything"
    reference = {"dense": dense_scores, "sparse": sparse_scores, "colbert": maxsim_scores}[mode]
    for n, q in enumerate(corpus.queries):
        k = 10
        hits = corpus_store.search(q, k, mode=mode, filter=flt)  # type: ignore[arg-type]
        scores = reference(q, corpus.embeddings, ids)
        assert_ranking(hits, scores, k, tol=tol, what=f"query {n} mode {mode}")
        for h in hits:
            assert dict(h.metadata) == dict(corpus.metadata()[h.id])


def _scalar_values_only(corpus: Corpus, key: str) -> dict[str, dict[str, object]]:
    return {
        i: {k: v for k, v in m.items() if not (k == key and isinstance(v, list))}
        for i, m in corpus.metadata().items()
    }


@pytest.mark.parametrize(
    "flt", list(RANGE_OVER_LIST_FILTERS.values()), ids=list(RANGE_OVER_LIST_FILTERS)
)
@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_range_over_list_values(
    corpus_store: Connector, corpus: Corpus, backend_target, mode: str, flt: Filter
) -> None:
    """Qdrant and Elasticsearch match a list with one element in range; Milvus cannot say
    "some element" and documents that its ranges match scalar values only."""
    factory = backend_target.factory
    ids = eligible(corpus.metadata(), flt)
    scalar_ids = eligible(_scalar_values_only(corpus, "cited"), flt)
    assert set(scalar_ids) < set(ids), "test setup: list values must add matches"
    if not getattr(factory, "RANGE_OVER_LISTS", True):
        ids = scalar_ids
    options = HybridOptions(rerank=False)
    for n, q in enumerate(corpus.queries):
        hits = corpus_store.search(q, 10, mode=mode, filter=flt, hybrid=options)
        if mode == "dense":
            assert_ranking(
                hits,
                dense_scores(q, corpus.embeddings, ids),
                10,
                tol=factory.SCORE_TOLERANCE,
                what=f"query {n}",
            )
        else:
            ref = hybrid_reference(
                q,
                corpus.embeddings,
                ids,
                10,
                options,
                factory.fuse_weighted,
                rerank_available=False,
            )
            assert_ranking(
                hits,
                ref.scores,
                10,
                tol=1e-6,
                required=ref.required,
                expected_len=ref.expected_len,
                what=f"query {n}",
            )


def test_hits_carry_text_and_metadata(corpus_store: Connector, corpus: Corpus) -> None:
    by_id = {d.id: d for d in corpus.docs}
    hits = corpus_store.search(corpus.queries[0], 20, mode="dense")
    assert len(hits) == 20
    for h in hits:
        assert h.text == by_id[h.id].text
        assert dict(h.metadata) == dict(by_id[h.id].metadata)


HYBRID_OPTIONS = {
    "rrf-rerank": HybridOptions(),
    "rrf-norerank": HybridOptions(rerank=False),
    "rrf-k5-c20": HybridOptions(rrf_k=5, candidates=20, rerank=False),
    "rrf-c15-rerank": HybridOptions(candidates=15),
    "weighted": HybridOptions(fusion="weighted", weights=(0.3, 0.7), rerank=False),
    "weighted-c20-rerank": HybridOptions(fusion="weighted", weights=(0.8, 0.2), candidates=20),
}


HYBRID_FILTERS = ("none", "eq-keyword", "or-in", "eq-list", "or-with-list")


@pytest.mark.parametrize("flt", [FILTERS[f] for f in HYBRID_FILTERS], ids=HYBRID_FILTERS)
@pytest.mark.parametrize("options", list(HYBRID_OPTIONS.values()), ids=list(HYBRID_OPTIONS))
def test_hybrid_equals_numpy(
    corpus_store: Connector, corpus: Corpus, backend_target, options: HybridOptions, flt: object
) -> None:
    """Dense + sparse candidates (filtered) fused by the documented formula, then optionally
    reranked by MaxSim over the fused candidates."""
    tol = backend_target.factory.SCORE_TOLERANCE
    ids = _ids(corpus, flt)
    for n, q in enumerate(corpus.queries):
        k = 8
        hits = corpus_store.search(q, k, mode="hybrid", filter=flt, hybrid=options)  # type: ignore[arg-type]
        ref = hybrid_reference(
            q,
            corpus.embeddings,
            ids,
            k,
            options,
            backend_target.factory.fuse_weighted,
            rerank_available=True,
        )
        # RRF scores are tiny (~1/60): compare them tighter than raw similarity scores.
        score_tol = tol if (options.rerank or options.fusion == "weighted") else 1e-6
        assert_ranking(
            hits,
            ref.scores,
            k,
            tol=score_tol,
            required=ref.required,
            expected_len=ref.expected_len,
            what=f"query {n} {options}",
        )


def test_hybrid_filter_applies_before_candidates(
    corpus_store: Connector, corpus: Corpus, backend_target
) -> None:
    """The filter must restrict each candidate list, not only the final result: with few
    candidates, post-filtering would return fewer (and other) documents."""
    options = HybridOptions(candidates=10, rerank=False)
    flt = eq("lang", "ar")
    q = corpus.queries[0]  # an English query: few Arabic documents among its top candidates
    k = 8
    all_ids = [d.id for d in corpus.docs]
    ids = _ids(corpus, flt)
    ref = hybrid_reference(
        q,
        corpus.embeddings,
        ids,
        k,
        options,
        backend_target.factory.fuse_weighted,
        rerank_available=False,
    )
    post = hybrid_reference(
        q,
        corpus.embeddings,
        all_ids,
        10,
        options,
        backend_target.factory.fuse_weighted,
        rerank_available=False,
    )
    post_ids = [i for i in top(post.scores, len(post.scores)) if i in set(ids)][:k]
    assert len(post_ids) < k, "test setup: post-filtering must give fewer hits for this query"
    hits = corpus_store.search(q, k, mode="hybrid", filter=flt, hybrid=options)
    assert_ranking(hits, ref.scores, k, tol=1e-6, expected_len=ref.expected_len)
    # and with rerank: MaxSim over filtered candidates only
    options = HybridOptions(candidates=10)
    hits = corpus_store.search(q, k, mode="hybrid", filter=flt, hybrid=options)
    ref = hybrid_reference(
        q,
        corpus.embeddings,
        ids,
        k,
        options,
        backend_target.factory.fuse_weighted,
        rerank_available=True,
    )
    assert_ranking(
        hits,
        ref.scores,
        k,
        tol=backend_target.factory.SCORE_TOLERANCE,
        required=ref.required,
        expected_len=ref.expected_len,
    )
    assert all(h.metadata["lang"] == "ar" for h in hits)


def test_rrf_reference_is_rank_based() -> None:
    """The suite's RRF reference: 1/(k + rank), rank from 1 (guards the reference itself)."""
    fused = rrf([["a", "b"], ["b", "c"]], 60)
    assert fused == pytest.approx({"a": 1 / 61, "b": 1 / 62 + 1 / 61, "c": 1 / 62})


def test_text_queries_go_through_the_encoder(
    backend: ContractBackend, corpus: Corpus, synthetic_encoder: SyntheticEncoder
) -> None:
    """Documents upserted as text and searched with text equal the precomputed path."""
    docs = corpus.docs[:120]
    store = backend.open(corpus_spec(), encoder=synthetic_encoder)
    assert store.upsert(docs, batch_size=50) == len(docs)
    assert synthetic_encoder.calls == 3  # one encoder call per batch
    embs = {d.id: corpus.embeddings[d.id] for d in docs}
    ids = list(embs)
    for text in corpus.query_texts[:3]:
        q = synthetic_encoder.encode([text])[0]
        for mode, ref in (
            ("dense", dense_scores),
            ("sparse", sparse_scores),
            ("colbert", maxsim_scores),
        ):
            hits = store.search(text, 5, mode=mode)
            assert_ranking(hits, ref(q, embs, ids), 5, tol=backend.tolerance, what=mode)
        hits = store.search(text, 5)
        href = hybrid_reference(
            q, embs, ids, 5, HybridOptions(), backend.factory.fuse_weighted, rerank_available=True
        )
        assert_ranking(
            hits,
            href.scores,
            5,
            tol=backend.tolerance,
            required=href.required,
            expected_len=href.expected_len,
        )


def test_tiny_encoder_end_to_end(backend: ContractBackend, request: pytest.FixtureRequest) -> None:
    """The real encoder (tiny checkpoint) through upsert and search, against numpy."""
    try:
        encoder = request.getfixturevalue("tiny_encoder")
    except pytest.FixtureLookupError:
        pytest.skip("tiny_encoder fixture (tests/conftest.py) is not available")
    from contract_data import build_corpus

    docs = build_corpus().docs[:60]
    from m3vdb.schemas.spec import IndexSpec

    spec = IndexSpec.for_encoder(encoder, metadata_fields=corpus_spec().metadata_fields)
    store = backend.open(spec, encoder=encoder)
    store.upsert(docs, batch_size=32)
    embs = {d.id: e for d, e in zip(docs, encoder.encode([d.text for d in docs]), strict=True)}
    ids = [d.id for d in docs if d.metadata["lang"] != "emoji"]
    flt = {"lang": {"in": ["en", "de", "zh", "ru", "ar"]}}
    text = docs[0].text
    q = encoder.encode([text])[0]
    for mode, ref in (
        ("dense", dense_scores),
        ("sparse", sparse_scores),
        ("colbert", maxsim_scores),
    ):
        hits = store.search(text, 5, mode=mode, filter=flt)
        # the encoder runs twice (upsert vs here): allow its float noise
        assert_ranking(hits, ref(q, embs, ids), 5, tol=1e-3, what=mode)
    hits = store.search(text, 5, filter=flt)
    href = hybrid_reference(
        q, embs, ids, 5, HybridOptions(), backend.factory.fuse_weighted, rerank_available=True
    )
    assert_ranking(
        hits, href.scores, 5, tol=1e-3, required=href.required, expected_len=href.expected_len
    )


@pytest.mark.parametrize("mode", ["dense", "sparse", "colbert", "hybrid"])
def test_colbert_float16_and_cosine(backend: ContractBackend, corpus: Corpus, mode: str) -> None:
    """float16 ColBERT storage and cosine dense metric still rank like the reference."""
    spec = corpus_spec(colbert_precision="float16", dense_metric="cosine")
    store = backend.open(spec)
    pairs = corpus.pairs()[:150]
    store.upsert(pairs)
    embs = dict((d.id, e) for d, e in pairs)
    ids = list(embs)
    for q in corpus.queries[:3]:
        hits = store.search(q, 10, mode=mode)
        if mode == "hybrid":
            ref = hybrid_reference(
                q,
                embs,
                ids,
                10,
                HybridOptions(),
                backend.factory.fuse_weighted,
                rerank_available=True,
                float16=True,
            )
            assert_ranking(
                hits, ref.scores, 10, tol=2e-2, required=ref.required, expected_len=ref.expected_len
            )
        else:
            scores = {"dense": dense_scores, "sparse": sparse_scores}.get(mode)
            ref_scores = (
                scores(q, embs, ids) if scores else maxsim_scores(q, embs, ids, float16=True)
            )
            # float16 rows: ~1e-3 per dot, summed over the query rows
            assert_ranking(hits, ref_scores, 10, tol=2e-2 if mode == "colbert" else 1e-4)


def test_collection_without_colbert_hybrid_has_no_rerank(
    backend: ContractBackend, corpus: Corpus
) -> None:
    spec = corpus_spec(colbert=False)
    store = backend.open(spec)
    pairs = [(d, M3Embedding(dense=e.dense, sparse=e.sparse)) for d, e in corpus.pairs()[:100]]
    store.upsert(pairs)
    embs = {d.id: e for d, e in pairs}
    q = corpus.queries[1]
    hits = store.search(q, 7)  # rerank requested by default, but nothing to rerank with
    ref = hybrid_reference(
        q,
        embs,
        list(embs),
        7,
        HybridOptions(),
        backend.factory.fuse_weighted,
        rerank_available=False,
    )
    assert_ranking(hits, ref.scores, 7, tol=1e-6, expected_len=ref.expected_len)
