"""WSG codec: the sample frames of doc/wsg.md, frame errors, the streaming parser, payloads."""
import math
import struct

import pytest

from plas_ros.hardware.crc import crc16
from plas_ros.hardware.wsg import (
    Command,
    CorruptFrame,
    Frame,
    FrameError,
    FrameParser,
    Status,
    SystemLimits,
    WsgError,
    WsgLinkError,
    decode_frame,
    decode_state_value,
    encode_frame,
    pack_auto_update,
    pack_homing,
    pack_limits,
    pack_move,
    pack_status,
    pack_width_speed,
    status_name,
    unpack_limits,
    unpack_status,
)
from tests.helpers.wsg import HOMING, LOOP_EMPTY


def test_sample_frames_are_what_the_reference_lists():
    assert HOMING.hex(' ') == 'aa aa aa 20 01 00 00 8f 83'
    assert LOOP_EMPTY.hex(' ') == 'aa aa aa 06 00 00 97 26'


def test_encoder_reproduces_the_sample_frames():
    assert encode_frame(Command.HOMING, pack_homing(0)) == HOMING
    assert encode_frame(Command.LOOP) == LOOP_EMPTY


def test_decoder_reads_the_sample_frames():
    assert decode_frame(HOMING) == Frame(0x20, b'\x00')
    assert decode_frame(LOOP_EMPTY) == Frame(0x06, b'')


def test_move_frame_layout_byte_by_byte():
    frame = encode_frame(Command.MOVE, pack_move(12.5, 70.0, relative=True))
    payload = b'\x01' + struct.pack('<f', 12.5) + struct.pack('<f', 70.0)
    body = b'\xaa\xaa\xaa\x21' + struct.pack('<H', 9) + payload
    assert frame == body + struct.pack('<H', crc16(body))


@pytest.mark.parametrize('data, words', [
    (b'\xaa\xaa\xaa\x06', 'shorter'),
    (b'\xab' + LOOP_EMPTY[1:], 'preamble'),
    (HOMING[:-2] + b'\x00' + HOMING[-2:], 'length field'),
    (HOMING[:-1] + bytes([HOMING[-1] ^ 0x40]), 'checksum'),
])
def test_decode_names_what_is_wrong(data, words):
    with pytest.raises(FrameError, match=words):
        decode_frame(data)


def test_parser_skips_garbage_and_counts_it():
    parser = FrameParser()
    items = parser.feed(b'\x00\xffboot noise\xaa' + HOMING + b'\x13\x37' + LOOP_EMPTY)
    assert items == [Frame(0x20, b'\x00'), Frame(0x06, b'')]
    assert parser.garbage_bytes == 15 and parser.frames == 2 and parser.checksum_errors == 0


def test_parser_handles_one_byte_at_a_time_and_split_preambles():
    parser = FrameParser()
    stream = b'\xaa\xaa' + HOMING + b'\xaa' + LOOP_EMPTY
    items = []
    for byte in stream:
        items += parser.feed(bytes([byte]))
    assert items == [Frame(0x20, b'\x00'), Frame(0x06, b'')]
    assert parser.pending_bytes == 0 and parser.garbage_bytes == 3


def test_parser_reports_a_checksum_error_and_resynchronises():
    corrupt = bytearray(encode_frame(Command.MOVE, pack_move(10, 50)))
    corrupt[8] ^= 0x10
    parser = FrameParser()
    items = parser.feed(bytes(corrupt) + LOOP_EMPTY)
    assert items == [CorruptFrame(0x21, 9), Frame(0x06, b'')]
    assert parser.checksum_errors == 1


def test_truncated_frame_followed_by_a_good_one_loses_only_the_truncated_one():
    move = encode_frame(Command.MOVE, pack_move(10, 50))
    parser = FrameParser()
    items = parser.feed(move[:7] + LOOP_EMPTY + HOMING)
    # The cut move swallows bytes of the next frame, fails its checksum, and the scan restarts inside it.
    assert items[0] == CorruptFrame(0x21, 9)
    assert items[1:] == [Frame(0x06, b''), Frame(0x20, b'\x00')]


def test_a_frame_that_never_completes_can_be_discarded():
    parser = FrameParser()
    assert parser.feed(HOMING[:5]) == []
    assert parser.pending_bytes == 5
    assert parser.discard_partial() == 5 and parser.truncated_frames == 1
    assert parser.feed(LOOP_EMPTY) == [Frame(0x06, b'')]


def test_an_implausible_length_is_treated_as_garbage():
    parser = FrameParser(max_payload=64)
    fake = b'\xaa\xaa\xaa\x20\xff\xff'  # 65535 payload bytes: a false preamble in noise
    assert parser.feed(fake + LOOP_EMPTY) == [Frame(0x06, b'')]
    assert parser.garbage_bytes == len(fake)


def test_a_preamble_run_longer_than_three_still_finds_the_frame():
    assert FrameParser().feed(b'\xaa\xaa' + LOOP_EMPTY) == [Frame(0x06, b'')]


def test_encode_refuses_what_the_header_cannot_carry():
    with pytest.raises(FrameError, match='u16'):
        encode_frame(Command.LOOP, bytes(70000))
    with pytest.raises(FrameError, match='byte'):
        encode_frame(300)


def test_payload_packers():
    assert pack_move(1.0, 2.0, stop_on_block=True)[0] == 0x02
    assert struct.unpack('<ff', pack_width_speed(3.5, 70.0)) == (3.5, 70.0)
    assert pack_auto_update(True, 50, on_change=True) == b'\x03\x32\x00'
    assert pack_auto_update() == b'\x00\x00\x00'
    with pytest.raises(ValueError, match='width'):
        pack_move(float('nan'), 10.0)
    with pytest.raises(ValueError, match='speed'):
        pack_width_speed(1.0, math.inf)
    with pytest.raises(ValueError, match='direction'):
        pack_homing(3)
    with pytest.raises(ValueError, match='period'):
        pack_auto_update(True, 70000)


def test_reply_payloads():
    assert unpack_status(pack_status(Status.PENDING)) == (26, b'')
    assert unpack_status(b'\x00\x00\x01\x02') == (0, b'\x01\x02')
    with pytest.raises(FrameError, match='status'):
        unpack_status(b'\x00')
    limits = SystemLimits(68.0, 0.5, 420.0, 100.0, 5000.0, 5.0, 80.0, 80.0)
    assert unpack_limits(pack_limits(limits)) == limits
    with pytest.raises(FrameError, match='system limits'):
        unpack_limits(pack_limits(limits)[:-1])
    assert decode_state_value(Command.SYSTEM_STATE, struct.pack('<I', 0x1081)) == 0x1081
    assert decode_state_value(Command.GRASPING_STATE, b'\x04') == 4
    assert decode_state_value(Command.OPENING_WIDTH, struct.pack('<f', 2.5)) == 2.5
    with pytest.raises(FrameError, match='OPENING_WIDTH'):
        decode_state_value(Command.OPENING_WIDTH, b'\x00')


def test_errors_name_command_and_status():
    assert status_name(16) == '16 ACCESS_DENIED' and 'unknown' in status_name(99)
    error = WsgError(Status.ACCESS_DENIED, Command.MOVE)
    assert (error.status, error.command) == (16, 0x21)
    assert str(error) == 'WSG MOVE (0x21) failed: status 16 ACCESS_DENIED'
    assert 'command 0x7F' in str(WsgError(Status.UNKNOWN_COMMAND, 0x7F))
    assert isinstance(WsgLinkError(Status.TIMEOUT, Command.LOOP, 'no reply'), WsgError)
