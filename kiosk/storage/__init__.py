"""The kiosk's durable records: one SQLite file in WAL mode, schema managed by Alembic."""

from kiosk.storage.audit import AuditLog, AuditRecord, is_personal_key
from kiosk.storage.db import Database, open_database
from kiosk.storage.used_codes import UsedCodeStore

__all__ = [
    "AuditLog",
    "AuditRecord",
    "Database",
    "UsedCodeStore",
    "is_personal_key",
    "open_database",
]
