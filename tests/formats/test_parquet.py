"""The Parquet writer and reader of the m3vdb embedding format: one file or a folder of part
files, bounded row groups and batches, never a half dataset, and clear errors for a folder
whose parts disagree (the Ray Data writer's folders read the same way)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from m3vdb.errors import InputError
from m3vdb.formats.parquet import EmbeddingWriter, count_rows, read_batches, read_info
from m3vdb.formats.table import FormatInfo, arrow_schema, to_record_batch
from m3vdb.schemas.data import Document, M3Embedding

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
INFO = FormatInfo(model="tiny", dense_dim=4, colbert_dim=2, colbert_type="float16")


def _entries(n: int, start: int = 0) -> list[tuple[Document, M3Embedding]]:
    rng = np.random.default_rng(start)
    return [
        (
            Document(f"d{i:03d}", f"text {i}", {"i": i}),
            M3Embedding(
                dense=rng.standard_normal(4).astype(np.float32),
                sparse={i + 1: 0.5},
                colbert=rng.standard_normal((2, 2)).astype(np.float16).astype(np.float32),
            ),
        )
        for i in range(start, start + n)
    ]


def _ids(path: Path, batch_size: int = 4) -> list[str]:
    return [d.id for b in read_batches(path, batch_size=batch_size) for d, _ in b]


def test_one_file_with_bounded_row_groups(tmp_path: Path) -> None:
    out = tmp_path / "e.parquet"
    written = _entries(5) + _entries(5, start=5)
    with EmbeddingWriter(out, INFO, rows_per_group=3) as writer:
        writer.write(written[:5])
        writer.write(written[5:])
    meta = pq.ParquetFile(out).metadata
    assert (
        meta.num_rows == 10
        and max(meta.row_group(i).num_rows for i in range(meta.num_row_groups)) <= 3
    )
    batches = list(read_batches(out, batch_size=4))
    assert all(len(b) <= 4 for b in batches)
    assert _ids(out) == [f"d{i:03d}" for i in range(10)]
    got = dict((d.id, e) for b in batches for d, e in b)
    for doc, emb in written:
        np.testing.assert_array_equal(got[doc.id].colbert, emb.colbert)
        np.testing.assert_array_equal(got[doc.id].dense, emb.dense)
    assert read_info(out) == INFO and count_rows(out) == 10


def test_a_folder_rolls_part_files_and_reads_in_name_order(tmp_path: Path) -> None:
    out = tmp_path / "parts"
    with EmbeddingWriter(out, INFO, rows_per_part=4) as writer:
        writer.write(_entries(10))
    assert sorted(p.name for p in out.iterdir()) == [
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002.parquet",
    ]
    assert _ids(out, batch_size=3) == [f"d{i:03d}" for i in range(10)]
    assert pq.read_table(out).num_rows == 10  # plain pyarrow reads the folder


def test_a_folder_written_by_another_writer_reads_and_disagreeing_parts_are_refused(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "ray"
    folder.mkdir()
    for n, start in (("b_000001.parquet", 3), ("a_000000.parquet", 0)):
        batch = to_record_batch(_entries(3, start=start), INFO)
        pq.write_table(pa.Table.from_batches([batch]), folder / n)
    (folder / "_SUCCESS").write_text("")
    assert _ids(folder) == [f"d{i:03d}" for i in range(6)]
    other = FormatInfo(model="tiny", dense_dim=8, colbert_dim=2, colbert_type="float16")

    pq.write_table(pa.Table.from_batches([], schema=arrow_schema(other)), folder / "c.parquet")
    with pytest.raises(InputError, match="same model and settings"):
        list(read_batches(folder))
    with pytest.raises(InputError, match="no \\*.parquet part files"):
        read_info(tmp_path)
    plain = tmp_path / "plain.parquet"
    pq.write_table(pa.table({"id": ["x"]}), plain)
    with pytest.raises(InputError, match="not an m3vdb embedding file"):
        read_info(plain)


def test_nothing_is_overwritten_and_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "e.parquet"
    out.write_text("keep")
    with pytest.raises(InputError, match="exists already"):
        EmbeddingWriter(out, INFO)
    assert out.read_text() == "keep"
    folder = tmp_path / "parts"
    with pytest.raises(InputError, match="dense vector of shape"):
        with EmbeddingWriter(folder, INFO) as writer:
            writer.write(_entries(2))
            bad = M3Embedding(dense=np.zeros(3, np.float32))
            writer.write([(Document("bad", "t", {}), bad)])
    assert not folder.exists() and list(tmp_path.iterdir()) == [out]
