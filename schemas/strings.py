"""The string policy every backend applies before anything is written: ids, texts and metadata
are valid Unicode (every database stores UTF-8), and an id is a non-empty str.

A Python ``str`` may hold a lone surrogate (``"\\udc80"``): ``os.fsdecode`` of a file name that
is not UTF-8 gives one, and so does ``json.loads('"\\\\ud800"')``. No database can store it (it
has no UTF-8 form), and the clients fail on it with raw ``UnicodeEncodeError`` / ``TypeError``
half-way through a batch. :func:`check_document_strings` refuses it up front, naming where it
is. What a database additionally cannot address (Milvus Lite: an apostrophe in an id) is its
schema module's rule (``schemas/milvus.py``: ``id_problem``).
"""

from __future__ import annotations

from collections.abc import Mapping

from m3vdb.errors import InputError
from m3vdb.schemas.data import Document


def unicode_problem(value: str) -> str | None:
    """Why ``value`` has no UTF-8 form (its first lone surrogate and where), or None."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (
            f"holds a lone surrogate {value[exc.start]!r} at index {exc.start}, which is not "
            "valid Unicode (os.fsdecode gives these for file names that are not UTF-8)"
        )
    return None


def check_id(doc_id: object) -> str:
    """``doc_id`` if it is a non-empty str of valid Unicode; InputError otherwise (no stored
    document can have another id)."""
    if not isinstance(doc_id, str) or not doc_id:
        raise InputError(f"ids must be non-empty strings, got {doc_id!r}")
    problem = unicode_problem(doc_id)
    if problem is not None:
        raise InputError(
            f"id {doc_id!r} {problem}; no database stores it: decode the name with "
            "errors='replace' (or 'backslashreplace') first"
        )
    return doc_id


def check_document_strings(doc: Document) -> None:
    """InputError naming the document and the place (id, text, a metadata key or value) of the
    first string that is not valid Unicode. ``doc`` has passed the type checks (str id and
    text, dict metadata)."""
    check_id(doc.id)
    problem = unicode_problem(doc.text)
    if problem is not None:
        raise InputError(f"document {doc.id!r}: its text {problem}; fix or drop the text")
    metadata = doc.metadata if isinstance(doc.metadata, Mapping) else {}
    for key, value in metadata.items():
        if isinstance(key, str) and (problem := unicode_problem(key)) is not None:
            raise InputError(f"document {doc.id!r}: metadata key {key!r} {problem}")
        for element in value if isinstance(value, list) else [value]:
            if isinstance(element, str) and (problem := unicode_problem(element)) is not None:
                raise InputError(
                    f"document {doc.id!r}: metadata {key!r} holds {element!r:.60}, which {problem}"
                )
