"""PDF / HTML / DOCX to text: m3vdb's converters (pypdf, beautifulsoup4, python-docx) against
markitdown, on generated files (docs/indexing.md#document-formats has the results).

    python bench/documents_compare.py make DIR        # writes DIR/{report.pdf,page.html,memo.docx}
    python bench/documents_compare.py m3vdb DIR       # with m3vdb[documents] installed
    python bench/documents_compare.py markitdown DIR  # in a venv with markitdown[pdf,docx]

Each converter run prints the seconds per file (best of 5) and the first characters of its
text, for reading side by side.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

SENTENCES = [
    "The river rose two metres overnight",
    "Dams upstream released water at noon",
    "Farmers moved cattle to higher fields",
    "The bridge on route 9 stayed closed",
]


def pdf(pages: int, lines: int) -> bytes:
    """A PDF of ``pages`` pages of ``lines`` lines of Helvetica text, written by hand."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>"]
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(pages))
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>")
    font = 3 + 2 * pages
    for p in range(pages):
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * p} 0 R "
            f"/Resources << /Font << /F1 {font} 0 R >> >> >>"
        )
        text = " T* ".join(
            f"(Page {p + 1} line {n + 1}: {SENTENCES[n % len(SENTENCES)]}.) Tj"
            for n in range(lines)
        )
        stream = f"BT /F1 11 Tf 14 TL 72 740 Td {text} ET"
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
    objects.append("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("ascii")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode("ascii")
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode("ascii")
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return out


def make(folder: Path) -> None:
    import docx

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.pdf").write_bytes(pdf(50, 40))
    sections = "".join(
        f"<h2>Section {i}</h2><p>{' '.join(SENTENCES)}.</p><ul><li>item a</li><li>item b</li></ul>"
        "<table><tr><th>gauge</th><th>level</th></tr>"
        f"<tr><td>Basel</td><td>{i}.2 m</td></tr></table>"
        for i in range(200)
    )
    (folder / "page.html").write_text(
        "<html><head><title>Flood log</title><style>p{color:red}</style>"
        "<script>var tracking = 1;</script></head><body><nav>Home | About</nav>"
        f"<h1>Flood log</h1>{sections}</body></html>",
        "utf-8",
    )
    document = docx.Document()
    for i in range(200):
        document.add_heading(f"Section {i}", level=1)
        document.add_paragraph(" ".join(SENTENCES) + ".")
        table = document.add_table(rows=2, cols=2)
        table.cell(0, 0).text, table.cell(0, 1).text = "gauge", "level"
        table.cell(1, 0).text, table.cell(1, 1).text = "Basel", f"{i}.2 m"
    document.save(str(folder / "memo.docx"))


def _best(convert: object, path: Path) -> tuple[float, str]:
    times, text = [], ""
    for _ in range(5):
        start = time.perf_counter()
        text = convert(path)  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times), text


def main(argv: list[str]) -> None:
    what, folder = argv[0], Path(argv[1])
    if what == "make":
        make(folder)
        return
    if what == "m3vdb":
        from m3vdb.indexing.documents import convert as ours

        def convert(path: Path) -> str:
            return "\n\n".join(p.text for p in ours(path))

    else:
        from markitdown import MarkItDown

        md = MarkItDown()

        def convert(path: Path) -> str:
            return str(md.convert(str(path)).text_content)

    for name in ("report.pdf", "page.html", "memo.docx"):
        seconds, text = _best(convert, folder / name)
        print(f"== {what} {name}: {seconds * 1000:.0f} ms, {len(text):,} chars")
        print(text[:300].replace("\n", "⏎"))


if __name__ == "__main__":
    main(sys.argv[1:])
