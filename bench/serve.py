"""``m3vdb serve`` against the offline encoder: throughput and latency with 1, 8 and 32
concurrent clients, each sending ONE short text per request, on the same texts.

Per repeat and per client count C, alternating the order:

- offline: ``M3Encoder.encode`` in this process over the same texts, in calls of
  ``--offline-batch`` (32) texts: what the issue compares with ("32 clients sending one text
  each cost about what one client sending 32 texts costs"), without HTTP;
- served: ``m3vdb serve`` in a subprocess (same checkpoint, same dtype, same threads), and C
  asyncio clients (httpx) in this process, each sending its share of the texts one request
  at a time (OpenAI's ``POST /v1/embeddings``, base64, as the ``openai`` client does). Reported:
  texts/s, and p50 / p95 of the per-request latency. The clients run on the same machine, so
  their own CPU use (HTTP, JSON) counts against the server: on a 2-core machine that is a
  real share.

The ratio served / offline at 32 clients is the issue's target (>= 0.85). The mean batch size
the server formed is read from its ``/metrics``. CPU milliseconds per text say where the
served side's time goes (Linux): the server's forward pass (its batcher and torch threads),
its event loop (HTTP, JSON, tokenising: the main thread) and the clients (this process),
against the offline side's.

    python bench/serve.py --model /work/bench-ckpt-full --repeats 3 --json out.json
    python bench/serve.py --build small            # a random-weight 6 x 384 checkpoint

On a machine shared with other work, run both sides with ``OMP_WAIT_POLICY=PASSIVE`` (set
before the command: the server inherits it). With GNU OpenMP's default (active) wait, a
2-thread forward pass on a process's main thread was measured 15-40x slower when other
processes held the cores (spinning workers take the time slices of the thread they wait
for), while the same pass on the server's batcher thread was not: the offline side looked
far slower than it is.

See bench/README.md for the figures and the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT / "tests"))  # the checkpoint factory lives with the tests

from encoder import ARCHS  # noqa: E402 (bench/encoder.py: the checkpoint shapes)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    model: str, port: int, max_wait_ms: float, threads: int
) -> subprocess.Popen[bytes]:
    """``m3vdb serve`` in a subprocess, once it answers ``/health``."""
    import httpx

    script = Path(sys.executable).with_name("m3vdb")
    cmd = [str(script), "serve", "--model", model, "--port", str(port), "--dtype", "float32"]
    cmd += ["--max-wait-ms", str(max_wait_ms), "--device", "cpu"]
    # no key: an empty $M3VDB_API_KEY is refused by the server (a typo must not disable auth)
    env = {k: v for k, v in os.environ.items() if k != "M3VDB_API_KEY"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"m3vdb serve exited: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("m3vdb serve did not start within 600 s")


class _RawClient:
    """A minimal HTTP/1.1 keep-alive client on one connection (asyncio streams): a client
    whose own CPU cost per request is a fraction of httpx's (measured on this 2-core machine:
    httpx 1.5-4 ms of client CPU per request), so that on a machine where the clients share
    the server's cores the figure is the server's, not the client library's."""

    def __init__(self, url: str) -> None:
        host, _, port = url.removeprefix("http://").partition(":")
        self.host, self.port = host, int(port)

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n"
        )
        self.writer.write(head.encode() + data)
        headers = await self.reader.readuntil(b"\r\n\r\n")
        status = int(headers.split(b" ", 2)[1])
        length = next(
            int(line.split(b":", 1)[1])
            for line in headers.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        answer = await self.reader.readexactly(length)
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {answer[:300]!r}")
        result: dict[str, Any] = json.loads(answer)
        return result

    def close(self) -> None:
        self.writer.close()


async def _raw_clients(
    url: str, texts: list[str], clients: int
) -> tuple[float, list[float], list[Any]]:
    """:func:`_clients` with :class:`_RawClient` connections instead of httpx."""
    import numpy as np

    shares = [list(range(len(texts)))[i::clients] for i in range(clients)]
    latencies: list[float] = []
    vectors: list[Any] = [None] * len(texts)
    conns = [_RawClient(url) for _ in range(clients)]
    await asyncio.gather(*(c.open() for c in conns))
    start_line = asyncio.Event()

    async def client(conn: _RawClient, share: list[int]) -> None:
        await start_line.wait()
        for index in share:
            body = {"input": texts[index], "model": "bge-m3", "encoding_format": "base64"}
            t0 = time.perf_counter()
            data = (await conn.post("/v1/embeddings", body))["data"][0]["embedding"]
            latencies.append(time.perf_counter() - t0)
            vectors[index] = np.frombuffer(base64.b64decode(data), dtype="<f4")

    tasks = [asyncio.create_task(client(c, s)) for c, s in zip(conns, shares)]
    await asyncio.sleep(0)
    start = time.perf_counter()
    start_line.set()
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - start
    for conn in conns:
        conn.close()
    return wall, latencies, vectors


async def _clients(
    url: str, texts: list[str], clients: int
) -> tuple[float, list[float], list[Any]]:
    """(wall seconds, per-request latencies, dense vectors) of ``clients`` concurrent clients
    sending ``texts`` one per request, each client every ``clients``-th text."""
    import httpx
    import numpy as np

    shares = [list(range(len(texts)))[i::clients] for i in range(clients)]
    latencies: list[float] = []
    vectors: list[Any] = [None] * len(texts)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=600) as http:
        # open the connections first: connection setup is not what is measured
        await asyncio.gather(*(http.get("/health") for _ in range(clients)))
        start_line = asyncio.Event()

        async def client(share: list[int]) -> None:
            await start_line.wait()
            for index in share:
                body = {"input": texts[index], "model": "bge-m3", "encoding_format": "base64"}
                t0 = time.perf_counter()
                answer = await http.post("/v1/embeddings", json=body)
                latencies.append(time.perf_counter() - t0)
                answer.raise_for_status()
                data = answer.json()["data"][0]["embedding"]
                vectors[index] = np.frombuffer(base64.b64decode(data), dtype="<f4")

        tasks = [asyncio.create_task(client(s)) for s in shares]
        await asyncio.sleep(0)
        start = time.perf_counter()
        start_line.set()
        await asyncio.gather(*tasks)
        return time.perf_counter() - start, latencies, vectors


