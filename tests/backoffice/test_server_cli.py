"""The server's TLS options refuse what cannot work before anything listens (mutual TLS itself
is tested against the running server in tests/test_client.py)."""

from __future__ import annotations

import pytest

from backoffice.cli import main


@pytest.mark.parametrize("argv, message", [
    (["--tls-cert", "{pem}"], "--tls-cert and --tls-key go together"),
    (["--client-ca", "{pem}"], "--client-ca needs --tls-cert"),
    (["--tls-cert", "{pem}", "--tls-key", "{missing}"], "no such file"),
])
def test_tls_options_that_cannot_work_are_refused(argv, message, tmp_path, capsys):
    pem = tmp_path / "x.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n")
    args = [a.format(pem=pem, missing=tmp_path / "nope.pem") for a in argv]
    assert main(["--port", "1", *args]) == 2
    assert message in capsys.readouterr().err
