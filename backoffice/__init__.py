"""Reference back office for Zizhu: a small FastAPI server that speaks the kiosk's API contract.

It is the embedded default (the kiosk's launcher starts it as a subprocess) and the real HTTP
peer the tests talk to. The kiosk never imports this package; it only speaks HTTP to it.
"""

__version__ = "0.1.0"
API_PREFIX = "/api/v1"
