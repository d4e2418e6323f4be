#!/usr/bin/env python3
"""Renders one sample of every printed document kind into docs/print/ for the README.

Fictional data (tests/printing). Roll documents as the 203 dpi thermal head prints them (the
raster renderer), A4 documents as their PDF pages (rasterised with poppler's pdftoppm, pages
side by side). Usage: .venv/bin/python scripts/render-samples.py [output-dir]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from devices.printer import Media, PrintDocument  # noqa: E402
from devices.printing import render_pdf, render_raster  # noqa: E402
from flows.documents import load_templates  # noqa: E402
from tests.printing import samples  # noqa: E402

ORDER = ["queue_ticket", "application_receipt", "progress_query", "one_time_notice",
         "certificate"]


def a4_pages(document: PrintDocument, dpi: int = 90) -> Image.Image:
    with tempfile.TemporaryDirectory() as tmp:
        pdf = Path(tmp) / "doc.pdf"
        pdf.write_bytes(render_pdf(document))
        subprocess.run(["pdftoppm", "-r", str(dpi), "-png", str(pdf), str(Path(tmp) / "p")],
                       check=True)
        pages = [Image.open(p).convert("L") for p in sorted(Path(tmp).glob("p*.png"))]
        gap = 16
        sheet = Image.new("L", (sum(p.width for p in pages) + gap * (len(pages) + 1),
                                max(p.height for p in pages) + 2 * gap), 200)
        x = gap
        for page in pages:
            sheet.paste(page, (x, gap))
            x += page.width + gap
        return sheet


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    templates = load_templates()
    # Enough materials that the notice runs onto its second page.
    data = samples(materials=24)
    for n, kind in enumerate(ORDER, 1):
        document = templates.render(kind, data[kind], job_key=f"sample-{kind}")
        if document.media is Media.A4:
            picture = a4_pages(document)
        else:
            picture = render_raster(document, 576)
        path = out / f"{n:02d}-{kind}.png"
        picture.save(path, optimize=True)
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}  "
              f"{picture.width}x{picture.height}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "print")
