from __future__ import annotations

import functools
from datetime import timedelta
from pathlib import Path

import pytest
from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.emrtd import tlv
from devices.emrtd.files import EF
from devices.emrtd.lds import LdsError
from devices.emrtd.passive_auth import PassiveAuthResult, parse_sod, verify
from devices.emrtd.trust import OID_CSCA_MASTER_LIST, TrustStore, TrustStoreError
from devices.identity import Authenticity
from tests.emrtd.factory import (
    SPECIMEN_TD3,
    TestPki,
    cached_key,
    make_certificate,
    make_passport,
    make_sod,
    make_test_pki,
    permit_td1,
    sign_cms,
    signed_by_unrelated_key,
    tampered,
)

PERSONAL = ("ERIKSSON", "ANNA", "L898902C3", "ZHANG", "C12345678")


def assert_no_personal_data(result: PassiveAuthResult) -> None:
    text = f"{result.detail} {result.ds_subject}".upper()
    assert not [p for p in PERSONAL if p in text]


@pytest.fixture(scope="module")
def pki() -> TestPki:
    return make_test_pki()


@pytest.fixture(scope="module")
def other_pki() -> TestPki:
    return make_test_pki(label="other")


def check(passport, trust, at=None) -> PassiveAuthResult:
    result = verify(passport.sod, passport.data_groups, trust, at)
    assert_no_personal_data(result)
    return result


# --- the three outcomes -----------------------------------------------------------------

def test_valid_passport_with_its_csca_is_verified(pki):
    result = check(make_passport(pki), pki.trust_store())
    assert result.status == Authenticity.VERIFIED
    assert result.hashes_ok == {1: True, 2: True}
    assert result.signature_ok and result.chain_ok
    assert result.ds_subject == "CN=DS main,O=Test Passport Authority,C=UT"


def test_without_trust_store_it_is_never_verified(pki):
    passport = make_passport(pki)
    for trust in (None, TrustStore()):
        result = check(passport, trust)
        assert result.status == Authenticity.NOT_VERIFIED
        assert result.signature_ok and result.chain_ok is None
        assert result.detail == "no CSCA configured"


def test_tampered_dg1_fails_its_hash(pki):
    passport = tampered(make_passport(pki))
    assert parse_sod(passport.sod).hashes  # the SOD itself is untouched
    result = check(passport, pki.trust_store())
    assert result.status == Authenticity.FAILED
    assert result.hashes_ok == {1: False, 2: True}
    assert result.signature_ok
    assert result.detail == "DG1 hash mismatch"


def test_tampered_dg2_fails_without_trust_store_too(pki):
    passport = make_passport(pki)
    files = passport.data_groups
    files[2] = files[2][:-1] + bytes([files[2][-1] ^ 1])
    result = verify(passport.sod, files, None)
    assert result.status == Authenticity.FAILED and result.hashes_ok[2] is False
    assert "DG2 hash mismatch" in result.detail


def test_sod_signed_by_an_unrelated_key_fails(pki):
    result = check(signed_by_unrelated_key(make_passport(pki)), pki.trust_store())
    assert result.status == Authenticity.FAILED
    assert result.hashes_ok == {1: True, 2: True}
    assert result.signature_ok is False
    assert "signature does not verify" in result.detail


def test_security_object_changed_after_signing_fails_message_digest(pki):
    passport = make_passport(pki)
    so = parse_sod(passport.sod)
    dg1_hash = so.hashes[1]
    forged_hash = bytes(len(dg1_hash))
    sod = passport.sod.replace(dg1_hash, forged_hash)
    result = verify(sod, passport.data_groups, pki.trust_store())
    assert result.status == Authenticity.FAILED
    assert result.signature_ok is False and "messageDigest" in result.detail


def test_rsa_ds_signing_with_a_key_that_is_not_rsa_fails(pki):
    rsa_pki = make_test_pki(label="rsa", ds_key="rsa2048")
    passport = make_passport(rsa_pki)
    files = dict(passport.files)
    files[EF.SOD] = make_sod(passport.data_groups, rsa_pki.ds_cert, pki.ds_key)
    result = verify(files[EF.SOD], passport.data_groups, rsa_pki.trust_store())
    assert result.status == Authenticity.FAILED
    assert "signer key is not EC" in result.detail


# --- algorithms -----------------------------------------------------------------------

