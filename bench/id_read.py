"""Identity reads, timed: an eMRTD (DG1 + DG2 with a 20 KB face, plus EF.COM and EF.SOD, with
BAC, secure messaging and passive authentication) through pyscard -> pcscd -> vpcd -> a
simulated chip, and a resident ID card through the GA/T 467 driver over a pty whose far end
sends at 115200 baud.

Peers compared in the same run: the same eMRTD read in process (no PC/SC: what the protocol
and crypto cost), and through vpcd without TCP_NODELAY/TCP_QUICKACK on the card's socket
(what the stack costs when the transport is naive). The APDU floor is what the file sizes
require at the card's largest accepted read: 3 to open (SELECT AID, GET CHALLENGE, MUTUAL
AUTHENTICATE), then per file SELECT, a 4-byte header read and ceil(rest / read size).

    .venv/bin/python -m bench.id_read [--runs 10]     (as root: it starts its own pcscd)
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devices.contract import DeviceState  # noqa: E402
from devices.emrtd.files import EF  # noqa: E402
from devices.emrtd.mrz import parse_mrz  # noqa: E402
from devices.emrtd.reader import PcscEmrtdReader  # noqa: E402
from devices.emrtd.session import EmrtdSession  # noqa: E402
from devices.ga467.reader import Ga467IdCardReader  # noqa: E402
from tests.devices.sam_sim import SamLine, SimCard  # noqa: E402
from tests.devices.test_ga467_reader import card_text, wlt  # noqa: E402
from tests.emrtd.card import SimulatedEmrtd  # noqa: E402
from tests.emrtd.factory import (  # noqa: E402
    SPECIMEN_TD3,
    make_face_jpeg,
    make_passport,
    make_test_pki,
)
from tests.peers.pcscd import Pcscd  # noqa: E402
from tests.peers.vpcd_card import VirtualCardClient  # noqa: E402

FILES = (EF.COM, EF.DG1, EF.DG2, EF.SOD)


def apdu_floor(sizes: list[int], read_size: int) -> int:
    return 3 + sum(2 + math.ceil((size - 4) / read_size) for size in sizes)


def wait(predicate: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.02)


def row(name: str, times: list[float], apdus: int | str, floor: int | str) -> None:
    median = statistics.median(times) * 1000
    print(f"| {name:<52} | {median:8.1f} | {min(times) * 1000:8.1f} | {apdus!s:>5} | "
          f"{floor!s:>5} |")


def emrtd_rows(runs: int, workdir: Path) -> list[int]:
    pki = make_test_pki(workdir)
    passport = make_passport(pki, SPECIMEN_TD3, make_face_jpeg(20_000))
    access = parse_mrz("\n".join(SPECIMEN_TD3)).access()
    sizes = [len(passport.files[ef]) for ef in FILES]

    for extended, label in ((True, "extended length"), (False, "short APDUs only (0xE7)")):
        times, apdus = [], 0
        for _ in range(runs):
            card = SimulatedEmrtd(dict(passport.files), access, extended_length=extended,
                                  max_read=0x8000 if extended else 0xE7)
            session = EmrtdSession(card.process)
            started = time.perf_counter()
            session.open(access)
            for ef in FILES:
                session.read_file(ef)
            times.append(time.perf_counter() - started)
            apdus = session.apdu_count
        # Without extended length the session's first large read is refused once (the probe).
        floor = apdu_floor(sizes, 0xFFE7 if extended else 0xE7) + (0 if extended else 1)
        row(f"in process (no PC/SC), {label}", times, apdus, floor)

    pcscd = Pcscd(workdir / "pcscd.log").start()
    try:
        reader_name = pcscd.reader
        device = PcscEmrtdReader(reader=reader_name, csca=str(pki.csca_path))
        wait(lambda: device.status().state is DeviceState.ONLINE)
        cases = [(True, True, runs), (False, True, runs), (False, False, min(runs, 3))]
        for extended, fast_ack, n in cases:
            times, apdus, verified = [], 0, ""
            for _ in range(n):
                card = SimulatedEmrtd(dict(passport.files), access, extended_length=extended,
                                  max_read=0x8000 if extended else 0xE7)
                client = VirtualCardClient(card, port=pcscd.port_of(reader_name),
                                           fast_ack=fast_ack).insert()
                pcscd.wait_for_card(True, reader_name)
                wait(lambda: device.status().media.value == "present")
                result = device.read_identity(30, access).wait(60)
                client.remove()
                pcscd.wait_for_card(False, reader_name)
                if not result.ok:
                    raise SystemExit(f"read failed: {result.completion}/{result.error_code}")
                times.append(result.data.read_stats["seconds"])
                apdus = int(result.data.read_stats["apdus"])
                verified = str(result.data.authenticity)
            floor = apdu_floor(sizes, 0xFFE7 if extended else 0xE7) + (0 if extended else 1)
            label = ("extended length" if extended else "short APDUs") + (
                "" if fast_ack else ", card socket without NODELAY/QUICKACK")
            row(f"pcscd + vpcd, {label} [{verified}]", times, apdus, floor)
        device.close()
    finally:
        pcscd.stop()
    return sizes


def serial_rows(runs: int, workdir: Path) -> None:
    for pace, label in ((115200, "paced at 115200 baud"), (None, "unpaced (driver cost)")):
        line = SamLine(workdir, pace_baud=pace)
        line.sim.insert(SimCard(card_text(), wlt()))
        reader = Ga467IdCardReader(port=str(line.path), poll_interval_s=60.0)
        try:
            wait(lambda r=reader: r.status().state is DeviceState.ONLINE)
            times, frames = [], 0
            for _ in range(runs):
                result = reader.read_identity(10).wait(20)
                if not result.ok:
                    raise SystemExit(f"serial read failed: {result.completion}")
                times.append(result.data.read_stats["seconds"])
                frames = int(result.data.read_stats["frames"])
            row(f"GA/T 467 over a pty, {label}", times, f"{frames}fr", "—")
        finally:
            reader.close()
            line.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print("| read                                                 | median ms |   min ms "
              "| APDUs | floor |")
        print("|---|---:|---:|---:|---:|")
        sizes = emrtd_rows(args.runs, Path(tmp))
        serial_rows(args.runs, Path(tmp))
    print(f"\nfiles: COM {sizes[0]} B, DG1 {sizes[1]} B, DG2 {sizes[2]} B, SOD {sizes[3]} B."
          "\nSerial rows count frames exchanged from card found to record decoded (select, "
          "read).\nTarget: the whole eMRTD read under 500 ms over vpcd, at the APDU floor.")


if __name__ == "__main__":
    main()
