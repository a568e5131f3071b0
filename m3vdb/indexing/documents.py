"""PDF, HTML and DOCX files to text, in parts that keep where they come from: a PDF gives one
part per page (``page``, from 1), an HTML page or a DOCX document one part per section, cut
at its headings (``section``: the heading's text). The optional extra ``m3vdb[documents]``
installs the converters: ``pypdf`` (PDF), ``beautifulsoup4`` (HTML, with Python's own
``html.parser``) and ``python-docx`` (DOCX); docs/indexing.md says why these and not
markitdown, trafilatura, unstructured or docling.

Layer: indexing; imports a converter only when a file of its kind is read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from m3vdb.errors import InputError, MissingDependencyError
from m3vdb.schemas.optional import import_optional

EXTRA = "documents"
#: suffix -> (import name, pip name) of the converter that reads it
CONVERTERS: dict[str, tuple[str, str]] = {
    ".pdf": ("pypdf", "pypdf"),
    ".html": ("bs4", "beautifulsoup4"),
    ".htm": ("bs4", "beautifulsoup4"),
    ".docx": ("docx", "python-docx"),
}
SUFFIXES = tuple(CONVERTERS)

# HTML elements that are never text a reader sees
_INVISIBLE = ("script", "style", "noscript", "template", "head", "svg", "iframe", "nav")
_HEADINGS = ("h1", "h2", "h3")
# DOCX paragraph styles that start a section (Word's built-in names)
_DOCX_HEADING = re.compile(r"^(Heading [1-3]|Title)$")


@dataclass(frozen=True)
class Part:
    """One part of a converted file: its text and where in the file it is."""

    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


def missing_converter(path: Path) -> MissingDependencyError | None:
    """The error ``path`` (a PDF, HTML or DOCX file) gets when its converter is not
    installed, else None."""
    module, package = CONVERTERS[path.suffix.lower()]
    try:
        import_optional(module, package=package, extra=EXTRA, purpose=f"Indexing {path}")
    except MissingDependencyError as exc:
        return exc
    return None


def _purpose(suffix: str) -> str:
    return f"Indexing {suffix.lower()} files"


def convert(path: Path) -> list[Part]:
    """The parts of a PDF, HTML or DOCX file, in order; blank parts left out.

    Raises:
        MissingDependencyError: the converter is not installed (names ``m3vdb[documents]``).
        InputError: the file cannot be read as its suffix says (damaged, encrypted...).
    """
    suffix = path.suffix.lower()
    module, package = CONVERTERS[suffix]
    library = import_optional(module, package=package, extra=EXTRA, purpose=_purpose(suffix))
    try:
        if suffix == ".pdf":
            parts = list(_pdf(library, path))
        elif suffix == ".docx":
            parts = list(_docx(library, path))
        else:
            parts = list(_html(library, path))
    except InputError:
        raise
    except Exception as exc:  # each library has its own errors for a damaged file
        raise InputError(
            f"{path}: cannot be read as a {suffix} file ({type(exc).__name__}: {exc}); "
            "repair it, convert it to text, or leave it out"
        ) from exc
    return [p for p in parts if p.text.strip()]


def _pdf(pypdf: Any, path: Path) -> Iterator[Part]:
    reader = pypdf.PdfReader(str(path))
    if reader.is_encrypted:
        try:
            reader.decrypt("")  # many PDFs are "encrypted" with an empty password
        except Exception:
            pass
        if reader.is_encrypted and not _readable(reader):
            raise InputError(
                f"{path}: the PDF is encrypted with a password; decrypt it (e.g. qpdf "
                "--decrypt) or leave it out"
            )
    for number, page in enumerate(reader.pages, start=1):
        yield Part(_clean(page.extract_text() or ""), {"page": number})


def _readable(reader: Any) -> bool:
    try:
        _ = reader.pages[0] if len(reader.pages) else None
        return True
    except Exception:
        return False


def _html(bs4: Any, path: Path) -> Iterator[Part]:
    raw = path.read_bytes()
    # BeautifulSoup finds the encoding (meta charset, BOM, else a guess): HTML is often not UTF-8
    soup = bs4.BeautifulSoup(raw, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(_INVISIBLE):
        tag.decompose()
    body = soup.body or soup
    heading = title
    lines: list[str] = []
    for element in body.find_all(
        [
            *_HEADINGS,
            "p",
            "li",
            "pre",
            "td",
            "th",
            "blockquote",
            "dd",
            "dt",
            "figcaption",
            "caption",
        ]
    ):
        if element.find_parent(["p", "li", "pre", "td", "th", "blockquote", "dd", "dt"]):
            continue  # its text is in the enclosing block already
        text = element.get_text("\n" if element.name == "pre" else " ", strip=True)
        if element.name in _HEADINGS:
            if lines:
                yield _section(lines, heading, title)
                lines = []
            heading = text
            lines.append(text)
        elif text:
            lines.append(text)
    if lines:
        yield _section(lines, heading, title)


def _section(lines: list[str], heading: str, title: str) -> Part:
    metadata: dict[str, Any] = {}
    if heading:
        metadata["section"] = heading
    if title:
        metadata["title"] = title
    return Part(_clean("\n".join(lines)), metadata)


def _docx(docx: Any, path: Path) -> Iterator[Part]:
    document = docx.Document(str(path))
    title = (document.core_properties.title or "").strip()
    heading = title
    lines: list[str] = []
    for paragraph in _docx_blocks(document):
        text, style = paragraph
        if _DOCX_HEADING.match(style) and text:
            if lines:
                yield _section(lines, heading, title)
                lines = []
            heading = text
        if text:
            lines.append(text)
    if lines:
        yield _section(lines, heading, title)


def _docx_blocks(document: Any) -> Iterator[tuple[str, str]]:
    """(text, style name) of each paragraph and table row, in document order."""
    for block in document.iter_inner_content():
        rows = getattr(block, "rows", None)
        if rows is None:  # a paragraph
            style = block.style.name if block.style is not None else ""
            yield block.text.strip(), style
        else:  # a table: one line per row, cells separated by " | "
            for row in rows:
                cells = [c.text.strip() for c in row.cells]
                yield " | ".join(c for c in cells if c), ""


_BLANKS = re.compile(r"[ \t\u00a0]+")
_LINES = re.compile(r"\n{3,}")


def _clean(text: str) -> str:
    """Runs of spaces to one, at most one blank line; the text a reader sees, no more."""
    text = "\n".join(_BLANKS.sub(" ", line).strip() for line in text.splitlines())
    return _LINES.sub("\n\n", text).strip()
