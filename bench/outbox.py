"""The outbox, timed: enqueue latency (each one committed and fsync'd before it returns) and
drain throughput to the reference back office on loopback, with the kiosk's memory meanwhile.

Kiosk side, in this process, as the kiosk runs it: an OutboxStore on a fresh data directory
(WAL, synchronous=FULL, AES-GCM sealing with a new key) and an OutboxWorker thread delivering
through HttpBackOffice, in batches (``POST /applications:batch``) unless ``--single`` sends
each through ``POST /applications`` (JSON, base64) as before batches existed. Back office: the
real ``kiosk-backoffice`` as a subprocess on 127.0.0.1, on its own SQLite file.

1. enqueue ``--count`` submissions, each with one material of ``--material-kb`` kB of random
   bytes (random: nothing compresses, as with JPEG photos), timing every enqueue() call;
2. start the worker and time until nothing is pending; the kiosk's RSS (psutil) is sampled
   every 0.2 s meanwhile, and reported before enqueueing, after enqueueing, during the drain
   (first and last tenth of the samples, maximum) and after; the CPU time each side spent
   per delivered submission (user + system, from psutil) says which side limits the rate.

It is a benchmark, not a test: a missed target is printed, not turned into an exit status.
Exit 1 only means it could not measure (the server did not start, something was left pending).

    .venv/bin/python -m bench.outbox [--count 10000] [--material-kb 200] [--workdir DIR]
                                     [--backoffice-wal] [--batch-items 8] [--single]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kiosk.client import (  # noqa: E402
    Applicant,
    ApplicationSubmission,
    BatchOutcome,
    BatchRefused,
    Commitment,
    HttpBackOffice,
    Material,
    OutgoingSubmission,
    SubmissionReceipt,
)
from kiosk.launcher import free_port  # noqa: E402
from kiosk.outbox import BatchLimits, OutboxStore, OutboxWorker, create_key  # noqa: E402
from tests.outbox.fixtures import start_server  # noqa: E402

TARGETS = "Targets: enqueue p50 < 10 ms; drain >= 100 submissions/s; kiosk memory flat while draining"
MB = 1024 * 1024


class RssSampler:
    def __init__(self, period_s: float = 0.2) -> None:
        self.process = psutil.Process()
        self.samples: list[int] = []
        self._period_s = period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self.process.memory_info().rss)
            self._stop.wait(self._period_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


class SingleOnly:
    """The client as a back office without the batch endpoint would leave it: the worker falls
    back to one ``POST /applications`` (JSON, base64) per submission, as before batches."""

    def __init__(self, client: HttpBackOffice) -> None:
        self._client = client

    def submit_application(self, submission: ApplicationSubmission, *,
                           local_tracking_number: str,
                           idempotency_key: str) -> SubmissionReceipt:
        return self._client.submit_application(
            submission, local_tracking_number=local_tracking_number,
            idempotency_key=idempotency_key)

    def submit_applications(self, batch: Sequence[OutgoingSubmission]) -> list[BatchOutcome]:
        raise BatchRefused(404, "bench_single", "bench --single: one submission per request")


def cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def rss() -> int:
    return psutil.Process().memory_info().rss


def submission(i: int, material_bytes: int) -> ApplicationSubmission:
    return ApplicationSubmission(
        centre_id="TEST-01", kiosk_id="K-BENCH", session_id=f"bench-session-{i}",
        service_item_code="SB001",
        applicant=Applicant("residentId", "110101199003074514", "测试申请人甲"),
        form={"address": "测试省测试市测试路1号", "phone": "13800000000", "n": i},
        commitment=Commitment("GZCN-2030-01", dt.datetime.now(dt.UTC)),
        materials=(Material("M1", "image/jpeg", os.urandom(material_bytes)),))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def row(name: str, n: int | str, value: str, target: str = "", note: str = "") -> None:
    print(f"| {name:<44} | {n!s:>6} | {value:>14} | {target:<10} | {note} |", flush=True)


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())


def run(count: int, material_kb: int, workdir: Path, backoffice_wal: bool, batch_items: int,
        single: bool) -> int:
    material_bytes = material_kb * 1000
    server = start_server(workdir / "backoffice", port=free_port())
    if backoffice_wal:
        # WAL is a property of the file: the server's connections pick it up as they open.
        with sqlite3.connect(workdir / "backoffice" / "bo.db") as connection:
            connection.execute("PRAGMA journal_mode=WAL").fetchone()
    server.start()
    try:
        key = create_key(workdir / "kiosk" / "outbox.key")
        store = OutboxStore.open(workdir / "kiosk" / "data", key)
        client = HttpBackOffice(server.url, timeout_s=10)
        sender = SingleOnly(client) if single else client
        worker = OutboxWorker(store, sender, idle_poll_s=0.05,
                              batch=BatchLimits(max_items=batch_items))
        server_process = psutil.Process(server.pid)
        kiosk_process = psutil.Process()
        try:
            # One untimed enqueue and delivery: imports, first connection, mapper set-up.
            store.enqueue(submission(-1, material_bytes))
            worker.drain()
            rss_start = rss()
            latencies = []
            for i in range(count):
                sub = submission(i, material_bytes)
                started = time.perf_counter()
                store.enqueue(sub)
                latencies.append(time.perf_counter() - started)
            rss_enqueued = rss()
            outbox_peak = folder_size(workdir / "kiosk" / "data")

            with RssSampler() as sampler:
                kiosk_cpu, server_cpu = cpu_s(kiosk_process), cpu_s(server_process)
                started = time.perf_counter()
                worker.start()
                while store.stats().pending:
                    time.sleep(0.05)
                drain_s = time.perf_counter() - started
                kiosk_cpu = cpu_s(kiosk_process) - kiosk_cpu
                server_cpu = cpu_s(server_process) - server_cpu
                worker.stop(timeout_s=60)  # interrupts the worker's own compaction
            started = time.perf_counter()
            freed_pages = store.compact()
            compact_s = time.perf_counter() - started
            rss_after = rss()
            health = worker.health()
            outbox_after = folder_size(workdir / "kiosk" / "data")
        finally:
            store.close()
            client.close()
    finally:
        server.stop()
    if health.pending or health.quarantined:
        print(f"outbox bench: {health.pending} pending, {health.quarantined} quarantined "
              "after the drain", file=sys.stderr)
        return 1

    ms = [t * 1000 for t in latencies]
    samples = sampler.samples or [rss_after]
    tenth = max(1, len(samples) // 10)
    first, last = statistics.mean(samples[:tenth]), statistics.mean(samples[-tenth:])
    rate = count / drain_s
    p50 = percentile(ms, 50)
    journal = "WAL" if backoffice_wal else "default (rollback journal)"
    how = ("one POST /applications (JSON, base64) per submission" if single
           else f"POST /applications:batch, up to {batch_items} submissions per request")
    print(f"Delivery: {how}. Back office SQLite journal: {journal}; load average at the end: "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs\n")
    print(f"| {'measurement':<44} | {'n':>6} | {'value':>14} | {'target':<10} | note |")
    print("|---|---:|---:|---|---|")
    row("enqueue latency p50 (commit + fsync)", count, f"{p50:.2f} ms", "< 10 ms",
        "met" if p50 < 10 else "MISSED")
    row("enqueue latency p99", count, f"{percentile(ms, 99):.2f} ms")
    row("enqueue latency max", count, f"{max(ms):.2f} ms")
    row("enqueue latency mean", count, f"{statistics.mean(ms):.2f} ms")
    row("drain throughput (worker thread, loopback)", count, f"{rate:.0f} /s", ">= 100 /s",
        ("met" if rate >= 100 else "MISSED") + f"; {drain_s:.1f} s in all")
    row("kiosk CPU per delivered submission (drain)", count,
        f"{kiosk_cpu / count * 1000:.2f} ms", "", "worker: read, open, encode, record, delete")
    row("back office CPU per submission (drain)", count, f"{server_cpu / count * 1000:.2f} ms",
        "", "HTTP, parse, digest, store, commit")
    row("kiosk RSS before enqueueing", "", f"{rss_start / MB:.0f} MB")
    row("kiosk RSS after enqueueing", "", f"{rss_enqueued / MB:.0f} MB")
    row("kiosk RSS while draining: first tenth", len(samples), f"{first / MB:.0f} MB")
    row("kiosk RSS while draining: last tenth", len(samples), f"{last / MB:.0f} MB", "flat",
        f"max {max(samples) / MB:.0f} MB, last - first {(last - first) / MB:+.1f} MB")
    row("kiosk RSS after draining", "", f"{rss_after / MB:.0f} MB")
    row("outbox files at peak (db + wal)", count, f"{outbox_peak / MB:.0f} MB", "",
        f"{material_kb} kB material each, sealed")
    row("outbox files after draining", "", f"{outbox_after / MB:.1f} MB", "",
        "rows deleted, pages zeroed, space returned")
    row("compaction after draining (stepwise)", freed_pages, f"{compact_s:.1f} s", "",
        "pages freed; the queue stays usable between steps")
    print(f"\n{TARGETS}.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="submissions (default 10000)")
    parser.add_argument("--material-kb", type=int, default=200,
                        help="size of each submission's material in kB (default 200)")
    parser.add_argument("--workdir", type=Path,
                        help="where the outbox and the back office's database go (default: a "
                             "temporary folder, removed afterwards)")
    parser.add_argument("--backoffice-wal", action="store_true",
                        help="put the back office's SQLite file in WAL mode before it starts "
                             "(its default is SQLite's rollback journal)")
    parser.add_argument("--batch-items", type=int, default=BatchLimits().max_items,
                        help="submissions per batch request (default %(default)s)")
    parser.add_argument("--single", action="store_true",
                        help="no batches: one POST /applications (JSON, base64) per submission")
    args = parser.parse_args(argv)
    if args.count < 1 or args.material_kb < 1 or args.batch_items < 1:
        parser.error("--count, --material-kb and --batch-items must be at least 1")
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        return run(args.count, args.material_kb, args.workdir, args.backoffice_wal,
                   args.batch_items, args.single)
    workdir = Path(tempfile.mkdtemp(prefix="zizhu-bench-outbox-"))
    try:
        return run(args.count, args.material_kb, workdir, args.backoffice_wal, args.batch_items,
                   args.single)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