@pytest.mark.parametrize(("ds_key", "scheme", "hash_algorithm"), [
    ("p256", "default", "sha256"),
    ("p256", "ecdsa-plain", "sha256"),
    ("p384", "default", "sha384"),
    ("bp256", "default", "sha224"),
    ("rsa2048", "default", "sha1"),
    ("rsa2048", "default", "sha512"),
    ("rsa2048", "pss", "sha256"),
    ("rsa2048", "pss", "sha512"),
])
def test_signature_algorithms_and_hashes(ds_key, scheme, hash_algorithm):
    pki = make_test_pki(label=f"alg-{ds_key}", ds_key=ds_key)
    passport = make_passport(pki, permit_td1(), scheme=scheme, hash_algorithm=hash_algorithm)
    so = parse_sod(passport.sod)
    assert so.hash_algorithm == hash_algorithm and sorted(so.hashes) == [1, 2]
    result = check(passport, pki.trust_store())
    assert result.status == Authenticity.VERIFIED, result.detail
    bad = check(signed_by_unrelated_key(passport), pki.trust_store())
    assert bad.status == Authenticity.FAILED and not bad.signature_ok


def test_csca_with_ecdsa_key_and_v0_security_object():
    pki = make_test_pki(label="ec-csca", csca_key="p384", ds_key="p256")
    passport = make_passport(pki, lds_version=None)
    assert parse_sod(passport.sod).lds_version is None
    assert check(passport, pki.trust_store()).status == Authenticity.VERIFIED
    assert parse_sod(make_passport(pki).sod).lds_version == "0107"


# --- the chain to a configured CSCA -----------------------------------------------------

def test_ds_from_another_csca_is_not_verified(pki, other_pki):
    result = check(make_passport(pki), other_pki.trust_store())
    assert result.status == Authenticity.NOT_VERIFIED
    assert result.signature_ok and result.chain_ok is False
    assert result.detail.startswith("DS not signed by any configured CSCA")


def test_csca_renewed_under_the_same_name_with_another_key(pki):
    # A CSCA with the genuine CSCA's name but another key: the name matches, the signature
    # on the DS certificate does not.
    key = cached_key("rsa2048", "impostor")
    impostor = make_certificate(pki.csca_cert.subject, key, pki.csca_cert.subject, key,
                                pki.csca_cert.not_valid_before_utc,
                                pki.csca_cert.not_valid_after_utc, ca=True, serial=7)
    result = check(make_passport(pki), TrustStore([impostor]))
    assert result.status == Authenticity.NOT_VERIFIED and result.chain_ok is False
    assert "key does not" in result.detail
    both = check(make_passport(pki), TrustStore([impostor, pki.csca_cert]))
    assert both.status == Authenticity.VERIFIED


def test_expired_or_not_yet_valid_ds_breaks_the_chain(pki):
    passport = make_passport(pki)
    after = pki.ds_cert.not_valid_after_utc + timedelta(days=1)
    result = check(passport, pki.trust_store(), at=after)
    assert result.chain_ok is False and result.status == Authenticity.NOT_VERIFIED
    assert result.detail == f"DS certificate not valid on {after.date().isoformat()}"
    before = pki.ds_cert.not_valid_before_utc - timedelta(minutes=1)
    assert check(passport, pki.trust_store(), at=before).chain_ok is False
    within = pki.ds_cert.not_valid_after_utc - timedelta(days=1)
    assert check(passport, pki.trust_store(), at=within.replace(tzinfo=None)).chain_ok


def test_expired_csca_breaks_the_chain():
    pki = make_test_pki(label="long-ds", ds_days=20 * 365)
    at = pki.csca_cert.not_valid_after_utc + timedelta(days=1)
    result = check(make_passport(pki), pki.trust_store(), at=at)
    assert result.chain_ok is False and "CSCA certificate not valid" in result.detail


# --- what the SOD covers ----------------------------------------------------------------

def test_a_data_group_the_sod_does_not_cover_fails(pki):
    passport = make_passport(pki)
    files = {**passport.data_groups, 3: b"\x63\x00"}
    result = verify(passport.sod, files, pki.trust_store())
    assert result.status == Authenticity.FAILED and result.hashes_ok[3] is False
    assert result.detail == "DG3 not covered by the SOD"


