"""Renderers for PrintDocument: a PDF (reportlab, CJK font embedded) for CUPS and PDF-fed
printers, a 1-bit raster for ESC/POS thermal heads. Drivers pick the one their transport takes;
flows never call these (they build documents, devices/printer.py)."""

from devices.printing.fonts import FONT_PATH
from devices.printing.pdf import RenderedPdf, layout_pdf, render_pdf
from devices.printing.raster import render_raster

__all__ = ["FONT_PATH", "RenderedPdf", "layout_pdf", "render_pdf", "render_raster"]
