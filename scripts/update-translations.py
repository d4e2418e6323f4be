"""Re-extract the msgids and merge them into the zh_CN catalogue (pybabel update), keeping
existing translations. Run after changing texts; tests fail while a msgid lacks Chinese."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def main() -> None:
    pot = ROOT / "kiosk" / "locale" / "kiosk.pot"
    subprocess.run([BIN / "pybabel", "-q", "extract", "-F", "babel.cfg", "-k", "N_",
                    "--no-location", "--sort-output", "--omit-header", "-o", str(pot), "."],
                   cwd=ROOT, check=True)
    subprocess.run([BIN / "pybabel", "-q", "update", "-i", str(pot), "-d", "kiosk/locale",
                    "-D", "kiosk", "--no-fuzzy-matching", "--ignore-obsolete", "-w", "100"],
                   cwd=ROOT, check=True)


if __name__ == "__main__":
    main()
