from __future__ import annotations

from kiosk.session import EndReason, InactivityTimer, SessionManager
from tests.fakes import ListAudit


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_countdown_starts_after_idle_and_a_touch_resets_it():
    clock = Clock()
    timer = InactivityTimer(60, 15, clock)
    clock.t += 59
    assert timer.state().countdown is None
    clock.t += 2
    assert timer.state().countdown == 14
    timer.touch()
    assert timer.state().countdown is None
    clock.t += 75
    assert timer.state().expired


def test_a_running_device_command_pauses_the_countdown():
    clock = Clock()
    timer = InactivityTimer(10, 5, clock)
    clock.t += 8
    timer.pause()
    clock.t += 100  # a slow card read
    assert not timer.state().expired and timer.state().countdown is None
    timer.resume()
    clock.t += 3
    assert timer.state().countdown == 4  # 11 s idle in all: 4 s left of the 5


def test_session_end_wipes_everything_it_held(tmp_path):
    clock = Clock()
    audit = ListAudit()
    manager = SessionManager(tmp_path, audit, 10, 5, clock)
    session = manager.start()
    held = {"name": "张三"}
    session.on_end(held.clear)
    session.on_end(lambda: 1 / 0)  # one failing wiper does not stop the others
    (session.temp_dir / "photo.jpg").write_bytes(b"\xff\xd8")
    ended = []
    manager.on_end(lambda s, r: ended.append((s.id, r)))
    clock.t += 16
    assert manager.tick().expired
    assert held == {}
    assert not session.temp_dir.exists()
    assert manager.current is None
    assert ended == [(session.id, EndReason.TIMEOUT)]
    assert ("session.end", session.id, {"reason": "timeout"}) in audit.rows


def test_starting_a_session_ends_the_previous_one(tmp_path):
    manager = SessionManager(tmp_path, ListAudit(), 10, 5)
    first = manager.start()
    second = manager.start()
    assert first.id != second.id and not first.temp_dir.exists()


def test_leftovers_of_a_crash_are_wiped_at_start(tmp_path):
    (tmp_path / "dead-session").mkdir()
    (tmp_path / "dead-session" / "scan.png").write_bytes(b"x")
    manager = SessionManager(tmp_path, ListAudit(), 10, 5)
    assert manager.wipe_leftovers() == 1
    assert list(tmp_path.iterdir()) == []
