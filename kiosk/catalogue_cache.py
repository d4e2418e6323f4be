"""The kiosk's copy of the 办事指南 (service catalogue), so the guide and the application
journey work when the back office cannot be reached.

The copy is refreshed at most every ``max_age_s`` with the catalogue's version as ETag (a
304 costs the back office nothing), written atomically, and used as it is when the back
office is down. It holds no personal data.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from flows.ports import (
    BackOfficeError,
    CatalogueSource,
    ItemMaterial,
    ServiceCatalogue,
    ServiceItemInfo,
)
from kiosk.durable import write_atomically

log = logging.getLogger(__name__)

FORMAT = 1


def _dump(catalogue: ServiceCatalogue, fetched_at: float) -> bytes:
    return json.dumps({"format": FORMAT, "fetched_at": fetched_at, "version": catalogue.version,
                       "items": [asdict(i) for i in catalogue.items]},
                      ensure_ascii=False).encode()


def _item(raw: dict[str, Any]) -> ServiceItemInfo:
    fields = dict(raw)
    fields["materials"] = tuple(ItemMaterial(**m) for m in raw.get("materials", ()))
    for name in ("legal_basis", "conditions", "co_departments", "kiosk_services"):
        fields[name] = tuple(raw.get(name, ()))
    return ServiceItemInfo(**fields)


class CachedCatalogue:
    """A :class:`CatalogueSource` in front of the back office's."""

    def __init__(self, source: CatalogueSource, directory: Path, *, max_age_s: float = 300.0,
                 retry_after_s: float = 60.0, clock: Callable[[], float] = time.time) -> None:
        self.source = source
        self.directory = directory
        self.max_age_s = max_age_s
        # While the back office is down, a citizen opening the guide should not wait for the
        # client's timeout every time: the copy is used as it is until then.
        self.retry_after_s = retry_after_s
        self.clock = clock
        self._lock = threading.Lock()
        self._cached: dict[str, tuple[ServiceCatalogue, float]] = {}
        self._next_try: dict[str, float] = {}

    def _path(self, centre_id: str) -> Path:
        return self.directory / f"catalogue-{centre_id}.json"

    def _load(self, centre_id: str) -> tuple[ServiceCatalogue, float] | None:
        if centre_id in self._cached:
            return self._cached[centre_id]
        path = self._path(centre_id)
        try:
            raw = json.loads(path.read_bytes())
            if raw.get("format") != FORMAT:
                return None
            loaded = (ServiceCatalogue(raw["version"], tuple(_item(i) for i in raw["items"])),
                      float(raw["fetched_at"]))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as bad:
            # A damaged copy is worth nothing; the next fetch replaces it.
            log.warning("catalogue cache %s unreadable (%s): ignored", path.name,
                        type(bad).__name__)
            return None
        self._cached[centre_id] = loaded
        return loaded

    def fetched_at(self, centre_id: str) -> float | None:
        """When the copy was last confirmed current (epoch seconds), None without a copy."""
        with self._lock:
            cached = self._load(centre_id)
        return cached[1] if cached else None

    def service_catalogue(self, centre_id: str, *,
                          etag: str | None = None) -> ServiceCatalogue | None:
        """The catalogue, fresh when the back office answers and cached when it does not;
        raises the back office's error only when there is no copy at all."""
        with self._lock:
            cached = self._load(centre_id)
            now = self.clock()
            if cached is not None and (now - cached[1] < self.max_age_s
                                       or now < self._next_try.get(centre_id, 0.0)):
                catalogue = cached[0]
            else:
                catalogue = self._refresh(centre_id, cached)
        return None if etag is not None and etag == catalogue.version else catalogue

    def refresh(self, centre_id: str) -> ServiceCatalogue:
        """Ask the back office now (the kiosk does this at start and on a timer)."""
        with self._lock:
            return self._refresh(centre_id, self._load(centre_id))

    def _refresh(self, centre_id: str,
                 cached: tuple[ServiceCatalogue, float] | None) -> ServiceCatalogue:
        try:
            fresh = self.source.service_catalogue(
                centre_id, etag=cached[0].version if cached else None)
        except BackOfficeError as error:
            if cached is None:
                raise
            self._next_try[centre_id] = self.clock() + self.retry_after_s
            log.info("catalogue: back office unavailable (%s), using the copy of version %s",
                     error.code, cached[0].version)
            return cached[0]
        now = self.clock()
        catalogue = cached[0] if fresh is None and cached is not None else fresh
        if catalogue is None:  # a 304 to a request without an ETag: a confused server
            raise BackOfficeError("catalogue: not modified, but nothing was cached")
        self.directory.mkdir(parents=True, exist_ok=True)
        write_atomically(self._path(centre_id), _dump(catalogue, now), 0o644, backup=False)
        self._cached[centre_id] = (catalogue, now)
        return catalogue


class CatalogueRefresher:
    """Keeps the copy current in the background: at start (so the kiosk has one before the
    network fails) and every ``interval_s``; a failure waits for the next round."""

    def __init__(self, cache: CachedCatalogue, centre_id: str, interval_s: float = 300.0) -> None:
        self.cache = cache
        self.centre_id = centre_id
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="catalogue", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.cache.refresh(self.centre_id)
            except BackOfficeError as error:
                log.info("catalogue refresh failed (%s); next try in %.0f s", error.code,
                         self.interval_s)
            except Exception:  # a bad answer must not end the refreshing for good
                log.exception("catalogue refresh failed")
            self._stop.wait(self.interval_s)