def test_only_the_data_groups_read_are_checked(pki):
    passport = make_passport(pki)
    result = verify(passport.sod, {1: passport.files[EF.DG1]}, pki.trust_store())
    assert result.status == Authenticity.VERIFIED and result.hashes_ok == {1: True}
    nothing = verify(passport.sod, {}, pki.trust_store())
    assert nothing.status == Authenticity.NOT_VERIFIED
    assert nothing.detail == "no data groups to check"


def test_sod_without_ds_certificate_is_not_verified(pki):
    passport = make_passport(pki, include_certificate=False)
    result = check(passport, pki.trust_store())
    assert result.status == Authenticity.NOT_VERIFIED and result.signature_ok is False
    assert "no usable document signer certificate" in result.detail
    tampered_result = check(tampered(passport), pki.trust_store())
    assert tampered_result.status == Authenticity.FAILED


@pytest.mark.parametrize(("sod", "reason"), [
    (b"", "EF.SOD"),
    (b"\x30\x03\x02\x01\x00", "expected 77"),
    (b"\x77\x03\x02\x01\x00", "malformed ASN.1"),
])
def test_malformed_sod_fails(sod, reason):
    with pytest.raises(LdsError, match=reason):
        parse_sod(sod)
    result = verify(sod, {1: b"\x61\x00"}, None)
    assert result.status == Authenticity.FAILED and reason in result.detail


def test_sod_over_other_content_is_refused(pki):
    info = sign_cms("1.2.840.113549.1.7.1", b"not a security object", pki.ds_cert, pki.ds_key)
    with pytest.raises(LdsError, match="not an LDSSecurityObject"):
        parse_sod(tlv.encode(0x77, info.dump()))


@functools.cache
def _fixed_passport():
    # One signature for every example: ECDSA signatures differ in length from run to run.
    return make_passport(make_test_pki())


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_mutated_sod_never_raises_and_never_verifies_a_changed_signature(data):
    pki = make_test_pki()
    passport = _fixed_passport()
    sod = passport.sod
    index = data.draw(st.integers(0, len(sod) - 1))
    value = data.draw(st.integers(0, 255).filter(lambda v: v != sod[index]))
    mutated = sod[:index] + bytes([value]) + sod[index + 1:]
    result = verify(mutated, passport.data_groups, pki.trust_store())
    assert isinstance(result.status, Authenticity)
    signature = parse_sod(sod).signer_info["signature"].contents
    start = sod.index(signature)
    if start <= index < start + len(signature):
        assert result.status == Authenticity.FAILED


@settings(max_examples=200)
@given(st.binary(max_size=400))
def test_random_sod_bytes_only_raise_lds_error(data):
    try:
        parse_sod(b"\x77" + bytes([min(len(data), 127)]) + data[:127])
    except LdsError:
        pass
    assert verify(data, {1: b"\x61\x00"}, None).status == Authenticity.FAILED


# --- trust stores -----------------------------------------------------------------------

