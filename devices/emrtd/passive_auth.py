"""Passive authentication of an eMRTD (ICAO 9303 Part 11 section 5.1, Part 10 section 4.6.2).

EF.SOD is a CMS SignedData whose content is the LDSSecurityObject: a hash of every data group,
signed by the document signer (DS), whose certificate the issuing state's CSCA signed. The
kiosk recomputes the hashes of the files it read, checks the DS signature and, when trust
anchors are configured, the DS certificate against them. Only all three make the data
``VERIFIED``; a good signature without an anchor is ``NOT_VERIFIED``; a bad hash or signature
is ``FAILED``. Details name data groups and certificates, never personal data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from asn1crypto import algos, cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from devices.emrtd.lds import LdsError
from devices.emrtd.tlv import TlvError, parse_one
from devices.identity import Authenticity

if TYPE_CHECKING:
    from devices.emrtd.trust import TrustStore

OID_LDS_SECURITY_OBJECT = "2.23.136.1.1.1"
TAG_SOD = 0x77

# Errors asn1crypto raises while lazily decoding a malformed structure.
ASN1_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError)


class LdsVersionInfo(core.Sequence):
    _fields = [
        ("lds_version", core.PrintableString),
        ("unicode_version", core.PrintableString),
    ]


class DataGroupHash(core.Sequence):
    _fields = [
        ("data_group_number", core.Integer),
        ("data_group_hash_value", core.OctetString),
    ]


class DataGroupHashValues(core.SequenceOf):
    _child_spec = DataGroupHash


class LdsSecurityObject(core.Sequence):
    """LDSSecurityObject (9303 Part 10, 4.6.2.2): version 0 (V0) or 1 (V1, with version info)."""

    _fields = [
        ("version", core.Integer),
        ("hash_algorithm", algos.DigestAlgorithm),
        ("data_group_hash_values", DataGroupHashValues),
        ("lds_version_info", LdsVersionInfo, {"optional": True}),
    ]


HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1, "sha224": hashes.SHA224, "sha256": hashes.SHA256,
    "sha384": hashes.SHA384, "sha512": hashes.SHA512,
}

# Signature algorithm OID -> (scheme, hash name or None when the digest algorithm decides).
_RSA, _PSS, _ECDSA, _ECDSA_PLAIN = "rsa", "pss", "ecdsa", "ecdsa-plain"
SIGNATURE_OIDS: dict[str, tuple[str, str | None]] = {
    "1.2.840.113549.1.1.1": (_RSA, None),  # rsaEncryption used as a signature algorithm
    "1.2.840.113549.1.1.5": (_RSA, "sha1"),
    "1.3.14.3.2.29": (_RSA, "sha1"),
    "1.2.840.113549.1.1.14": (_RSA, "sha224"),
    "1.2.840.113549.1.1.11": (_RSA, "sha256"),
    "1.2.840.113549.1.1.12": (_RSA, "sha384"),
    "1.2.840.113549.1.1.13": (_RSA, "sha512"),
    "1.2.840.113549.1.1.10": (_PSS, None),
    "1.2.840.10045.2.1": (_ECDSA, None),  # ecPublicKey, seen in some issuers' SODs
    "1.2.840.10045.4.1": (_ECDSA, "sha1"),
    "1.2.840.10045.4.3.1": (_ECDSA, "sha224"),
    "1.2.840.10045.4.3.2": (_ECDSA, "sha256"),
    "1.2.840.10045.4.3.3": (_ECDSA, "sha384"),
    "1.2.840.10045.4.3.4": (_ECDSA, "sha512"),
    # BSI TR-03111 plain ECDSA (r||s), used by German documents.
    "0.4.0.127.0.7.1.1.4.1.1": (_ECDSA_PLAIN, "sha1"),
    "0.4.0.127.0.7.1.1.4.1.2": (_ECDSA_PLAIN, "sha224"),
    "0.4.0.127.0.7.1.1.4.1.3": (_ECDSA_PLAIN, "sha256"),
    "0.4.0.127.0.7.1.1.4.1.4": (_ECDSA_PLAIN, "sha384"),
    "0.4.0.127.0.7.1.1.4.1.5": (_ECDSA_PLAIN, "sha512"),
}


class SignatureError(ValueError):
    """A CMS signature did not verify; the message says which step failed."""


@dataclass(frozen=True, repr=False)
class SecurityObject:
    """The parsed EF.SOD."""

    hash_algorithm: str
    hashes: dict[int, bytes]
    lds_version: str | None  # "0108" from a V1 security object
    econtent: bytes  # the signed LDSSecurityObject bytes
    signed_data: cms.SignedData
    signer_info: cms.SignerInfo
    ds_certificate: x509.Certificate | None

    def __repr__(self) -> str:
        return (f"SecurityObject({self.hash_algorithm}, data groups "
                f"{sorted(self.hashes)}, ds={self.ds_certificate is not None})")


@dataclass(frozen=True)
class PassiveAuthResult:
    status: Authenticity
    hashes_ok: dict[int, bool] = field(default_factory=dict)
    signature_ok: bool = False
    chain_ok: bool | None = None  # None: not checked (no trust store, or signature failed)
    detail: str = ""
    ds_subject: str = ""


def hash_bytes(algorithm: str, data: bytes) -> bytes:
    try:
        digest = hashes.Hash(HASHES[algorithm]())
    except KeyError:
        raise SignatureError(f"unsupported hash algorithm {algorithm}") from None
    digest.update(data)
    return digest.finalize()


def parse_sod(sod: bytes) -> SecurityObject:
    """Decode EF.SOD; LdsError when it is not a SignedData over an LDSSecurityObject."""
    try:
        wrapper = parse_one(bytes(sod), allow_trailing=True)
    except TlvError as exc:
        raise LdsError(f"EF.SOD: {exc}") from None
    if wrapper.tag != TAG_SOD:
        raise LdsError(f"EF.SOD: starts with tag {wrapper.tag:X}, expected 77")
    try:
        return _security_object(wrapper.value)
    except LdsError:
        raise
    except ASN1_ERRORS as exc:
        raise LdsError(f"EF.SOD: malformed ASN.1 ({type(exc).__name__})") from None


def _security_object(der: bytes) -> SecurityObject:
    info = cms.ContentInfo.load(der, strict=True)
    if info["content_type"].native != "signed_data":
        raise LdsError("EF.SOD: content is not CMS SignedData")
    signed = info["content"]
    encap = signed["encap_content_info"]
    if encap["content_type"].dotted != OID_LDS_SECURITY_OBJECT:
        raise LdsError("EF.SOD: encapsulated content is not an LDSSecurityObject")
    econtent = encap["content"].native
    if not isinstance(econtent, bytes):
        raise LdsError("EF.SOD: LDSSecurityObject content missing")
    so = LdsSecurityObject.load(econtent, strict=True)
    algorithm = so["hash_algorithm"]["algorithm"].native
    if algorithm not in HASHES:
        raise LdsError(f"EF.SOD: unsupported hash algorithm {algorithm}")
    values: dict[int, bytes] = {}
    for entry in so["data_group_hash_values"]:
        number = entry["data_group_number"].native
        if not 1 <= number <= 16 or number in values:
            raise LdsError("EF.SOD: bad or repeated data-group number")
        values[number] = entry["data_group_hash_value"].native
    version_info = so["lds_version_info"]
    lds_version = None if isinstance(version_info, core.Void) else version_info[
        "lds_version"].native
    signer_infos = signed["signer_infos"]
    if len(signer_infos) != 1:
        raise LdsError(f"EF.SOD: {len(signer_infos)} signer infos, expected 1")
    signer_info = signer_infos[0]
    return SecurityObject(
        hash_algorithm=algorithm, hashes=values, lds_version=lds_version, econtent=econtent,
        signed_data=signed, signer_info=signer_info,
        ds_certificate=signer_certificate(signed, signer_info))


def signer_certificate(signed: cms.SignedData,
                       signer_info: cms.SignerInfo) -> x509.Certificate | None:
    """The certificate in SignedData.certificates that the SignerInfo names."""
    candidates = [c.chosen for c in signed["certificates"] or []
                  if c.name == "certificate"]
    sid = signer_info["sid"]
    for cert in candidates:
        if _matches(sid, cert):
            return _to_cryptography(cert)
    # A sole certificate whose name encoding differs from the sid is still the DS; the
    # signature check decides whether it really signed.
    return _to_cryptography(candidates[0]) if len(candidates) == 1 else None


def _matches(sid: cms.SignerIdentifier, cert: asn1_x509.Certificate) -> bool:
    if sid.name == "issuer_and_serial_number":
        return (sid.chosen["issuer"] == cert.issuer
                and sid.chosen["serial_number"].native == cert.serial_number)
    return sid.chosen.native == cert.key_identifier


def _to_cryptography(cert: asn1_x509.Certificate) -> x509.Certificate | None:
    return usable_certificate(cert.dump())


# What cryptography raises for a certificate it parses lazily and finds broken later.
CERTIFICATE_ERRORS = (ValueError, TypeError, UnsupportedAlgorithm, x509.InvalidVersion,
                      x509.DuplicateExtension, x509.UnsupportedGeneralNameType)


def usable_certificate(der: bytes) -> x509.Certificate | None:
    """The certificate if its names and key parse (cryptography decodes them lazily)."""
    try:
        cert = x509.load_der_x509_certificate(der)
        cert.subject.rfc4514_string()
        cert.issuer.rfc4514_string()
        cert.public_key()
    except CERTIFICATE_ERRORS:
        return None
    return cert


def verify_signer_info(signer_info: cms.SignerInfo, content_type: str, econtent: bytes,
                       certificate: x509.Certificate) -> None:
    """Check a CMS SignerInfo over ``econtent`` (RFC 5652 5.4); SignatureError if it fails."""
    try:
        digest_name = signer_info["digest_algorithm"]["algorithm"].native
        attrs = signer_info["signed_attrs"]
        if isinstance(attrs, core.Void):
            signed_bytes = econtent
        else:
            _check_signed_attrs(attrs, content_type, hash_bytes(digest_name, econtent))
            # The signature covers the attributes as a SET (tag 31), in their original
            # encoding: re-encoding could reorder a non-canonical set and break it.
            dumped = attrs.dump()
            signed_bytes = b"\x31" + dumped[1:]
        verify_signature(certificate.public_key(), signer_info["signature"].native,
                         signed_bytes, signer_info["signature_algorithm"], digest_name)
    except SignatureError:
        raise
    except (UnsupportedAlgorithm, *ASN1_ERRORS) as exc:
        raise SignatureError(f"signer info not usable ({type(exc).__name__})") from None


def _check_signed_attrs(attrs: cms.CMSAttributes, content_type: str, digest: bytes) -> None:
    found_digest = False
    for attr in attrs:
        kind = attr["type"].dotted
        values = attr["values"]
        if kind == "1.2.840.113549.1.9.3":  # contentType
            if len(values) != 1 or values[0].dotted != content_type:
                raise SignatureError("signed contentType attribute does not match")
        elif kind == "1.2.840.113549.1.9.4":  # messageDigest
            if len(values) != 1 or values[0].native != digest:
                raise SignatureError("messageDigest does not match the signed content")
            found_digest = True
    if not found_digest:
        raise SignatureError("signed attributes lack messageDigest")


def verify_signature(public_key: object, signature: bytes, data: bytes,
                     algorithm: algos.SignedDigestAlgorithm, digest_name: str) -> None:
    """RSA PKCS#1 v1.5, RSA-PSS, ECDSA (X9.62 DER or BSI plain r||s)."""
    oid = algorithm["algorithm"].dotted
    if oid not in SIGNATURE_OIDS:
        raise SignatureError(f"unsupported signature algorithm {oid}")
    scheme, hash_name = SIGNATURE_OIDS[oid]
    hash_name = hash_name or digest_name
    try:
        if scheme in (_RSA, _PSS):
            if not isinstance(public_key, rsa.RSAPublicKey):
                raise SignatureError("RSA signature but the signer key is not RSA")
            if scheme == _PSS:
                pss_padding, hash_name = _pss(algorithm["parameters"])
                public_key.verify(signature, data, pss_padding, _hash(hash_name))
            else:
                public_key.verify(signature, data, padding.PKCS1v15(), _hash(hash_name))
        else:
            if not isinstance(public_key, ec.EllipticCurvePublicKey):
                raise SignatureError("ECDSA signature but the signer key is not EC")
            if scheme == _ECDSA_PLAIN:
                signature = _plain_to_der(signature)
            public_key.verify(signature, data, ec.ECDSA(_hash(hash_name)))
    except InvalidSignature:
        raise SignatureError("signature does not verify with the signer key") from None


