"""Ask an IPP printer itself for its state (Get-Printer-Attributes).

CUPS learns a printer's paper and door state only from the backend of a running job, so
between jobs its printer-state-reasons can be stale. When a queue's device URI is ``ipp://``
or ``ipps://`` the printer is an IPP server of its own and can be asked directly. pycups'
``IPPRequest`` encodes the request and decodes the answer; the HTTP round trip is plain
``http.client`` because pycups' Connection only talks to the CUPS server.
"""

from __future__ import annotations

import http.client
import io
import ssl
from urllib.parse import urlsplit

import cups

from devices.cups.state import PrinterReport

REQUESTED = ("printer-state", "printer-state-reasons", "printer-is-accepting-jobs")
_IPP_SCHEMES = ("ipp", "ipps")


class IppError(Exception):
    """The printer could not be asked or gave no usable answer (reason in the message)."""


def is_ipp_uri(device_uri: str) -> bool:
    return urlsplit(device_uri).scheme.lower() in _IPP_SCHEMES


def _encode(printer_uri: str) -> bytes:
    request = cups.IPPRequest(cups.IPP_OP_GET_PRINTER_ATTRIBUTES)
    operation = cups.IPP_TAG_OPERATION
    request.add(cups.IPPAttribute(operation, cups.IPP_TAG_CHARSET, "attributes-charset", "utf-8"))
    request.add(cups.IPPAttribute(operation, cups.IPP_TAG_LANGUAGE,
                                  "attributes-natural-language", "en"))
    request.add(cups.IPPAttribute(operation, cups.IPP_TAG_URI, "printer-uri", printer_uri))
    request.add(cups.IPPAttribute(operation, cups.IPP_TAG_KEYWORD, "requested-attributes",
                                  list(REQUESTED)))
    out = bytearray()

    def write(chunk: bytes) -> int:
        out.extend(chunk)
        return len(chunk)

    request.writeIO(write)
    return bytes(out)


def _decode(body: bytes) -> PrinterReport:
    response = cups.IPPRequest()
    stream = io.BytesIO(body)
    if response.readIO(stream.read) != cups.IPP_STATE_DATA:
        raise IppError("truncated IPP response")
    if response.statuscode >= 0x0100:  # 0x00xx successful-*, anything else a refusal
        raise IppError(f"IPP status 0x{response.statuscode:04x}")
    values: dict[str, list[object]] = {}
    for attribute in response.attributes:
        if attribute.group_tag == cups.IPP_TAG_PRINTER:
            values[attribute.name] = list(attribute.values)
    if "printer-state" not in values:
        raise IppError("no printer-state in the answer")
    accepting = values.get("printer-is-accepting-jobs", [True])[0]
    reasons = [str(v) for v in values.get("printer-state-reasons", [])]
    return PrinterReport.of(int(values["printer-state"][0]), reasons, bool(accepting),
                            source="device")


def query_printer(device_uri: str, timeout: float = 2.0) -> PrinterReport | None:
    """The printer's own printer-state / printer-state-reasons, or None when ``device_uri`` is
    not an IPP printer (``cups-pdf:/``, ``usb://``, ``socket://``, ``dnssd://``, a test backend):
    then CUPS' last word is all there is. Raises IppError when an IPP printer does not answer.
    """
    parts = urlsplit(device_uri)
    if parts.scheme.lower() not in _IPP_SCHEMES or not parts.hostname:
        return None
    port = parts.port or 631
    resource = parts.path or "/ipp/print"
    printer_uri = f"{parts.scheme}://{parts.netloc}{resource}"
    connection: http.client.HTTPConnection
    if parts.scheme.lower() == "ipps":
        # Printers serve self-signed certificates (CUPS itself trusts on first use); this asks
        # for state only and sends nothing of the citizen's, so an unverified channel will do.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        connection = http.client.HTTPSConnection(parts.hostname, port, timeout=timeout,
                                                 context=context)
    else:
        connection = http.client.HTTPConnection(parts.hostname, port, timeout=timeout)
    try:
        connection.request("POST", resource, body=_encode(printer_uri),
                           headers={"Content-Type": "application/ipp"})
        response = connection.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise IppError(f"{parts.hostname}:{port} did not answer: {type(exc).__name__}") from exc
    finally:
        connection.close()
    if response.status != 200:
        raise IppError(f"HTTP {response.status} from {parts.hostname}:{port}")
    return _decode(body)
