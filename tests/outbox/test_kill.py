"""SIGKILL the kiosk-side process at random instants while it enqueues and while the outbox
drains, restart it, and check that the back office holds every acknowledged submission exactly
once and that nothing is left pending.

"Acknowledged" is what the citizen would have been told: ``enqueue`` returned in the child and
the child logged ``ack`` (tests/outbox/kiosk_driver.py). A submission killed before that may
or may not reach the back office, but never twice, and never one that was not even started.

Children are forked from a zygote that has already imported everything, so a restart costs
milliseconds and the 5-80 ms kill delays land inside the work, not inside Python's start-up.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

from kiosk.outbox import OutboxStore
from tests.outbox.kiosk_driver import material_sizes
from tests.outbox.peers import REPO, material_digest, stored_applications

SEEDS = [11, 12, 13, 14]
KILLS_PER_SEED = 55  # 220 over the suite's seeds
STARTUP_KILL_EVERY = 8  # one cycle in 8 is killed from the fork, inside start-up and migration


class Zygote:
    """``python -m tests.outbox.kiosk_driver zygote``: forks one child per job."""

    def __init__(self, stderr: IO[bytes]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.outbox.kiosk_driver", "zygote"], cwd=REPO,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True, bufsize=1)

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the zygote died; see its stderr")
        return json.loads(line)

    def spawn(self, job: dict[str, Any]) -> int:
        return int(self._ask({"spawn": job})["pid"])

    def reap(self, pid: int) -> int:
        return int(self._ask({"reap": pid})["status"])

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def zygote(tmp_path: Path) -> Iterator[Zygote]:
    with open(tmp_path / "zygote.stderr", "wb") as stderr:
        process = Zygote(stderr)
        yield process
        process.close()


@dataclass
class JobLog:
    """The children's shared log, parsed as it grows."""

    path: Path
    started: set[str] = field(default_factory=set)
    acked: dict[str, str] = field(default_factory=dict)  # marker -> local tracking number
    ready: set[int] = field(default_factory=set)
    done: set[int] = field(default_factory=set)
    _offset: int = 0

    def read(self) -> JobLog:
        if not self.path.exists():
            return self
        with open(self.path, "rb") as file:
            file.seek(self._offset)
            chunk = file.read()
        # Only whole lines: a child writes each line with one write(2).
        complete = chunk[:chunk.rfind(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.decode("utf-8").splitlines():
            kind, *rest = line.split()
            if kind == "start":
                self.started.add(rest[0])
            elif kind == "ack":
                self.acked[rest[0]] = rest[1]
            elif kind == "ready":
                self.ready.add(int(rest[0]))
            elif kind == "done":
                self.done.add(int(rest[0]))
        return self

    def wait_ready(self, pid: int, limit_s: float = 30.0) -> bool:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if pid in self.read().ready:
                return True
            time.sleep(0.003)
        return False


@pytest.mark.parametrize("seed", SEEDS)
def test_sigkill_loses_and_duplicates_nothing(seed: int, tmp_path: Path, key_file: Path,
                                              outbox_server, zygote: Zygote) -> None:
    rng = random.Random(seed)
    kiosk = f"K-KILL-{seed}"
    log = JobLog(tmp_path / "jobs.log")
    base = {"data_dir": str(tmp_path / "data"), "key_file": str(key_file),
            "url": outbox_server.url, "kiosk_id": kiosk, "log": str(log.path),
            "timeout_s": 5.0}
    kills = 0
    modes: dict[str, int] = {}
    cycle = 0
    while kills < KILLS_PER_SEED:
        cycle += 1
        mode = rng.choice(["both", "both", "enqueue", "drain"])
        job = base | {"mode": mode, "count": rng.randint(1, 10), "prefix": f"{seed}-{cycle}"}
        pid = zygote.spawn(job)
        if cycle % STARTUP_KILL_EVERY != 0:
            assert log.wait_ready(pid), "the child never opened the outbox"
        time.sleep(rng.uniform(0.005, 0.080))
        os.kill(pid, signal.SIGKILL)
        status = zygote.reap(pid)
        if status == -signal.SIGKILL:
            kills += 1
            modes[mode] = modes.get(mode, 0) + 1
        else:
            assert status == 0, f"a child failed on its own (exit {status}); see zygote.stderr"

    # Restart once more and let it finish: everything still waiting must go out.
    final = zygote.spawn(base | {"mode": "drain", "count": 0, "prefix": f"{seed}-final"})
    assert zygote.reap(final) == 0
    log.read()
    assert final in log.done

    stored = stored_applications(outbox_server.db_url, kiosk)
    markers = [s.marker for s in stored]
    assert len(markers) == len(set(markers)), "a submission reached the back office twice"
    assert set(log.acked) <= set(markers), "an acknowledged submission was lost"
    assert set(markers) <= log.started, "the back office holds something never submitted"
    for app in stored:
        assert app.marker is not None
        if app.marker in log.acked:
            assert app.local_tracking_number == log.acked[app.marker]
        # Every byte of every material arrived: no half-written submission was ever sent.
        assert app.material_digests == tuple(
            material_digest(app.marker, i, size)
            for i, size in enumerate(material_sizes(app.marker)))
    with OutboxStore.open(tmp_path / "data", key_file) as store:
        stats = store.stats()
        assert (stats.pending, stats.quarantined) == (0, 0)
        for marker, number in log.acked.items():
            entry = store.lookup(number)
            assert entry is not None and entry.state == "delivered", marker
    # The kills did land in both kinds of work, some inside an enqueue (started, never
    # acknowledged), and there was work to lose.
    assert modes.get("drain", 0) > 0 and modes.get("enqueue", 0) > 0 and modes.get("both", 0) > 0
    inside_enqueue = len(log.started - set(log.acked))
    assert inside_enqueue >= 3, (inside_enqueue, len(log.acked), modes)
    assert len(log.acked) >= 10, (inside_enqueue, len(log.acked), modes)
    print(f"seed {seed}: {kills} kills {modes}, {len(log.acked)} acknowledged, "
          f"{inside_enqueue} killed inside enqueue, {len(stored)} stored")