def _batches(url: str) -> tuple[float, float]:
    """(forward passes, texts) the server has run so far, from /metrics."""
    import httpx

    count = total = 0.0
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("m3vdb_batch_size_count"):
            count = float(line.split()[-1])
        elif line.startswith("m3vdb_batch_size_sum"):
            total = float(line.split()[-1])
    return count, total


def _thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of process ``pid`` so far (Linux ``/proc``; empty elsewhere)."""
    tick = os.sysconf("SC_CLK_TCK")
    seconds: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        seconds[int(task.name)] = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return seconds


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="checkpoint directory (default: build one with --build)")
    parser.add_argument("--build", choices=sorted(ARCHS), default="small")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument(
        "--texts-per-level",
        type=int,
        default=64,
        help="texts sent per client count (1 client: --single-texts)",
    )
    parser.add_argument("--single-texts", type=int, default=16, help="texts for 1 client")
    parser.add_argument("--min-tokens", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-wait-ms", type=float, default=2.0)
    parser.add_argument("--offline-batch", type=int, default=32, help="texts per offline call")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads on both sides (0: torch's default); the server gets OMP_NUM_THREADS",
    )
    parser.add_argument(
        "--client",
        choices=["httpx", "raw"],
        default="httpx",
        help="the clients' HTTP library: httpx (as the openai client uses), or raw asyncio "
        "streams (a fraction of httpx's CPU per request: on a machine where the clients share "
        "the server's cores, the server's own cost)",
    )
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from corpus import make_corpus

    from m3vdb.encoder import M3Encoder

    tmp = Path(tempfile.mkdtemp(prefix="m3vdb-bench-serve-"))
    if args.model is None:
        from checkpoint_factory import build_checkpoint

        print(f"building a random-weight '{args.build}' checkpoint...", file=sys.stderr)
        args.model = str(build_checkpoint(tmp / "ckpt", **ARCHS[args.build]))
    encoder = M3Encoder(args.model, device="cpu", dtype="float32")
    count = max(args.texts_per_level, args.single_texts)
    texts = make_corpus(
        count,
        lambda t: len(encoder.tokenize([t])[0]),
        min_tokens=args.min_tokens,
        max_tokens=args.max_tokens,
    )
    lengths = [len(x) for x in encoder.tokenize(texts)]
    print(
        f"{args.model}: {len(texts)} texts, {min(lengths)}..{max(lengths)} tokens (median "
        f"{statistics.median(lengths):.0f}); torch threads {torch.get_num_threads()}",
        flush=True,
    )
    encoder.encode(texts[:4])  # warm-up
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(args.model, port, args.max_wait_ms, args.threads)
    results: dict[int, dict[str, list[float]]] = {
        c: {
            "offline": [],
            "served": [],
            "p50": [],
            "p95": [],
            "batch": [],
            "loop_ms": [],
            "model_ms": [],
            "client_ms": [],
            "offline_ms": [],
        }
        for c in args.clients
    }
    # the offline outputs, to check the served ones against (batching noise)
    reference = [e.dense for e in encoder.encode(texts, sparse=False, colbert=False)]
    max_diff = 0.0
    try:
        asyncio.run(_clients(url, texts[:8], 8))  # warm-up of the server
        for repeat in range(args.repeats):
            for clients in args.clients:
                level = texts[: args.single_texts if clients == 1 else args.texts_per_level]
                row = results[clients]
                order = ("offline", "served") if repeat % 2 == 0 else ("served", "offline")
                for side in order:
                    if side == "offline":
                        t0, own_before = time.perf_counter(), _own_cpu()
                        for i in range(0, len(level), args.offline_batch):
                            chunk = level[i : i + args.offline_batch]
                            encoder.encode(chunk, sparse=False, colbert=False)
                        row["offline"].append(len(level) / (time.perf_counter() - t0))
                        row["offline_ms"].append(1000 * (_own_cpu() - own_before) / len(level))
                    else:
                        before = _batches(url)
                        cpu_before, own_before = _thread_cpu(server.pid), _own_cpu()
                        drive = _raw_clients if args.client == "raw" else _clients
                        wall, lat, vectors = asyncio.run(drive(url, level, clients))
                        cpu = _thread_cpu(server.pid)
                        used = {t: cpu[t] - cpu_before.get(t, 0.0) for t in cpu}
                        # the event loop is the server's main thread (tid = pid); the rest
                        # is the batcher and torch's threads (the forward pass)
                        loop = used.get(server.pid, 0.0)
                        row["loop_ms"].append(1000 * loop / len(level))
                        row["model_ms"].append(1000 * (sum(used.values()) - loop) / len(level))
                        row["client_ms"].append(1000 * (_own_cpu() - own_before) / len(level))
                        for got, want in zip(vectors, reference):
                            max_diff = max(max_diff, float(abs(got - want).max()))
                        after = _batches(url)
                        row["served"].append(len(level) / wall)
                        row["p50"].append(_pct(lat, 0.5))
                        row["p95"].append(_pct(lat, 0.95))
                        row["batch"].append((after[1] - before[1]) / max(1, after[0] - before[0]))
                print(
                    f"repeat {repeat} clients {clients:2d}: offline {row['offline'][-1]:7.2f} "
                    f"texts/s, served {row['served'][-1]:7.2f} texts/s "
                    f"({row['served'][-1] / row['offline'][-1]:.2f}x), p50 "
                    f"{1000 * row['p50'][-1]:.0f} ms, p95 {1000 * row['p95'][-1]:.0f} ms, mean "
                    f"batch {row['batch'][-1]:.1f}; CPU ms per text: offline "
                    f"{row['offline_ms'][-1]:.2f}, served: model {row['model_ms'][-1]:.2f} + "
                    f"event loop {row['loop_ms'][-1]:.2f} + clients {row['client_ms'][-1]:.2f}",
                    flush=True,
                )
    finally:
        server.terminate()
        server.wait(60)

    print(f"\nmax |served - offline| over every dense vector: {max_diff:.2e}")
    print(
        "\n| clients | texts | offline texts/s | served texts/s | served / offline | "
        "p50 ms | p95 ms | mean batch | CPU ms/text offline | served: model + loop + clients |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    summary: dict[str, Any] = {
        "model": args.model,
        "lengths": lengths,
        "threads": args.threads,
        "client": args.client,
        "max_abs_diff": max_diff,
        "levels": {},
    }
    for clients, row in results.items():
        ratios = [s / o for s, o in zip(row["served"], row["offline"])]
        med = {k: statistics.median(v) for k, v in row.items()}
        n = args.single_texts if clients == 1 else args.texts_per_level
        print(
            f"| {clients} | {n} | {med['offline']:.2f} ({min(row['offline']):.2f}.."
            f"{max(row['offline']):.2f}) | {med['served']:.2f} ({min(row['served']):.2f}.."
            f"{max(row['served']):.2f}) | **{statistics.median(ratios):.2f}** "
            f"({min(ratios):.2f}..{max(ratios):.2f}) | {1000 * med['p50']:.0f} | "
            f"{1000 * med['p95']:.0f} | {med['batch']:.1f} | {med['offline_ms']:.2f} | "
            f"{med['model_ms']:.2f} + {med['loop_ms']:.2f} + {med['client_ms']:.2f} |"
        )
        summary["levels"][clients] = {**row, "ratio": ratios}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
