"""Secure messaging beyond Appendix D: tampering, missing objects, extended length, odd INS,
the SSC; plus APDU encoding and the padding and MAC primitives it rests on."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.emrtd import crypto
from devices.emrtd.apdu import ApduError, CommandApdu, ResponseApdu
from devices.emrtd.errors import SecureMessagingError
from devices.emrtd.sm import SecureMessaging, max_plain_length, protected_response_length
from devices.emrtd.tlv import encode

h = bytes.fromhex
KS_ENC = h("979EC13B1CBFE9DCD01AB0FED307EAE5")
KS_MAC = h("F1CB1F1FB5ADF208806B89DC579DC1F8")
SSC = h("887022120C06C226")


def pair() -> tuple[SecureMessaging, SecureMessaging]:
    """Reader and chip sharing one session."""
    return SecureMessaging(KS_ENC, KS_MAC, SSC), SecureMessaging(KS_ENC, KS_MAC, SSC)


def exchanged(reader: SecureMessaging, chip: SecureMessaging, command: CommandApdu,
              data: bytes, sw: int = 0x9000) -> tuple[CommandApdu, CommandApdu, bytes]:
    protected = reader.protect(command)
    on_wire = CommandApdu.from_bytes(protected.to_bytes())
    seen = chip.unprotect_command(on_wire)
    return protected, seen, chip.protect_response(data, sw, odd=bool(command.ins & 1))


# -- responses that must not be trusted -----------------------------------------------------
def test_a_flipped_bit_anywhere_in_a_response_is_caught() -> None:
    reader, chip = pair()
    _, _, response = exchanged(reader, chip, CommandApdu(0, 0xB0, 0, 0, le=16), bytes(16))
    for index in range(len(response) - 2):
        tampered = bytearray(response)
        tampered[index] ^= 0x04
        probe = SecureMessaging(KS_ENC, KS_MAC, SSC)
        probe.protect(CommandApdu(0, 0xB0, 0, 0, le=16))
        with pytest.raises(SecureMessagingError):
            probe.unprotect(bytes(tampered))
    assert reader.unprotect(response) == (bytes(16), 0x9000)


def _response_without(tag: int) -> tuple[SecureMessaging, bytes]:
    reader = SecureMessaging(KS_ENC, KS_MAC, SSC)
    reader.protect(CommandApdu(0, 0xA4, 2, 0x0C, h("011E")))
    ssc = reader.ssc
    objects = b"" if tag == 0x99 else encode(0x99, h("9000"))
    step = (int.from_bytes(ssc, "big") + 1).to_bytes(8, "big")
    mac = crypto.retail_mac(KS_MAC, step + objects)
    body = objects + (b"" if tag == 0x8E else encode(0x8E, mac))
    return reader, body + h("9000")


def test_missing_do99_is_refused_even_with_a_good_mac() -> None:
    reader, response = _response_without(0x99)
    with pytest.raises(SecureMessagingError, match="DO'99'"):
        reader.unprotect(response)


def test_missing_do8e_is_refused() -> None:
    reader, response = _response_without(0x8E)
    with pytest.raises(SecureMessagingError, match="DO'8E'"):
        reader.unprotect(response)


def test_bare_status_word_is_refused() -> None:
    reader = SecureMessaging(KS_ENC, KS_MAC, SSC)
    reader.protect(CommandApdu(0, 0xA4, 2, 0x0C, h("011E")))
    with pytest.raises(SecureMessagingError) as err:
        reader.unprotect(h("9000"))
    assert err.value.sw == 0x9000


def test_replayed_response_fails_because_the_ssc_moved_on() -> None:
    reader, chip = pair()
    _, _, first = exchanged(reader, chip, CommandApdu(0, 0xB0, 0, 0, le=4), b"abcd")
    assert reader.unprotect(first) == (b"abcd", 0x9000)
    reader.protect(CommandApdu(0, 0xB0, 0, 4, le=4))
    with pytest.raises(SecureMessagingError, match="MAC"):
        reader.unprotect(first)


def test_status_word_comes_from_the_authenticated_do99() -> None:
    reader, chip = pair()
    _, _, response = exchanged(reader, chip, CommandApdu(0, 0xA4, 2, 0x0C, h("0101")), b"",
                               sw=0x6A82)
    forged_trailer = response[:-2] + h("9000")
    assert reader.unprotect(forged_trailer) == (b"", 0x6A82)


def test_ciphertext_that_decrypts_to_bad_padding_is_refused() -> None:
    reader = SecureMessaging(KS_ENC, KS_MAC, SSC)
    reader.protect(CommandApdu(0, 0xB0, 0, 0, le=8))
    step = (int.from_bytes(reader.ssc, "big") + 1).to_bytes(8, "big")
    no_padding = crypto.tdes_encrypt(KS_ENC, b"12345678")  # encrypted without padding
    objects = encode(0x87, b"\x01" + no_padding) + encode(0x99, h("9000"))
    response = objects + encode(0x8E, crypto.retail_mac(KS_MAC, step + objects)) + h("9000")
    with pytest.raises(SecureMessagingError, match="padded"):
        reader.unprotect(response)


# -- the chip side refuses bad commands with 6987 / 6988 ------------------------------------
def test_chip_refuses_a_command_with_a_wrong_mac_with_6988() -> None:
    reader, chip = pair()
    protected = bytearray(reader.protect(CommandApdu(0, 0xB0, 0, 0, le=4)).to_bytes())
    protected[-3] ^= 0x01
    with pytest.raises(SecureMessagingError) as err:
        chip.unprotect_command(CommandApdu.from_bytes(bytes(protected)))
    assert err.value.sw == 0x6988


def test_chip_refuses_a_plain_command_with_6987() -> None:
    _, chip = pair()
    with pytest.raises(SecureMessagingError) as err:
        chip.unprotect_command(CommandApdu(0, 0xB0, 0, 0, le=4))
    assert err.value.sw == 0x6987


# -- lengths --------------------------------------------------------------------------------
def test_largest_reads_that_fit_short_and_extended_responses() -> None:
    assert max_plain_length(256) == 0xE7
    assert protected_response_length(0xE7) <= 256 < protected_response_length(0xE8)
    assert max_plain_length(65536) == 0xFFE7
    assert protected_response_length(0xFFE7) <= 65536 < protected_response_length(0xFFE8)


def test_short_read_stays_short() -> None:
    reader, chip = pair()
    protected, seen, response = exchanged(reader, chip, CommandApdu(0, 0xB0, 0, 0, le=0xE7),
                                          bytes(range(0xE7)))
    assert not protected.extended and protected.le == 256
    assert protected.to_bytes()[-1] == 0x00
    assert seen.le == 0xE7
    assert len(response) - 2 <= 256
    assert reader.unprotect(response) == (bytes(range(0xE7)), 0x9000)


@pytest.mark.parametrize("le", [0xE8, 0x100, 0x101, 0x1000, 0xFFE7])
def test_reads_whose_response_exceeds_256_go_extended(le: int) -> None:
    reader, chip = pair()
    data = bytes(i % 251 for i in range(le))
    protected, seen, response = exchanged(reader, chip, CommandApdu(0, 0xB0, 0, 0, le=le),
                                          data)
    raw = protected.to_bytes()
    assert protected.extended
    assert raw[-2:] == b"\x00\x00"  # extended Le 65536
    assert seen.le == le  # DO'97' carried it: one byte up to 256, two above
    assert reader.unprotect(response) == (data, 0x9000)


def test_command_data_over_255_bytes_goes_extended() -> None:
    reader, chip = pair()
    data = bytes(range(256)) * 2
    protected, seen, _ = exchanged(reader, chip, CommandApdu(0, 0xD6, 0, 0, data), b"")
    assert protected.extended
    assert seen.data == data


def test_odd_ins_uses_do85_both_ways() -> None:
    reader, chip = pair()
    command = CommandApdu(0, 0xB1, 0, 0, encode(0x54, h("8000")), le=0x20)
    protected, seen, response = exchanged(reader, chip, command, encode(0x53, bytes(0x1D)))
    assert protected.data[0] == 0x85
    assert seen == command
    assert response[0] == 0x85
    assert reader.unprotect(response) == (encode(0x53, bytes(0x1D)), 0x9000)


@given(st.binary(max_size=600), st.integers(min_value=1, max_value=4096))
def test_any_command_and_response_round_trip(data: bytes, le: int) -> None:
    reader, chip = pair()
    command = CommandApdu(0, 0xD6, 0, 0, data, le) if data else CommandApdu(0, 0xB0, 0, 0,
                                                                           le=le)
    _, seen, response = exchanged(reader, chip, command, data[:le])
    assert seen == command
    assert reader.unprotect(response) == (data[:le], 0x9000)


def test_ssc_wraps_around() -> None:
    reader = SecureMessaging(KS_ENC, KS_MAC, h("FFFFFFFFFFFFFFFF"))
    reader.protect(CommandApdu(0, 0xB0, 0, 0, le=1))
    assert reader.ssc == bytes(8)


def test_repr_shows_no_keys() -> None:
    assert KS_ENC.hex() not in repr(SecureMessaging(KS_ENC, KS_MAC, SSC)).lower()


# -- APDUs ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("apdu", "raw"), [
    (CommandApdu(0x00, 0x84, 0, 0), "00840000"),
    (CommandApdu(0x00, 0x84, 0, 0, le=8), "0084000008"),
    (CommandApdu(0x00, 0xB0, 0, 0, le=256), "00B0000000"),
    (CommandApdu(0x00, 0xA4, 2, 0x0C, h("011E")), "00A4020C02011E"),
    (CommandApdu(0x00, 0x82, 0, 0, bytes(40), le=40), "0082000028" + "00" * 40 + "28"),
    (CommandApdu(0x00, 0xB0, 0, 0, le=257), "00B0000000" + "0101"),
    (CommandApdu(0x00, 0xB0, 0, 0, le=65536), "00B00000000000"),
    (CommandApdu(0x0C, 0xD6, 0, 0, bytes(300)), "0CD60000" + "00012C" + "00" * 300),
    (CommandApdu(0x0C, 0xD6, 0, 0, bytes(300), le=65536),
     "0CD60000" + "00012C" + "00" * 300 + "0000"),
    (CommandApdu(0x0C, 0xD6, 0, 0, bytes(3), le=65536), "0CD60000" + "000003" + "000000"
     + "0000"),
])
def test_apdu_encoding_of_the_four_cases_short_and_extended(apdu: CommandApdu,
                                                            raw: str) -> None:
    assert apdu.to_bytes() == h(raw)
    assert CommandApdu.from_bytes(h(raw)) == apdu


@pytest.mark.parametrize("raw", ["00A4", "00A4020C05011E", "00A4020C02011E0000",
                                 "00B0000000010203", "00B00000000005AABB"])
def test_malformed_apdus(raw: str) -> None:
    with pytest.raises(ApduError):
        CommandApdu.from_bytes(h(raw))


def test_apdu_limits() -> None:
    with pytest.raises(ApduError):
        CommandApdu(0x100, 0, 0, 0)
    with pytest.raises(ApduError):
        CommandApdu(0, 0xB0, 0, 0, le=0)
    with pytest.raises(ApduError):
        CommandApdu(0, 0xB0, 0, 0, le=65537)


def test_response_apdu() -> None:
    r = ResponseApdu.from_bytes(h("01029000"))
    assert (r.data, r.sw, r.sw1, r.sw2, r.ok) == (h("0102"), 0x9000, 0x90, 0x00, True)
    assert r.to_bytes() == h("01029000")
    assert "0102" not in repr(r)
    with pytest.raises(ApduError):
        ResponseApdu.from_bytes(h("90"))


# -- primitives -----------------------------------------------------------------------------
@given(st.binary(max_size=40))
def test_padding_round_trips_and_fills_blocks(data: bytes) -> None:
    padded = crypto.pad(data)
    assert len(padded) % 8 == 0 and len(data) < len(padded) <= len(data) + 8
    assert crypto.unpad(padded) == data


@pytest.mark.parametrize("bad", ["", "0102030405060708", "0102038000000001",
                                 "80000000000000000000000000000000", "01020304"])
def test_unpad_rejects_what_method_2_cannot_produce(bad: str) -> None:
    with pytest.raises(ValueError):
        crypto.unpad(h(bad))


def test_retail_mac_equals_the_two_key_3des_of_the_last_cbc_block() -> None:
    # Algorithm 3 over one block is 3DES-EDE (Ka, Kb, Ka) of that block.
    block = h("0011223344556677")
    mac = crypto.retail_mac(KS_MAC, block, padded=True)
    assert mac == crypto.tdes_encrypt(KS_MAC, block)


def test_tdes_needs_whole_blocks_and_proper_keys() -> None:
    with pytest.raises(ValueError):
        crypto.tdes_encrypt(KS_ENC, b"short")
    with pytest.raises(ValueError):
        crypto.retail_mac(bytes(8), b"x")
