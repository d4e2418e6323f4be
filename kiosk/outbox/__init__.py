"""The durable, encrypted outbox: applications wait here until the back office has them.

    store = OutboxStore.open(data_dir, key_file)        # key_file from create_key at provisioning
    worker = OutboxWorker(store, HttpBackOffice(url, tls=...))
    worker.start()
    number = store.enqueue(submission)                  # durable when it returns
    store.lookup(number)                                # pending / quarantined / delivered + 办件编号
    worker.health()                                     # for the heartbeat
"""

from kiosk.outbox.crypto import OutboxKeyError, SealedDataError, Sealer, create_key, load_key
from kiosk.outbox.db import OUTBOX_FILE, open_outbox_database
from kiosk.outbox.store import (
    InvalidSubmission,
    OutboxEntry,
    OutboxStats,
    OutboxStore,
    PendingDelivery,
    UnreadableSubmission,
)
from kiosk.outbox.worker import ApplicationSender, Backoff, OutboxHealth, OutboxWorker, Outcome

__all__ = [
    "OUTBOX_FILE",
    "ApplicationSender",
    "Backoff",
    "InvalidSubmission",
    "OutboxEntry",
    "OutboxHealth",
    "OutboxKeyError",
    "OutboxStats",
    "OutboxStore",
    "OutboxWorker",
    "Outcome",
    "PendingDelivery",
    "SealedDataError",
    "Sealer",
    "UnreadableSubmission",
    "create_key",
    "load_key",
    "open_outbox_database",
]