def _hash(name: str) -> hashes.HashAlgorithm:
    try:
        return HASHES[name]()
    except KeyError:
        raise SignatureError(f"unsupported hash algorithm {name}") from None


def _pss(params: algos.RSASSAPSSParams) -> tuple[padding.PSS, str]:
    hash_name = params["hash_algorithm"]["algorithm"].native
    mgf = params["mask_gen_algorithm"]
    if mgf["algorithm"].native != "mgf1":
        raise SignatureError("RSA-PSS with a mask generation other than MGF1")
    mgf_hash = mgf["parameters"]["algorithm"].native
    return padding.PSS(mgf=padding.MGF1(_hash(mgf_hash)),
                       salt_length=params["salt_length"].native), hash_name


def _plain_to_der(signature: bytes) -> bytes:
    if not signature or len(signature) % 2:
        raise SignatureError("plain ECDSA signature has odd length")
    half = len(signature) // 2
    return encode_dss_signature(int.from_bytes(signature[:half], "big"),
                                int.from_bytes(signature[half:], "big"))


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True when ``issuer``'s key signed ``cert`` (names must match too)."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, *CERTIFICATE_ERRORS):
        return False
    return True


def valid_at(cert: x509.Certificate, at: datetime) -> bool:
    return cert.not_valid_before_utc <= at <= cert.not_valid_after_utc


