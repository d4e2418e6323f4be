"""Printers behind CUPS (pycups): the A4 document printer, optionally a receipt printer."""
