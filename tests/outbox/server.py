"""The reference back office with the submissions router, for the outbox tests and the bench:

    python -m tests.outbox.server --port 8765 --db sqlite:///x.db --seed seed.json
        [--certfile server.pem --keyfile server.key [--client-ca ca.pem]]

``create_app`` does not include ``backoffice.submissions.router`` yet (the lead adds it); until
then this adds it, and once it is there this adds nothing. With ``--client-ca`` the server
requires a client certificate signed by that CA (mutual TLS).
"""

from __future__ import annotations

import argparse
import ssl
import sys
from collections.abc import Sequence

import uvicorn
from fastapi import FastAPI

from backoffice import API_PREFIX
from backoffice.app import create_app
from backoffice.submissions import router


def build_app(db_url: str, seed: str | None, timezone: str) -> FastAPI:
    app = create_app(db_url, timezone=timezone, seed=seed)
    submit = f"{API_PREFIX}/applications"
    if not any(getattr(route, "path", None) == submit
               and "POST" in (getattr(route, "methods", None) or ()) for route in app.routes):
        app.include_router(router)
    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tests.outbox.server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--seed")
    parser.add_argument("--timezone", default="Asia/Shanghai")
    parser.add_argument("--certfile")
    parser.add_argument("--keyfile")
    parser.add_argument("--client-ca")
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--reset", action="store_true", help="accepted and ignored")
    args = parser.parse_args(argv)
    app = build_app(args.db, args.seed, args.timezone)
    tls: dict[str, object] = {}
    if args.certfile:
        tls = {"ssl_certfile": args.certfile, "ssl_keyfile": args.keyfile}
        if args.client_ca:
            tls |= {"ssl_ca_certs": args.client_ca, "ssl_cert_reqs": ssl.CERT_REQUIRED}
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, lifespan="off",
                access_log=False, **tls)  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(main())
