"""Fixtures of the outbox tests: see fixtures.py."""

from tests.outbox.fixtures import key_file, outbox_server, store  # noqa: F401