def verify(sod: bytes, files: Mapping[int, bytes], trust: TrustStore | None,
           at: datetime | None = None) -> PassiveAuthResult:
    """Passive authentication of the data groups in ``files`` (number -> raw file content)."""
    at = _utc(at)
    try:
        so = parse_sod(sod)
    except LdsError as exc:
        return PassiveAuthResult(Authenticity.FAILED, detail=str(exc))

    hashes_ok = {number: _hash_matches(so, number, content)
                 for number, content in sorted(files.items())}
    problems = [f"DG{n} not covered by the SOD" if n not in so.hashes
                else f"DG{n} hash mismatch" for n, ok in hashes_ok.items() if not ok]

    ds = so.ds_certificate
    ds_subject = ds.subject.rfc4514_string() if ds is not None else ""
    signature_ok = False
    if ds is None:
        problems.append("no usable document signer certificate in the SOD")
    else:
        try:
            verify_signer_info(so.signer_info, OID_LDS_SECURITY_OBJECT, so.econtent, ds)
            signature_ok = True
        except SignatureError as exc:
            problems.append(f"SOD signature: {exc}")

    if not all(hashes_ok.values()) or (ds is not None and not signature_ok):
        return PassiveAuthResult(Authenticity.FAILED, hashes_ok, signature_ok, None,
                                 "; ".join(problems), ds_subject)
    if ds is None or not signature_ok:  # no DS certificate: cannot tell either way
        return PassiveAuthResult(Authenticity.NOT_VERIFIED, hashes_ok, False, None,
                                 "; ".join(problems), ds_subject)

    if trust is None or len(trust) == 0:
        chain_ok, chain_detail = None, "no CSCA configured"
    else:
        chain_ok, chain_detail = check_chain(ds, trust, at)
    if not hashes_ok:
        return PassiveAuthResult(Authenticity.NOT_VERIFIED, hashes_ok, True, chain_ok,
                                 "no data groups to check", ds_subject)
    status = Authenticity.VERIFIED if chain_ok else Authenticity.NOT_VERIFIED
    return PassiveAuthResult(status, hashes_ok, True, chain_ok, chain_detail, ds_subject)


def _hash_matches(so: SecurityObject, number: int, content: bytes) -> bool:
    expected = so.hashes.get(number)
    return expected is not None and hash_bytes(so.hash_algorithm, bytes(content)) == expected


def check_chain(ds: x509.Certificate, trust: TrustStore, at: datetime) -> tuple[bool, str]:
    """Whether a configured CSCA signed ``ds`` and both are valid at ``at``; with a reason."""
    at = _utc(at)
    if not valid_at(ds, at):
        return False, f"DS certificate not valid on {at.date().isoformat()}"
    candidates = trust.issuers_of(ds)
    if not candidates:
        return False, "DS not signed by any configured CSCA (none has its issuer's name)"
    signers = [csca for csca in candidates if issued_by(ds, csca)]
    if not signers:
        # Same name, other key: typically a CSCA renewal that is not configured yet.
        return False, "DS not signed by any configured CSCA (issuer name matches, key does not)"
    if not any(valid_at(csca, at) for csca in signers):
        return False, f"CSCA certificate not valid on {at.date().isoformat()}"
    return True, ""


def _utc(at: datetime | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
