#!/usr/bin/env python3
"""Write the published API contract, docs/openapi.json, from the back office's create_app().

Run after any change to the API: ``.venv/bin/python scripts/export-openapi.py``; a test
(tests/backoffice/test_openapi.py) fails while the committed file differs from what the server
serves. ``--check`` exits 1 instead of writing when the file is out of date.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backoffice.app import create_app  # noqa: E402

TARGET = REPO / "docs" / "openapi.json"


def render() -> str:
    document = create_app("sqlite://").openapi()
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args()
    text = render()
    if args.check:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET.relative_to(REPO)} is out of date: run scripts/export-openapi.py")
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
