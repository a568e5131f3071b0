"""``scan(filter)`` (``connectors.base.SupportsScan``): every backend lists exactly the
documents ``matches`` accepts, across pages. The LlamaIndex and Haystack stores build
``get_nodes``, ``delete(ref_doc_id)`` and ``filter_documents`` on it.

Troubleshooting: a missing document with a small ``batch_size`` but not a large one points at
the paging (Qdrant's ``next_page_offset``, Milvus's query iterator, Elasticsearch's scroll).
"""

from __future__ import annotations

import pytest
from contract_data import Corpus, eligible
from test_contract_search import FILTERS

from m3vdb.connectors import Connector
from m3vdb.connectors.base import SupportsScan
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
