"""ICAO Doc 9303 Part 11 Appendix D, the BAC and secure-messaging worked example, step by
step: reader side, chip side, and the whole exchange on the wire."""

from __future__ import annotations

import pytest

from devices.emrtd import bac, crypto
from devices.emrtd.apdu import CommandApdu
from devices.emrtd.errors import AccessDenied, SecureMessagingError
from devices.emrtd.files import EF
from devices.emrtd.mrz import access_from_fields, check_digit
from devices.emrtd.session import EmrtdSession
from devices.emrtd.sm import SecureMessaging
from devices.identity import MrzAccess
from tests.emrtd.card import SimulatedEmrtd

h = bytes.fromhex

# D.1 / D.2
ACCESS = MrzAccess("L898902C", "690806", "940623")
MRZ_INFORMATION = "L898902C<369080619406236"
K_SEED = h("239AB9CB282DAF66231DC5A4DF6BFBAE")
K_ENC = h("AB94FDECF2674FDFB9B391F85D7F76F2")
K_MAC = h("7962D9ECE03D1ACD4C76089DCE131543")
# D.3
RND_IC = h("4608F91988702212")
RND_IFD = h("781723860C06C226")
K_IFD = h("0B795240CB7049B01C19B33E32804F0B")
S = RND_IFD + RND_IC + K_IFD
E_IFD = h("72C29C2371CC9BDB65B779B8E8D37B29ECC154AA56A8799FAE2F498F76ED92F2")
M_IFD = h("5F1448EEA8AD90A7")
CARD_ANSWER = h("46B9342A41396CD7386BF5803104D7CEDC122B9132139BAF2EEDC94EE178534F"
                "2F2D235D074D7449")
K_IC = h("0B4F80323EB3191CB04970CB4052790B")
KS_SEED = h("0036D272F5C350ACAC50C3F572D23600")
KS_ENC = h("979EC13B1CBFE9DCD01AB0FED307EAE5")
KS_MAC = h("F1CB1F1FB5ADF208806B89DC579DC1F8")
SSC = h("887022120C06C226")
# D.4: (plain command, protected command, protected response, plain response data)
SELECT_COM = (h("00A4020C02011E"), h("0CA4020C158709016375432908C044F68E08BF8B92D635FF24F800"),
              h("990290008E08FA855A5D4C50A8ED9000"), b"")
READ_HEAD = (h("00B0000004"), h("0CB000000D9701048E08ED6705417E96BA5500"),
             h("8709019FF0EC34F9922651990290008E08AD55CC17140B2DED9000"), h("60145F01"))
READ_REST = (h("00B0000412"), h("0CB000040D9701128E082EA28A70F3C7B53500"),
             h("871901FB9235F4E4037F2327DCC8964F1F9B8C30F42C8E2FFF224A99029000"
               "8E08C8B2787EAEA07D749000"),
             h("04303130365F36063034303030305C026175"))
EF_COM = READ_HEAD[3] + READ_REST[3]


# -- D.1 / D.2: document basic access keys ---------------------------------------------------
def test_check_digits_of_the_key_fields() -> None:
    assert (check_digit("L898902C<"), check_digit("690806"), check_digit("940623")) == \
        ("3", "1", "6")


@pytest.mark.parametrize("number", ["L898902C", "L898902C<"])
def test_mrz_information_and_key_seed(number: str) -> None:
    access = access_from_fields(number, "690806", "940623")
    assert bac.mrz_information(access) == MRZ_INFORMATION
    assert bac.key_seed(access) == K_SEED


def test_kdf_gives_k_enc_and_k_mac() -> None:
    assert bac.kdf(K_SEED, crypto.KDF_ENC) == K_ENC
    assert bac.kdf(K_SEED, crypto.KDF_MAC) == K_MAC
    assert bac.derive_bac_keys(ACCESS) == (K_ENC, K_MAC)


def test_kdf_adjusts_des_parity() -> None:
    # The raw SHA-1 bytes are AB94FCEDF2664EDF...; each byte is forced to odd parity.
    assert crypto.adjust_parity(h("AB94FCEDF2664EDFB9B291F85D7F77F2")) == K_ENC
    assert all(bin(b).count("1") % 2 == 1 for b in K_ENC + K_MAC)


# -- D.3: mutual authentication -------------------------------------------------------------
def test_terminal_cryptogram() -> None:
    auth = bac.start_authentication(K_ENC, K_MAC, RND_IC, RND_IFD, K_IFD)
    assert crypto.tdes_encrypt(K_ENC, S) == E_IFD
    assert auth.e_ifd == E_IFD
    assert auth.m_ifd == M_IFD
    assert auth.cmd_data == E_IFD + M_IFD


