"""Test passports signed by a test PKI (test-only; nothing here is a real document or key).

``make_test_pki`` builds a CSCA and a document signer; ``make_passport`` builds EF.COM, DG1,
DG2 (an ISO/IEC 19794-5 record around a JPEG) and EF.SOD signed by the DS. Keys are cached
per process because RSA key generation is the slow part.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from asn1crypto import algos, cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID
from PIL import Image, ImageDraw

from devices.emrtd import tlv
from devices.emrtd.files import EF
from devices.emrtd.passive_auth import (
    OID_LDS_SECURITY_OBJECT,
    DataGroupHash,
    LdsSecurityObject,
    LdsVersionInfo,
)
from devices.emrtd.trust import TrustStore

# ICAO 9303 Part 4 specimen (fictional state Utopia): valid check digits.
SPECIMEN_TD3 = [
    "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
    "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
]

PrivateKey = CertificateIssuerPrivateKeyTypes

_HASHES = {"sha1": hashes.SHA1, "sha224": hashes.SHA224, "sha256": hashes.SHA256,
           "sha384": hashes.SHA384, "sha512": hashes.SHA512}


def check_digit(text: str) -> str:
    """ICAO 9303 Part 3 check digit (weights 7, 3, 1)."""
    total = 0
    for i, ch in enumerate(text):
        if ch.isdigit():
            value = int(ch)
        elif ch.isalpha():
            value = ord(ch) - ord("A") + 10
        else:
            value = 0
        total += value * (7, 3, 1)[i % 3]
    return str(total % 10)


def permit_td1(number: str = "C12345678", birth: str = "900101", sex: str = "M",
               expiry: str = "300101", name: str = "ZHANG<<SAN") -> list[str]:
    """A made-up card-format (TD1) travel permit in the style of 往来港澳通行证."""
    line1 = ("CSCHN" + number + check_digit(number)).ljust(30, "<")
    body = birth + check_digit(birth) + sex + expiry + check_digit(expiry) + "CHN"
    line2 = body.ljust(29, "<")
    composite = line1[5:30] + line2[0:7] + line2[8:15] + line2[18:29]
    return [line1, line2 + check_digit(composite), name.ljust(30, "<")]


# --- keys and certificates -------------------------------------------------------------

@functools.cache
def cached_key(kind: str, label: str) -> PrivateKey:
    """One key per (kind, label) per process: "rsa2048", "rsa3072", "p256", "p384"."""
    if kind.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[3:]))
    curves = {"p256": ec.SECP256R1(), "p384": ec.SECP384R1(), "bp256": ec.BrainpoolP256R1()}
    return ec.generate_private_key(curves[kind])


@dataclass(frozen=True)
class TestPki:
    __test__ = False  # not a pytest test class

    csca_cert: x509.Certificate
    csca_key: PrivateKey
    ds_cert: x509.Certificate
    ds_key: PrivateKey
    csca_path: Path | None = None  # PEM of the CSCA when a folder was given

    def trust_store(self) -> TrustStore:
        return TrustStore([self.csca_cert])


def _name(country: str, common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, country),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test Passport Authority"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def make_certificate(subject: x509.Name, subject_key: PrivateKey, issuer: x509.Name,
                     issuer_key: PrivateKey, not_before: datetime, not_after: datetime,
                     ca: bool, serial: int) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(subject_key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None),
                       critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(subject_key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer_key.public_key()), critical=False)
        .add_extension(x509.KeyUsage(
            digital_signature=not ca, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
            encipher_only=False, decipher_only=False), critical=True)
    )
    return builder.sign(issuer_key, hashes.SHA256())


@functools.cache
def _pki(country: str, label: str, csca_kind: str, ds_kind: str,
         ds_days: int) -> tuple[x509.Certificate, PrivateKey, x509.Certificate, PrivateKey]:
    # Whole minutes so two PKIs built in one run have comparable dates.
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    csca_key = cached_key(csca_kind, f"csca-{label}")
    ds_key = cached_key(ds_kind, f"ds-{label}")
    csca_name = _name(country, f"CSCA {label}")
    csca = make_certificate(csca_name, csca_key, csca_name, csca_key, now - timedelta(days=30),
                            now + timedelta(days=15 * 365), ca=True, serial=1)
    ds = make_certificate(_name(country, f"DS {label}"), ds_key, csca_name, csca_key,
                          now - timedelta(days=1), now + timedelta(days=ds_days), ca=False,
                          serial=2)
    return csca, csca_key, ds, ds_key


def make_test_pki(tmp_path: Path | None = None, *, label: str = "main", country: str = "UT",
                  csca_key: str = "rsa2048", ds_key: str = "p256",
                  ds_days: int = 3650) -> TestPki:
    """A CSCA and a DS it issued. Same arguments, same PKI (cached); another ``label`` gives
    another CSCA with the same country, so its name differs only in the common name."""
    csca, c_key, ds, d_key = _pki(country, label, csca_key, ds_key, ds_days)
    path = None
    if tmp_path is not None:
        path = Path(tmp_path) / f"csca-{label}.pem"
        path.write_bytes(csca.public_bytes(serialization.Encoding.PEM))
    return TestPki(csca, c_key, ds, d_key, path)


# --- data groups ------------------------------------------------------------------------

def make_com(tags: tuple[int, ...] = (0x61, 0x75), lds_version: str = "0107",
             unicode_version: str = "040000") -> bytes:
    return tlv.encode(0x60, tlv.encode(0x5F01, lds_version.encode())
                      + tlv.encode(0x5F36, unicode_version.encode())
                      + tlv.encode(0x5C, bytes(tags)))


def make_dg1(mrz_lines: list[str]) -> bytes:
    return tlv.encode(0x61, tlv.encode(0x5F1F, "".join(mrz_lines).encode("ascii")))


def facial_record(image: bytes, width: int, height: int, image_type: int = 0,
                  feature_points: int = 0) -> bytes:
    """ISO/IEC 19794-5:2005 facial record with one image."""
    image_info = (bytes([0x01, image_type]) + width.to_bytes(2, "big")
                  + height.to_bytes(2, "big") + bytes([0x01, 0x02]) + bytes(4))
    points = b"".join(bytes([0x01, 0x0C + i % 4]) + bytes(6) for i in range(feature_points))
    facial_info = ((20 + len(points) + 12 + len(image)).to_bytes(4, "big")
                   + feature_points.to_bytes(2, "big")
                   + bytes([0, 0, 0]) + bytes(3) + bytes(2) + bytes(3) + bytes(3))
    record = facial_info + points + image_info + image
    return b"FAC\x00010\x00" + (14 + len(record)).to_bytes(4, "big") + b"\x00\x01" + record


def make_dg2(image: bytes, width: int, height: int, image_type: int = 0,
             bdb_tag: int = 0x5F2E, feature_points: int = 0) -> bytes:
    header = (tlv.encode(0x80, b"\x01\x01") + tlv.encode(0x81, b"\x02")
              + tlv.encode(0x87, b"\x01\x01") + tlv.encode(0x88, b"\x00\x08"))
    bit = tlv.encode(0x7F60, tlv.encode(0xA1, header)
                     + tlv.encode(bdb_tag, facial_record(image, width, height, image_type,
                                                         feature_points)))
    return tlv.encode(0x75, tlv.encode(0x7F61, tlv.encode(0x02, b"\x01") + bit))


@functools.lru_cache(maxsize=8)
def make_face_jpeg(size_bytes: int = 20_000, width: int = 360, height: int = 480) -> bytes:
    """A synthetic head-and-shoulders picture with noise, JPEG-encoded near ``size_bytes``."""
    img = Image.new("RGB", (width, height), (205, 215, 228))
    draw = ImageDraw.Draw(img)
    cx = width // 2
    draw.ellipse((cx - width * 0.45, height * 0.72, cx + width * 0.45, height * 1.3),
                 fill=(40, 50, 80))  # shoulders
    draw.rectangle((cx - width * 0.08, height * 0.55, cx + width * 0.08, height * 0.78),
                   fill=(222, 184, 150))  # neck
    draw.ellipse((cx - width * 0.22, height * 0.18, cx + width * 0.22, height * 0.66),
                 fill=(230, 192, 160))  # face
    draw.chord((cx - width * 0.24, height * 0.12, cx + width * 0.24, height * 0.5), 180, 360,
               fill=(30, 25, 20))  # hair
    for dx in (-0.09, 0.09):
        ex = cx + width * dx
        draw.ellipse((ex - 12, height * 0.38 - 6, ex + 12, height * 0.38 + 6), fill="white")
        draw.ellipse((ex - 5, height * 0.38 - 5, ex + 5, height * 0.38 + 5), fill=(50, 35, 25))
    draw.line((cx, height * 0.4, cx - 6, height * 0.49, cx + 4, height * 0.5),
              fill=(180, 140, 120), width=3)
    draw.arc((cx - 30, height * 0.5, cx + 30, height * 0.57), 20, 160, fill=(150, 60, 60),
             width=4)
    rng = np.random.default_rng(9303)
    pixels = np.asarray(img, dtype=np.int16) + rng.normal(0, 10, (height, width, 1)).astype(
        np.int16)
    noisy = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))

    def encode(quality: int) -> bytes:
        out = io.BytesIO()
        noisy.save(out, "JPEG", quality=quality)
        return out.getvalue()

    low, high = 5, 95
    best = encode(low)
    while low <= high:  # the largest quality whose file still fits the budget
        mid = (low + high) // 2
        data = encode(mid)
        if len(data) <= size_bytes:
            best, low = data, mid + 1
        else:
            high = mid - 1
    return best


def image_size(image: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(image)) as opened:
        return opened.size


# --- security object ---------------------------------------------------------------------

def _digest(name: str, data: bytes) -> bytes:
    h = hashes.Hash(_HASHES[name]())
    h.update(data)
    return h.finalize()


def _sign(key: PrivateKey, data: bytes, hash_name: str, scheme: str) -> tuple[bytes, dict]:
    """Signature bytes and the asn1crypto SignedDigestAlgorithm for it."""
    h = _HASHES[hash_name]()
    if isinstance(key, rsa.RSAPrivateKey):
        if scheme == "pss":
            salt = h.digest_size
            sig = key.sign(data, padding.PSS(mgf=padding.MGF1(h), salt_length=salt), h)
            params = algos.RSASSAPSSParams({
                "hash_algorithm": {"algorithm": hash_name},
                "mask_gen_algorithm": {"algorithm": "mgf1",
                                       "parameters": {"algorithm": hash_name}},
                "salt_length": salt,
            })
            return sig, {"algorithm": "rsassa_pss", "parameters": params}
        return key.sign(data, padding.PKCS1v15(), h), {"algorithm": f"{hash_name}_rsa"}
    if isinstance(key, ec.EllipticCurvePrivateKey):
        sig = key.sign(data, ec.ECDSA(h))
        if scheme == "ecdsa-plain":
            r, s = decode_dss_signature(sig)
            size = (key.curve.key_size + 7) // 8
            plain = {"sha1": 1, "sha224": 2, "sha256": 3, "sha384": 4, "sha512": 5}[hash_name]
            return (r.to_bytes(size, "big") + s.to_bytes(size, "big"),
                    {"algorithm": f"0.4.0.127.0.7.1.1.4.1.{plain}"})
        return sig, {"algorithm": f"{hash_name}_ecdsa"}
    raise TypeError(f"unsupported test key {type(key).__name__}")


def make_sod(data_groups: dict[int, bytes], ds_cert: x509.Certificate, signing_key: PrivateKey,
             hash_algorithm: str = "sha256", scheme: str = "default",
             lds_version: str | None = "0107", include_certificate: bool = True) -> bytes:
    """EF.SOD: 77 { ContentInfo(SignedData(LDSSecurityObject)) } signed with ``signing_key``,
    naming ``ds_cert`` as signer (a different key makes a SOD whose signature fails)."""
    values = [DataGroupHash({"data_group_number": n,
                             "data_group_hash_value": _digest(hash_algorithm, content)})
              for n, content in sorted(data_groups.items())]
    so: dict = {"version": 0 if lds_version is None else 1,
                "hash_algorithm": {"algorithm": hash_algorithm},
                "data_group_hash_values": values}
    if lds_version is not None:
        so["lds_version_info"] = LdsVersionInfo({"lds_version": lds_version,
                                                 "unicode_version": "040000"})
    econtent = LdsSecurityObject(so).dump()
    info = sign_cms(OID_LDS_SECURITY_OBJECT, econtent, ds_cert, signing_key, hash_algorithm,
                    scheme, include_certificate)
    return tlv.encode(0x77, info.dump())


def sign_cms(content_type: str, econtent: bytes, signer_cert: x509.Certificate,
             signing_key: PrivateKey, hash_algorithm: str = "sha256", scheme: str = "default",
             include_certificate: bool = True) -> cms.ContentInfo:
    """A CMS SignedData over ``econtent`` with signed attributes, as ICAO 9303 uses it."""
    attrs = cms.CMSAttributes([
        {"type": "content_type", "values": [content_type]},
        {"type": "message_digest", "values": [_digest(hash_algorithm, econtent)]},
    ])
    signature, sig_alg = _sign(signing_key, attrs.dump(), hash_algorithm, scheme)
    cert = asn1_x509.Certificate.load(signer_cert.public_bytes(serialization.Encoding.DER))
    signer = cms.SignerInfo({
        "version": "v1",
        "sid": cms.SignerIdentifier({"issuer_and_serial_number": {
            "issuer": cert.issuer, "serial_number": cert.serial_number}}),
        "digest_algorithm": {"algorithm": hash_algorithm},
        "signed_attrs": attrs,
        "signature_algorithm": sig_alg,
        "signature": signature,
    })
    signed: dict = {
        "version": "v3",
        "digest_algorithms": [{"algorithm": hash_algorithm}],
        "encap_content_info": {"content_type": content_type, "content": econtent},
        "signer_infos": [signer],
    }
    if include_certificate:
        signed["certificates"] = [cert]
    return cms.ContentInfo({"content_type": "signed_data", "content": cms.SignedData(signed)})


# --- passports ---------------------------------------------------------------------------

@dataclass(frozen=True)
class TestPassport:
    __test__ = False  # not a pytest test class

    files: dict[EF, bytes]
    mrz: str  # lines joined by "\n"
    pki: TestPki
    hash_algorithm: str = "sha256"
    scheme: str = "default"

    @property
    def data_groups(self) -> dict[int, bytes]:
        """Data-group number -> raw file, as ``passive_auth.verify`` takes them."""
        return {1: self.files[EF.DG1], 2: self.files[EF.DG2]}

    @property
    def sod(self) -> bytes:
        return self.files[EF.SOD]


def make_passport(pki: TestPki, mrz_lines: list[str] | None = None,
                  face_jpeg: bytes | None = None, *, hash_algorithm: str = "sha256",
                  scheme: str = "default", lds_version: str | None = "0107",
                  include_certificate: bool = True) -> TestPassport:
    """EF.COM, DG1, DG2 and EF.SOD of a fictional passport (the ICAO specimen by default).
    ``scheme``: "default" (PKCS#1 v1.5 or ECDSA by key type), "pss", or "ecdsa-plain"."""
    lines = mrz_lines or SPECIMEN_TD3
    face = face_jpeg if face_jpeg is not None else make_face_jpeg()
    width, height = image_size(face)
    dg1, dg2 = make_dg1(lines), make_dg2(face, width, height)
    sod = make_sod({1: dg1, 2: dg2}, pki.ds_cert, pki.ds_key, hash_algorithm, scheme,
                   lds_version, include_certificate)
    files = {EF.COM: make_com(), EF.DG1: dg1, EF.DG2: dg2, EF.SOD: sod}
    return TestPassport(files, "\n".join(lines), pki, hash_algorithm, scheme)


def tampered(passport: TestPassport) -> TestPassport:
    """DG1 changed after signing (one letter of the name), so its hash no longer matches."""
    lines = passport.mrz.split("\n")
    name_line = 0 if len(lines) == 2 else 2
    start = 5 if len(lines) == 2 else 0
    line = lines[name_line]
    pos = next(i for i in range(start, len(line)) if line[i].isalpha())
    lines[name_line] = line[:pos] + ("X" if line[pos] != "X" else "Y") + line[pos + 1:]
    files = dict(passport.files)
    files[EF.DG1] = make_dg1(lines)
    return replace(passport, files=files, mrz="\n".join(lines))


def signed_by_unrelated_key(passport: TestPassport) -> TestPassport:
    """The SOD names the genuine DS certificate but was signed with a key unrelated to it."""
    ds_key = passport.pki.ds_key
    kind = "p256" if isinstance(ds_key, ec.EllipticCurvePrivateKey) else "rsa2048"
    files = dict(passport.files)
    files[EF.SOD] = make_sod({1: files[EF.DG1], 2: files[EF.DG2]}, passport.pki.ds_cert,
                             cached_key(kind, "unrelated"), passport.hash_algorithm,
                             passport.scheme)
    return replace(passport, files=files)
