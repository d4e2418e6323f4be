"""DESIGN.md's dependency rules, read from the import statements of every module."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The device-layer contract modules: what flows may use of devices/. The MRZ is the text
# printed on a passport's data page, not a driver: flows parse what the citizen typed with it.
# devices.vision is image analysis of frames (where the document is, is it sharp), no device.
CONTRACTS = {"devices", "devices.contract", "devices.identity", "devices.barcode",
             "devices.camera", "devices.printer", "devices.emrtd.mrz",
             "devices.vision"}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def top(name: str) -> str:
    return name.split(".")[0]


def violations(root: Path) -> list[str]:
    bad: list[str] = []
    # The project's own packages only: build trees (an image's root file system) hold others.
    paths = (p for package in ("devices", "flows", "kiosk", "backoffice", "scripts")
             for p in (root / package).rglob("*.py"))
    for path in sorted(paths):
        rel = path.relative_to(root)
        package = rel.parts[0]
        for name in imports(path):
            t = top(name)
            if package == "devices" and t in ("kiosk", "flows", "backoffice", "kivy"):
                bad.append(f"{rel}: devices/ imports {name}")
            if package == "flows":
                if t in ("kivy", "kiosk", "backoffice"):
                    bad.append(f"{rel}: flows/ imports {name}")
                if t == "devices" and not any(
                        name == c or name.startswith(c + ".") for c in CONTRACTS - {"devices"}):
                    if name != "devices":
                        bad.append(f"{rel}: flows/ imports a driver: {name}")
            if t == "kivy" and rel.parts[:2] != ("kiosk", "ui"):
                bad.append(f"{rel}: Kivy outside kiosk/ui/: {name}")
            if package == "kiosk" and t == "backoffice":
                bad.append(f"{rel}: kiosk/ imports the back-office server: {name}")
            if package == "backoffice" and t in ("kiosk", "flows", "devices"):
                bad.append(f"{rel}: backoffice/ imports {name}")
            if (name.startswith("devices.sim") and package != "devices"
                    and rel != Path("kiosk/app.py")):
                bad.append(f"{rel}: only the composition root builds drivers: {name}")
    return bad


def test_the_tree_keeps_the_dependency_rules():
    assert violations(ROOT) == []


def test_the_checker_catches_each_kind_of_violation(tmp_path):
    cases = {
        "flows/a.py": "import kivy.uix",
        "flows/b.py": "from devices.sim import SimBarcodeReader",
        "devices/c.py": "from kiosk import app",
        "kiosk/d.py": "from kivy.app import App",
        "kiosk/e.py": "import backoffice.app",
        "backoffice/f.py": "from flows.ports import BackOffice",
        "kiosk/ui/g.py": "from devices.sim.printer import SimReceiptPrinter",
    }
    for rel, line in cases.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(line + "\n")
    (tmp_path / "flows/ok.py").write_text("from devices.contract import Completion\n")
    (tmp_path / "kiosk/ui/ok.py").write_text("from kivy.app import App\n")
    found = violations(tmp_path)
    for rel in cases:
        assert any(v.startswith(rel) for v in found), rel
    assert not any("ok.py" in v for v in found)
