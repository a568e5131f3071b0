"""``scan(filter)`` (``connectors.base.SupportsScan``): every backend lists exactly the
documents ``matches`` accepts, across pages. The LlamaIndex and Haystack stores build
``get_nodes``, ``delete(ref_doc_id)`` and ``filter_documents`` on it.

Troubleshooting: a missing document with a small ``batch_size`` but not a large one points at
the paging (Qdrant's ``next_page_offset``, Milvus's query iterator, Elasticsearch's scroll).
"""

from __future__ import annotations

import numpy as np
import pytest
from contract_data import Corpus, eligible
from test_contract_search import FILTERS

from m3vdb.connectors import Connector
from m3vdb.connectors.base import SupportsScan
from m3vdb.errors import UnsupportedCapabilityError
from m3vdb.schemas.filters import parse_filter


@pytest.mark.parametrize("flt", list(FILTERS.values()), ids=list(FILTERS))
def test_scan_lists_exactly_the_matches(corpus_store: Connector, corpus: Corpus, flt) -> None:
    assert isinstance(corpus_store, SupportsScan)
    want = sorted(eligible(corpus.metadata(), parse_filter(flt)))
    docs = list(corpus_store.scan(flt, batch_size=64))  # several pages for 300 documents
    assert sorted(d.id for d in docs) == want
    by_id = {d.id: d for d in corpus.docs}
    for doc in docs[:20]:
        assert doc.text == by_id[doc.id].text and dict(doc.metadata) == dict(by_id[doc.id].metadata)


def test_scan_rejects_a_bad_batch_size(corpus_store: Connector) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        list(corpus_store.scan(None, batch_size=0))  # type: ignore[attr-defined]


@pytest.mark.parametrize("flt", [None, FILTERS["dict-range-and-eq"]], ids=["all", "filtered"])
def test_scan_embeddings_gives_back_exactly_what_was_stored(
    corpus_store: Connector, corpus: Corpus, flt
) -> None:
    """``scan_embeddings`` (what export and copy read): every matching entry, in batches of at
    most ``batch_size``, with the vectors written (float32 storage: bit-equal). Elasticsearch
    keeps vectors out of ``_source`` and refuses, naming what works."""
    if corpus_store.engine.database == "Elasticsearch":
        with pytest.raises(UnsupportedCapabilityError, match="m3vdb encode"):
            corpus_store.scan_embeddings(flt)  # type: ignore[attr-defined]
        return
    want = sorted(eligible(corpus.metadata(), parse_filter(flt)))
    batches = list(corpus_store.scan_embeddings(flt, batch_size=64))  # type: ignore[attr-defined]
    assert all(0 < len(b) <= 64 for b in batches)
    got = {d.id: (d, e) for b in batches for d, e in b}
    assert sorted(got) == want
    docs = {d.id: d for d in corpus.docs}
    for doc_id, (doc, emb) in got.items():
        assert doc.text == docs[doc_id].text and dict(doc.metadata) == dict(docs[doc_id].metadata)
        ref = corpus.embeddings[doc_id]
        np.testing.assert_array_equal(emb.dense, ref.dense)
        np.testing.assert_array_equal(emb.colbert, ref.colbert)
        assert emb.sparse == pytest.approx(ref.sparse)
