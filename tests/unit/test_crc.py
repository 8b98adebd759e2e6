"""The shared CRC against the vendor's sample frames (doc/wsg.md, CRC check vectors)."""
import struct

from plas_ros.hardware.crc import crc16
from tests.helpers.wsg import HOMING, LOOP_EMPTY


def test_crc_of_sample_frames_matches_their_trailer():
    for frame in (HOMING, LOOP_EMPTY):
        body, trailer = frame[:-2], struct.unpack('<H', frame[-2:])[0]
        assert crc16(body) == trailer


def test_crc_over_whole_frame_is_zero():
    assert crc16(HOMING) == 0
    assert crc16(LOOP_EMPTY) == 0


def test_crc_detects_a_flipped_bit():
    corrupted = bytearray(HOMING)
    corrupted[4] ^= 0x01
    assert crc16(bytes(corrupted)) != 0
