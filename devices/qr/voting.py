"""Agreement across consecutive frames before a payload is handed on.

A decode from one frame is a candidate; a payload is confirmed when it was read in ``confirm`` of
the last ``window`` frames and no other payload was read as often there (two codes in view are
ambiguous: the citizen is asked to show one, rather than the kiosk picking). Once confirmed, the
same payload is not handed on again until it has been out of view for a whole window, so a code
held still is one read, not thirty a second.
"""

from __future__ import annotations

from collections import Counter, deque


class Votes:
    def __init__(self, confirm: int = 2, window: int = 4) -> None:
        if not 1 <= confirm <= window:
            raise ValueError("need 1 <= confirm <= window")
        self.confirm = confirm
        self.window = window
        self._frames: deque[frozenset[str]] = deque(maxlen=window)
        self._handed: str | None = None

    def add(self, texts: list[str]) -> str | None:
        """Record one frame's reads; the payload confirmed by this frame, if any."""
        self._frames.append(frozenset(texts))
        if self._handed is not None and not any(self._handed in f for f in self._frames):
            self._handed = None  # out of view for a whole window: it may be shown again
        counts = Counter(t for frame in self._frames for t in frame)
        if not counts:
            return None
        (best, votes), *rest = counts.most_common(2) + [("", 0)]
        runner_up = rest[0][1]
        if votes < self.confirm or votes == runner_up or best == self._handed:
            return None
        self._handed = best
        return best

    def reset(self) -> None:
        self._frames.clear()
        self._handed = None
