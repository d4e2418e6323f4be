"""Trust anchors for passive authentication: the CSCA certificates of the issuing states.

The operator configures one path: a PEM or DER certificate, a folder of them, or an ICAO CSCA
master list (ICAO 9303 Part 12 section 9: CMS SignedData over a CscaMasterList, content type
2.23.136.1.1.2). A master list's own signature is checked, and its signer must be issued by a
CSCA inside the list: that proves the file is intact, not that its publisher is trustworthy,
which is the operator's choice of file.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from asn1crypto import cms, core
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from devices.emrtd.passive_auth import (
    ASN1_ERRORS,
    CERTIFICATE_ERRORS,
    SignatureError,
    issued_by,
    signer_certificate,
    usable_certificate,
    verify_signer_info,
)

OID_CSCA_MASTER_LIST = "2.23.136.1.1.2"
CERT_SUFFIXES = frozenset({".pem", ".crt", ".cer", ".der"})
MASTER_LIST_SUFFIXES = frozenset({".ml"})


class TrustStoreError(ValueError):
    """A trust-anchor file or folder cannot be used; the message names the path."""


class _RawCertificates(core.SetOf):
    # Kept as raw DER so one odd certificate does not stop the rest from loading.
    _child_spec = core.Any


class CscaMasterList(core.Sequence):
    _fields = [
        ("version", core.Integer),
        ("cert_list", _RawCertificates),
    ]


class TrustStore:
    """A set of CSCA certificates, looked up by the issuer name of a document signer."""

    def __init__(self, certificates: Iterable[x509.Certificate] = (), skipped: int = 0) -> None:
        unique: dict[bytes, x509.Certificate] = {}
        for cert in certificates:
            unique.setdefault(cert.fingerprint(hashes.SHA256()), cert)
        self.certificates: tuple[x509.Certificate, ...] = tuple(unique.values())
        # Certificates in a master list that the crypto library could not parse.
        self.skipped = skipped

    @classmethod
    def load(cls, path: str | Path, *, verify_master_list: bool = True) -> TrustStore:
        """A PEM/DER certificate file, a master list (.ml), or a folder of either."""
        path = Path(path)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file()
                           and p.suffix.lower() in CERT_SUFFIXES | MASTER_LIST_SUFFIXES)
            if not files:
                raise TrustStoreError(f"{path}: no certificate or master list files "
                                      "(.pem .crt .cer .der .ml)")
        elif path.is_file():
            files = [path]
        else:
            raise TrustStoreError(f"{path}: no such file or folder")
        certificates: list[x509.Certificate] = []
        skipped = 0
        for file in files:
            found, bad = _load_file(file, verify_master_list)
            certificates.extend(found)
            skipped += bad
        return cls(certificates, skipped)

    def issuers_of(self, cert: x509.Certificate) -> list[x509.Certificate]:
        """CSCAs whose subject is ``cert``'s issuer; those whose key identifier matches the
        certificate's authority key identifier first (a CSCA renewed under the same name)."""
        named = [c for c in self.certificates if c.subject == cert.issuer]
        wanted = _authority_key_id(cert)
        if wanted is None:
            return named
        return sorted(named, key=lambda c: _subject_key_id(c) != wanted)

    def __len__(self) -> int:
        return len(self.certificates)

    def __iter__(self) -> Iterator[x509.Certificate]:
        return iter(self.certificates)

    def __repr__(self) -> str:
        return f"TrustStore({len(self.certificates)} CSCA certificates)"


def _authority_key_id(cert: x509.Certificate) -> bytes | None:
    try:
        ext = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    except (x509.ExtensionNotFound, *CERTIFICATE_ERRORS):
        return None
    return ext.value.key_identifier


def _subject_key_id(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except (x509.ExtensionNotFound, *CERTIFICATE_ERRORS):
        return None


def _load_file(path: Path, verify_master_list: bool) -> tuple[list[x509.Certificate], int]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TrustStoreError(f"{path}: cannot read ({exc.strerror})") from None
    if path.suffix.lower() in MASTER_LIST_SUFFIXES:
        return load_master_list(data, path, verify=verify_master_list)
    if b"-----BEGIN" in data:
        try:
            pems = x509.load_pem_x509_certificates(data)
        except ValueError:
            raise TrustStoreError(f"{path}: not a PEM certificate") from None
        certs = [usable_certificate(c.public_bytes(serialization.Encoding.DER)) for c in pems]
        if None in certs:
            raise TrustStoreError(f"{path}: a certificate's names or key cannot be decoded")
        return [c for c in certs if c is not None], 0
    cert = usable_certificate(data)
    if cert is not None:
        return [cert], 0
    try:  # a master list saved under a certificate suffix
        return load_master_list(data, path, verify=verify_master_list)
    except TrustStoreError:
        raise TrustStoreError(f"{path}: neither a DER certificate nor a CSCA master list") \
            from None


def load_master_list(data: bytes, path: Path | str = "<master list>", *,
                     verify: bool = True) -> tuple[list[x509.Certificate], int]:
    """The CSCA certificates of a master list and how many of them could not be parsed."""
    try:
        info = cms.ContentInfo.load(data, strict=True)
        if info["content_type"].native != "signed_data":
            raise TrustStoreError(f"{path}: not a CMS SignedData")
        signed = info["content"]
        encap = signed["encap_content_info"]
        if encap["content_type"].dotted != OID_CSCA_MASTER_LIST:
            raise TrustStoreError(f"{path}: SignedData content is not a CSCA master list")
        content = encap["content"].native
        if not isinstance(content, bytes):
            raise TrustStoreError(f"{path}: master list content missing")
        raw = [c.dump() for c in CscaMasterList.load(content, strict=True)["cert_list"]]
        signer_infos = signed["signer_infos"]
        signer_info = signer_infos[0] if len(signer_infos) == 1 else None
        signer = signer_certificate(signed, signer_info) if signer_info is not None else None
    except TrustStoreError:
        raise
    except ASN1_ERRORS as exc:
        raise TrustStoreError(f"{path}: malformed master list ({type(exc).__name__})") from None

    certificates: list[x509.Certificate] = []
    skipped = 0
    for der in raw:
        cert = usable_certificate(der)
        if cert is None:
            skipped += 1
        else:
            certificates.append(cert)
    if not certificates:
        raise TrustStoreError(f"{path}: master list holds no usable certificate")
    if verify:
        if signer_info is None or signer is None:
            raise TrustStoreError(f"{path}: master list signer certificate missing")
        try:
            verify_signer_info(signer_info, OID_CSCA_MASTER_LIST, content, signer)
        except SignatureError as exc:
            raise TrustStoreError(f"{path}: master list signature: {exc}") from None
        if not any(issued_by(signer, csca) for csca in certificates):
            raise TrustStoreError(f"{path}: master list signer is not issued by a CSCA "
                                  "in the list")
    return certificates, skipped