def test_card_answer_verifies_and_yields_k_ic() -> None:
    auth = bac.start_authentication(K_ENC, K_MAC, RND_IC, RND_IFD, K_IFD)
    assert bac.verify_card_answer(K_ENC, K_MAC, auth, CARD_ANSWER) == K_IC


def test_chip_side_builds_the_same_answer() -> None:
    answer, rnd_ifd, k_ifd = bac.card_answer(K_ENC, K_MAC, RND_IC, E_IFD + M_IFD, K_IC)
    assert (answer, rnd_ifd, k_ifd) == (CARD_ANSWER, RND_IFD, K_IFD)


def test_answer_with_a_flipped_bit_is_refused() -> None:
    auth = bac.start_authentication(K_ENC, K_MAC, RND_IC, RND_IFD, K_IFD)
    for index in (0, 35):  # inside E_IC, inside M_IC
        tampered = bytearray(CARD_ANSWER)
        tampered[index] ^= 0x80
        with pytest.raises(AccessDenied):
            bac.verify_card_answer(K_ENC, K_MAC, auth, bytes(tampered))


def test_answer_for_another_challenge_is_refused() -> None:
    # A correctly MACed answer to a different exchange (replay) must not open the session.
    other = bac.start_authentication(K_ENC, K_MAC, h("0000000000000001"), RND_IFD, K_IFD)
    with pytest.raises(AccessDenied, match="echo"):
        bac.verify_card_answer(K_ENC, K_MAC, other, CARD_ANSWER)


def test_chip_refuses_a_terminal_with_other_keys() -> None:
    wrong_enc, wrong_mac = bac.derive_bac_keys(MrzAccess("L898902C", "690806", "940624"))
    auth = bac.start_authentication(wrong_enc, wrong_mac, RND_IC, RND_IFD, K_IFD)
    with pytest.raises(AccessDenied):
        bac.card_answer(K_ENC, K_MAC, RND_IC, auth.cmd_data, K_IC)


def test_session_keys_and_ssc() -> None:
    assert crypto.xor(K_IFD, K_IC) == KS_SEED
    assert bac.session_keys(K_IFD, K_IC, RND_IC, RND_IFD) == (KS_ENC, KS_MAC, SSC)


# -- D.4: secure messaging ------------------------------------------------------------------
def test_reader_side_of_secure_messaging() -> None:
    sm = SecureMessaging(KS_ENC, KS_MAC, SSC)
    ssc_after_response = []
    for plain, protected, response, data in (SELECT_COM, READ_HEAD, READ_REST):
        assert sm.protect(CommandApdu.from_bytes(plain)).to_bytes() == protected
        assert sm.unprotect(response) == (data, 0x9000)
        ssc_after_response.append(sm.ssc.hex().upper())
    assert ssc_after_response == ["887022120C06C228", "887022120C06C22A", "887022120C06C22C"]


def test_chip_side_of_secure_messaging() -> None:
    sm = SecureMessaging(KS_ENC, KS_MAC, SSC)
    for plain, protected, response, data in (SELECT_COM, READ_HEAD, READ_REST):
        assert sm.unprotect_command(CommandApdu.from_bytes(protected)) == \
            CommandApdu.from_bytes(plain)
        assert sm.protect_response(data, 0x9000) == response


def test_select_response_fails_with_the_wrong_ssc() -> None:
    sm = SecureMessaging(KS_ENC, KS_MAC, h("887022120C06C228"))  # one step too far
    with pytest.raises(SecureMessagingError):
        sm.unprotect(SELECT_COM[2])


# -- the whole example on the wire ----------------------------------------------------------
def _feeder(*values: bytes):
    queue = list(values)

    def take(n: int) -> bytes:
        value = queue.pop(0)
        assert len(value) == n
        return value
    return take


def test_session_and_simulated_chip_replay_appendix_d_byte_for_byte() -> None:
    card = SimulatedEmrtd({EF.COM: EF_COM}, ACCESS, random=_feeder(RND_IC, K_IC))
    wire: list[tuple[bytes, bytes]] = []

    def transmit(command: bytes) -> bytes:
        response = card.process(command)
        wire.append((command, response))
        return response

    session = EmrtdSession(transmit, random=_feeder(RND_IFD, K_IFD))
    session.open(ACCESS)
    assert session.read_file(EF.COM) == EF_COM
    assert wire == [
        (h("00A4040C07A0000002471001"), h("9000")),
        (h("0084000008"), RND_IC + h("9000")),
        (h("0082000028") + E_IFD + M_IFD + h("28"), CARD_ANSWER + h("9000")),
        (SELECT_COM[1], SELECT_COM[2]),
        (READ_HEAD[1], READ_HEAD[2]),
        (READ_REST[1], READ_REST[2]),
    ]
    assert session.apdu_count == 6
    assert session.bytes_read == len(EF_COM) == 22
