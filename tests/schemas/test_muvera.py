"""MUVERA fixed dimensional encodings (``m3vdb.schemas.muvera``) and their config.

Troubleshooting: a low correlation means the FDE inner product no longer follows MaxSim
(a bucket filled wrongly, query and document aggregation swapped, a projection not scaled);
a determinism failure means the matrices are no longer drawn from the seed alone.
"""

from __future__ import annotations

import numpy as np
import pytest

from m3vdb.errors import InputError
from m3vdb.schemas.muvera import FdeEncoder, fde_encoder
from m3vdb.schemas.scoring import maxsim
from m3vdb.schemas.spec import ColbertFde, IndexSpec

DIM = 64


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def clustered_set(
    n_docs: int = 300, n_queries: int = 12, seed: int = 7
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Documents and queries whose token vectors cluster around shared topics (as a trained
    model's tokens do): each text draws 1-3 topics and its tokens scatter around them."""
    rng = np.random.default_rng(seed)
    topics = _unit(rng.standard_normal((24, DIM)))

    def text(n_tokens: int) -> np.ndarray:
        chosen = rng.choice(len(topics), size=int(rng.integers(1, 4)), replace=False)
        centres = topics[rng.choice(chosen, size=n_tokens)]
        return _unit(centres + 0.1 * rng.standard_normal((n_tokens, DIM)))

    docs = [text(int(rng.integers(20, 60))) for _ in range(n_docs)]
    queries = [text(int(rng.integers(4, 12))) for _ in range(n_queries)]
    return docs, queries


def test_fde_inner_product_follows_maxsim() -> None:
    """Over a clustered set, <fde_query(q), fde_doc(d)> correlates with MaxSim(q, d) per query
    (the paper's guarantee, up to the repetitions' scale), and the FDE's top 50 of 300 holds
    most of MaxSim's top 10."""
    docs, queries = clustered_set()
    config = ColbertFde()
    encoder = fde_encoder(config, DIM)
    fdes = encoder.documents(docs)
    assert fdes.shape == (len(docs), config.dim)
    correlations, recalls = [], []
    for q in queries:
        approx = fdes @ encoder.query(q)
        exact = np.array([maxsim(q, d) for d in docs])
        correlations.append(float(np.corrcoef(approx, exact)[0, 1]))
        best = np.argsort(-exact)[:10]
        recalls.append(len(set(best) & set(np.argsort(-approx)[:50])) / 10)
        # the scale, where it matters (the best documents): about repetitions * MaxSim, less
        # where topics share a bucket and its average blurs them
        ratio = np.median(approx[best] / exact[best]) / config.repetitions
        assert 0.3 < ratio < 1.2, ratio
    assert min(correlations) > 0.8, correlations
    assert np.mean(recalls) >= 0.9, recalls


def test_query_and_document_encodings_differ() -> None:
    """Documents average per bucket and fill empty buckets; queries sum and leave them empty."""
    docs, _ = clustered_set(n_docs=1)
    rows = docs[0]
    encoder = fde_encoder(ColbertFde(k_sim=5, repetitions=2), DIM)
    as_query = encoder.query(rows).reshape(2, 32, -1)
    as_doc = encoder.document(rows).reshape(2, 32, -1)
    empty = ~as_query.any(axis=2)
    assert empty.any(), "with 32 buckets and few topics some buckets are empty"
    assert as_doc.any(axis=2).all(), "a document fills every bucket"
    full = ~empty
    counts = np.stack(
        [np.linalg.norm(as_query[full], axis=1), np.linalg.norm(as_doc[full], axis=1)]
    )
    assert (counts[0] >= counts[1] - 1e-5).all(), "a sum is at least as long as the mean"
    # one token: query and document agree where it landed
    one = rows[:1]
    q1, d1 = encoder.query(one), encoder.document(one)
    assert np.allclose(q1[q1 != 0], d1[q1 != 0])


def test_empty_bucket_takes_the_hamming_nearest_token() -> None:
    """A bucket no token falls in gets the projected token whose sign bits are nearest."""
    config = ColbertFde(k_sim=3, d_proj=4, repetitions=1)
    encoder = FdeEncoder(config, DIM)
    rows = _unit(np.random.default_rng(3).standard_normal((2, DIM)))
    bits, buckets, projected = encoder._partition(rows)
    out = encoder.document(rows).reshape(8, 4)
    for b in range(8):
        pattern = (b >> np.arange(3)) & 1
        if b in buckets[:, 0]:
            continue
        distance = (bits[:, 0, :] != pattern).sum(axis=1)
        assert np.allclose(out[b], projected[int(distance.argmin()), 0])


def test_deterministic_from_the_seed() -> None:
    """The same config gives the same encodings in a fresh encoder; another seed does not."""
    docs, queries = clustered_set(n_docs=3, n_queries=1)
    a = FdeEncoder(ColbertFde(seed=11), DIM)
    b = FdeEncoder(ColbertFde(seed=11), DIM)
    c = FdeEncoder(ColbertFde(seed=12), DIM)
    assert np.array_equal(a.documents(docs), b.documents(docs))
    assert np.array_equal(a.query(queries[0]), b.query(queries[0]))
    assert not np.array_equal(a.query(queries[0]), c.query(queries[0]))
    assert fde_encoder(ColbertFde(seed=11), DIM) is fde_encoder(ColbertFde(seed=11), DIM)


def test_shapes_and_final_projection() -> None:
    docs, queries = clustered_set(n_docs=40, n_queries=3)
    config = ColbertFde(k_sim=3, d_proj=8, repetitions=4)
    assert config.dim == 4 * 8 * 8
    sketched = ColbertFde(k_sim=4, d_proj=16, repetitions=16, final_dim=1024)
    assert sketched.dim == 1024
    encoder = fde_encoder(sketched, DIM)
    fdes = encoder.documents(docs)
    assert fdes.shape == (40, 1024) and fdes.dtype == np.float32
    assert encoder.query(queries[0]).shape == (1024,)
    # the count sketch keeps inner products in expectation: still follows MaxSim
    exact = np.array([maxsim(queries[0], d) for d in docs])
    assert np.corrcoef(fdes @ encoder.query(queries[0]), exact)[0, 1] > 0.6


def test_bad_rows_are_input_errors() -> None:
    encoder = fde_encoder(ColbertFde(), DIM)
    with pytest.raises(InputError, match="shape"):
        encoder.document(np.zeros((0, DIM), dtype=np.float32))
    with pytest.raises(InputError, match="shape"):
        encoder.query(np.zeros((3, DIM + 1), dtype=np.float32))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"k_sim": 0}, "k_sim"),
        ({"d_proj": -1}, "d_proj"),
        ({"repetitions": 1.5}, "repetitions"),
        ({"candidates": True}, "candidates"),
        ({"k_sim": 11}, "at most 10"),
        ({"final_dim": 0}, "final_dim"),
        ({"seed": -1}, "seed"),
        ({"k_sim": 10, "d_proj": 64, "repetitions": 2}, "no database stores"),
    ],
)
def test_bad_configs_are_input_errors(options: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        ColbertFde(**options)


def test_index_spec_records_the_config() -> None:
    """The config (seed included) survives the collection's record; FDE without ColBERT is
    refused."""
    spec = IndexSpec(colbert_fde=ColbertFde(repetitions=8, seed=5, candidates=80))
    again = IndexSpec.from_record(spec.to_record())
    assert again == spec and again.colbert_fde == ColbertFde(repetitions=8, seed=5, candidates=80)
    assert IndexSpec.from_record(IndexSpec().to_record()).colbert_fde is None
    with pytest.raises(InputError, match="colbert=False"):
        IndexSpec(colbert=False, colbert_fde=ColbertFde())
    with pytest.raises(InputError, match="ColbertFde"):
        IndexSpec(colbert_fde={"k_sim": 4})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not an IndexSpec record"):
        IndexSpec.from_record({**spec.to_record(), "colbert_fde": {"k_sim": 0}})