def _pem(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _der(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def test_load_pem_der_and_folders(tmp_path, pki, other_pki):
    pki_on_disk = make_test_pki(tmp_path)
    assert pki_on_disk.csca_path is not None
    store = TrustStore.load(pki_on_disk.csca_path)
    assert list(store) == [pki.csca_cert]

    (tmp_path / "other.der").write_bytes(_der(other_pki.csca_cert))
    assert list(TrustStore.load(str(tmp_path / "other.der"))) == [other_pki.csca_cert]

    (tmp_path / "README.txt").write_text("not a certificate")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "dup.CRT").write_bytes(_pem(pki.csca_cert))  # duplicates collapse
    folder = TrustStore.load(tmp_path)
    assert len(folder) == 2
    assert check(make_passport(pki), folder).status == Authenticity.VERIFIED
    assert check(make_passport(other_pki), folder).status == Authenticity.VERIFIED


def test_pem_bundle(tmp_path, pki, other_pki):
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(_pem(pki.csca_cert) + _pem(other_pki.csca_cert))
    assert len(TrustStore.load(bundle)) == 2


@pytest.mark.parametrize(("name", "content", "reason"), [
    ("bad.pem", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
     "not a PEM certificate"),
    ("bad.der", b"\x30\x03\x02\x01\x00", "neither a DER certificate nor a CSCA master list"),
    ("bad.ml", b"garbage", "malformed master list"),
])
def test_invalid_files_name_the_path(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(TrustStoreError, match=reason) as err:
        TrustStore.load(path)
    assert str(path) in str(err.value)
    with pytest.raises(TrustStoreError, match=reason):  # one bad file spoils a folder
        TrustStore.load(tmp_path)


def test_missing_path_and_empty_folder(tmp_path):
    with pytest.raises(TrustStoreError, match="no such file") as err:
        TrustStore.load(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(err.value)
    with pytest.raises(TrustStoreError, match="no certificate or master list files"):
        TrustStore.load(tmp_path)


def test_issuers_of_prefers_the_matching_key_identifier(pki):
    key = cached_key("rsa2048", "impostor")
    same_name = make_certificate(pki.csca_cert.subject, key, pki.csca_cert.subject, key,
                                 pki.csca_cert.not_valid_before_utc,
                                 pki.csca_cert.not_valid_after_utc, ca=True, serial=7)
    store = TrustStore([same_name, pki.csca_cert])
    assert store.issuers_of(pki.ds_cert) == [pki.csca_cert, same_name]
    assert store.issuers_of(make_test_pki(label="other").ds_cert) == []


# --- master lists -----------------------------------------------------------------------

class _MasterList(core.Sequence):
    _fields = [("version", core.Integer), ("cert_list", core.SetOf, {"spec": core.Any})]


def make_master_list(cscas: list, signer_pki: TestPki, signing_key=None,
                     extra_raw: list[bytes] = ()) -> bytes:
    """A CSCA master list signed by a master-list signer that ``signer_pki``'s CSCA issued."""
    entries = [core.Any.load(_der(c)) for c in cscas] + [core.Any.load(r) for r in extra_raw]
    content = _MasterList({"version": 0, "cert_list": entries}).dump()
    signer_key = cached_key("p256", "ml-signer")
    ca = signer_pki.csca_cert
    signer_name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "UT"),
                             x509.NameAttribute(NameOID.COMMON_NAME, "Master List Signer")])
    signer = make_certificate(signer_name, signer_key, ca.subject, signer_pki.csca_key,
                              ca.not_valid_before_utc, ca.not_valid_after_utc, ca=False,
                              serial=99)
    info = sign_cms(OID_CSCA_MASTER_LIST, content, signer, signing_key or signer_key)
    return info.dump()


def test_master_list_loads_and_verifies(tmp_path: Path, pki, other_pki):
    path = tmp_path / "ICAO_ml.ml"
    path.write_bytes(make_master_list([pki.csca_cert, other_pki.csca_cert], pki))
    store = TrustStore.load(path)
    assert set(store) == {pki.csca_cert, other_pki.csca_cert} and store.skipped == 0
    assert check(make_passport(pki), store).status == Authenticity.VERIFIED
    # A master list inside a folder next to a plain certificate.
    third = make_test_pki(label="third")
    (tmp_path / "third.pem").write_bytes(_pem(third.csca_cert))
    assert len(TrustStore.load(tmp_path)) == 3


def test_master_list_with_a_bad_signature_is_refused(tmp_path, pki):
    path = tmp_path / "forged.ml"
    path.write_bytes(make_master_list([pki.csca_cert], pki,
                                      signing_key=cached_key("p256", "unrelated")))
    with pytest.raises(TrustStoreError, match="master list signature") as err:
        TrustStore.load(path)
    assert str(path) in str(err.value)
    assert len(TrustStore.load(path, verify_master_list=False)) == 1


def test_master_list_signer_must_come_from_a_listed_csca(tmp_path, pki, other_pki):
    path = tmp_path / "foreign.ml"
    path.write_bytes(make_master_list([other_pki.csca_cert], pki))
    with pytest.raises(TrustStoreError, match="not issued by a CSCA in the list"):
        TrustStore.load(path)


def test_master_list_skips_certificates_it_cannot_parse(tmp_path, pki):
    path = tmp_path / "odd.ml"
    path.write_bytes(make_master_list([pki.csca_cert], pki, extra_raw=[b"\x30\x03\x02\x01\x05"]))
    store = TrustStore.load(path)
    assert list(store) == [pki.csca_cert] and store.skipped == 1


def test_signed_data_that_is_not_a_master_list_is_refused(tmp_path, pki):
    path = tmp_path / "sod.ml"
    path.write_bytes(sign_cms("2.23.136.1.1.1", b"\x30\x00", pki.ds_cert, pki.ds_key).dump())
    with pytest.raises(TrustStoreError, match="not a CSCA master list"):
        TrustStore.load(path)


def test_specimen_is_what_the_factory_signs(pki):
    assert make_passport(pki).mrz.split("\n") == SPECIMEN_TD3
