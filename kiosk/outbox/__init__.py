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
    PendingBatch,
    PendingDelivery,
    UnreadableSubmission,
)
from kiosk.outbox.worker import (
    ApplicationSender,
    Backoff,
    BatchLimits,
    OutboxHealth,
    OutboxWorker,
    Outcome,
    StepResult,
)

__all__ = [
    "OUTBOX_FILE",
    "ApplicationSender",
    "Backoff",
    "BatchLimits",
    "InvalidSubmission",
    "OutboxEntry",
    "OutboxHealth",
    "OutboxKeyError",
    "OutboxStats",
    "OutboxStore",
    "OutboxWorker",
    "Outcome",
    "PendingBatch",
    "PendingDelivery",
    "SealedDataError",
    "Sealer",
    "StepResult",
    "UnreadableSubmission",
    "create_key",
    "load_key",
    "open_outbox_database",
]
