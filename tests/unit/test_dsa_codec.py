"""DSA codec: frames written byte by byte from doc/dsa.md (protocol), the CRC variant, RLE, the parser."""
import struct

import numpy as np
import pytest

from plas_ros.hardware.crc import crc16
from plas_ros.hardware.dsa import protocol as dsa
from tests.helpers.dsa import hand_frame, le16

# ------------------------------------------------------------------ framing and the CRC variant

def test_empty_payload_frame_has_no_crc():
    assert dsa.encode_frame(dsa.Command.LOOP) == bytes.fromhex('aaaaaa060000')
    assert dsa.encode_frame(dsa.Command.CONTROLLER_INFO) == bytes.fromhex('aaaaaa010000')
    assert dsa.decode_frame(bytes.fromhex('aaaaaa020000')) == (dsa.Command.SENSOR_INFO, b'')


def test_crc_covers_id_length_payload_not_the_preamble():
    frame = dsa.encode_frame(dsa.Command.MATRIX_INFO, b'\x00')
    covered = bytes([0x0B, 0x01, 0x00, 0x00])
    assert frame == b'\xaa\xaa\xaa' + covered + le16(crc16(covered))
    assert crc16(frame[3:]) == 0                       # checking over id..CRC yields 0
    assert le16(crc16(frame[:-2])) != frame[-2:]       # the WSG variant (with preamble) differs


def test_acquisition_request_layout():
    start_rle = dsa.encode_frame(dsa.Command.ACQUISITION, dsa.pack_acquisition(30, rle=True))
    assert start_rle == hand_frame(0x03, bytes([0x81, 30, 0]))
    assert dsa.pack_acquisition(500) == bytes([0x80]) + le16(500)
    assert dsa.pack_acquisition(0) == bytes(3)
    assert dsa.unpack_acquisition(bytes([0x81, 30, 0])) == (True, True, 30)
    assert dsa.unpack_acquisition(bytes([0x80, 0, 0]))[0] is False   # rate 0 stops
    with pytest.raises(ValueError):
        dsa.pack_acquisition(70000)


def test_decode_rejects_bad_frames_saying_why():
    good = hand_frame(0x06, b'hello')
    assert dsa.decode_frame(good) == (0x06, b'hello')
    bad_crc = good[:-1] + bytes([good[-1] ^ 1])
    with pytest.raises(dsa.FrameError, match='checksum'):
        dsa.decode_frame(bad_crc)
    with pytest.raises(dsa.FrameError, match='length field'):
        dsa.decode_frame(good[:-3])
    with pytest.raises(dsa.FrameError, match='preamble'):
        dsa.decode_frame(b'\xab' + good[1:])


# ------------------------------------------------------------------ data frames

def test_uncompressed_data_frame_written_by_hand():
    values = [(7 * i) % 3896 for i in range(84)]
    payload = bytes([0x04, 0x03, 0x02, 0x01, 0x00]) + b''.join(le16(v) for v in values)
    frame = hand_frame(0x00, payload)
    assert len(frame) == 6 + 173 + 2
    parser = dsa.FrameParser()
    (command, body), = parser.feed(frame)
    parsed = dsa.parse_data_frame(body, 14, 6)
    assert command == dsa.Command.DATA_FRAME and parsed.timestamp_ms == 0x01020304 and not parsed.rle
    assert parsed.cells.dtype == np.uint16 and parsed.cells.shape == (14, 6)
    assert parsed.cells[0].tolist() == values[:6] and parsed.cells[13, 5] == values[83]
    assert dsa.encode_frame(0, dsa.encode_data_frame(0x01020304, np.array(values).reshape(14, 6))) == frame


def test_rle_data_frame_written_by_hand():
    # 5 x 3, 3895 x 1, 0 x 15 x 5, 9 x 5: 3 + 1 + 75 + 5 = 84 cells
    units = [0x3005, 0x1F37] + [0xF000] * 5 + [0x5009]
    payload = le16(0x2710) + le16(0) + bytes([0x01]) + b''.join(le16(u) for u in units)
    parsed = dsa.parse_data_frame(payload, 14, 6)
    expected = [5] * 3 + [3895] + [0] * 75 + [9] * 5
    assert parsed.timestamp_ms == 10000 and parsed.rle
    assert parsed.cells.reshape(-1).tolist() == expected
    assert dsa.rle_encode(np.array(expected)) == b''.join(le16(u) for u in units)


def test_rle_round_trip_and_limits():
    rng = np.random.default_rng(3)
    for cells in (np.zeros((14, 6)), rng.integers(0, 4096, (14, 6)), np.repeat(rng.integers(0, 3, 42), 2)):
        body = dsa.rle_encode(cells)
        assert np.array_equal(dsa.rle_decode(body, cells.size), np.asarray(cells).reshape(-1))
    assert len(dsa.rle_encode(np.zeros(84))) == 2 * 6          # 84 zeros = 5 x 15 + 9
    with pytest.raises(dsa.FrameError, match='0..4095'):
        dsa.rle_encode(np.array([4096]))


def test_malformed_data_frames_are_refused():
    with pytest.raises(dsa.FrameError, match='expand to 83'):
        dsa.parse_data_frame(bytes(4) + b'\x01' + le16(0xF000) * 5 + le16(0x8000), 14, 6)
    with pytest.raises(dsa.FrameError, match='repeat count of 0'):
        dsa.parse_data_frame(bytes(4) + b'\x01' + le16(0x0005) + le16(0xF000) * 5 + le16(0x9000), 14, 6)
    with pytest.raises(dsa.FrameError, match='whole number'):
        dsa.parse_data_frame(bytes(4) + b'\x01\x00', 14, 6)
    with pytest.raises(dsa.FrameError, match=r'matrices \(14 x 6\) need 168'):
        dsa.parse_data_frame(bytes(5) + bytes(166), 14, 6)
    with pytest.raises(dsa.FrameError, match='shorter'):
        dsa.parse_data_frame(b'\x00\x01', 14, 6)


def test_line_capacity():
    # 115200 baud = 11520 bytes/s; an uncompressed 14 x 6 frame is 181 bytes on the line
    assert abs(dsa.line_frame_rate(115200) - 11520 / 181) < 1e-9


def test_info_replies_layout():
    payload = le16(0) + bytes([0x9A, 0x99, 0x59, 0x40]) * 2 + le16(6) + le16(14) + b'extra'
    info = dsa.unpack_matrix_info(payload)
    assert info.error == 0 and (info.cells_x, info.cells_y) == (6, 14) and abs(info.texel_width - 3.4) < 1e-6
    with pytest.raises(dsa.FrameError, match='MATRIX_INFO'):
        dsa.unpack_matrix_info(payload[:10])
    sensor = dsa.unpack_sensor_info(le16(0) + le16(1) + le16(0) + b'\x02' + bytes([1, 0, 0, 0]) + b'\x00')
    assert sensor.matrices == 1 and sensor.hw_revision == 2 and sensor.serial_number == 1
    assert dsa.reply_error(le16(14), 3) == 14


# ------------------------------------------------------------------ the streaming parser

def test_parser_resynchronises_after_garbage_and_counts_it():
    loop = hand_frame(0x06, b'abc')
    data = hand_frame(0x00, bytes(5) + bytes(168))
    garbage = b'DSACON32 boot\r\n\xaa\xaa\x13\xaa\xaa\xaa\xaa\xaa' + bytes(range(40))
    parser = dsa.FrameParser()
    frames = []
    tail = [hand_frame(0x06, bytes([i])) for i in range(60)]
    stream = garbage + loop + b'\xaa' + data + b''.join(tail) + b'\xaa\xaa'
    for i in range(0, len(stream), 7):              # in pieces, so preambles split across reads
        frames += parser.feed(stream[i:i + 7])
    # the fake header in the garbage claims 0x0201 bytes and covers the real frames until its CRC fails:
    # none of them is lost
    assert [f.command for f in frames] == [0x06, 0x00] + [0x06] * 60
    assert frames[0].payload == b'abc' and [f.payload for f in frames[2:]] == [bytes([i]) for i in range(60)]
    assert parser.garbage_bytes >= len(garbage) and parser.pending_bytes == 2


def test_parser_skips_corrupt_and_truncated_frames():
    good = [hand_frame(0x06, bytes([i]) * 4) for i in range(4)]
    corrupt = bytearray(good[1])
    corrupt[7] ^= 0xFF
    stream = good[0] + bytes(corrupt) + good[2][:8] + good[3]
    parser = dsa.FrameParser()
    frames = parser.feed(stream)
    assert [f.payload for f in frames] == [bytes([0]) * 4, bytes([3]) * 4]
    assert parser.crc_errors == 1 and parser.truncated == 1 and parser.frames == 2


def test_parser_reset_counts_a_half_received_frame():
    parser = dsa.FrameParser()
    assert parser.feed(hand_frame(0x06, b'xyz')[:7]) == []
    parser.reset()
    assert parser.truncated == 1 and parser.pending_bytes == 0
    assert parser.feed(hand_frame(0x06, b'xyz')) == [(0x06, b'xyz')]


def test_parser_drops_an_impossible_length():
    parser = dsa.FrameParser()
    frames = parser.feed(b'\xaa\xaa\xaa\x00\xff\xff' + hand_frame(0x06, b'ok'))
    assert frames == [(0x06, b'ok')]


# ------------------------------------------------------------------ as the real controller sends them

def test_controller_info_is_18_bytes_and_19_are_accepted():
    # SDH dsa.cpp: "the controller sends only 18 bytes although 19 are expected"; the structure: u16 error,
    # u32 serial, u8 hw, u16 sw, u8 status flags, u8 features, u8 senscon type, u8 interface, u32 CAN baud,
    # u16 CAN id. Of 18 bytes the last (can_id's high byte) is missing.
    nineteen = (le16(0) + bytes([0x32, 0xA0, 0xD5, 0x00]) + b'\x01' + le16(288) + b'\xc0\x10\x01\x00'
                + bytes([0x40, 0x42, 0x0F, 0x00]) + le16(0x0123))
    assert len(nineteen) == 19
    info = dsa.unpack_controller_info(nineteen)
    assert (info.serial_number, info.sw_version, info.status_flags, info.can_baudrate, info.can_id) == (
        0x00D5A032, 288, 0xC0, 1000000, 0x0123)
    short = dsa.unpack_controller_info(nineteen[:18])
    assert short._replace(can_id=0) == info._replace(can_id=0) and short.can_id == 0x23
    assert dsa.pack_controller_info(info) == nineteen[:18]
    assert dsa.pack_controller_info(info, size=19) == nineteen
    for size in (2, 17, 20):
        with pytest.raises(dsa.FrameError, match='CONTROLLER_INFO .* reply of %d bytes, expected 18 or 19' % size):
            dsa.unpack_controller_info(nineteen.ljust(20, b'\x00')[:size])


def test_matrix_info_is_the_52_byte_structure():
    # SDH dsa.h sMatrixInfo: u16 error, f32 texel width, f32 texel height, u16 cells x, u16 cells y, uid[6],
    # reserved[2], u8 hw revision, f32 centre x/y/z, f32 theta x/y/z, f32 fullscale, u8 feature flags
    info = dsa.MatrixInfo(0, 3.4, 3.4, 6, 14)
    reply = dsa.pack_matrix_info(info, extra=dsa.matrix_info_tail(uid=b'ABCDEF', hw_revision=7, fullscale=3895.0))
    assert len(reply) == dsa.MATRIX_INFO_SIZE == 52
    assert reply[10:14] == le16(6) + le16(14) and reply[14:20] == b'ABCDEF' and reply[22] == 7
    assert struct.unpack_from('<f', reply, 47)[0] == 3895.0 and reply[51] == 0
    assert dsa.unpack_matrix_info(reply) == info._replace(texel_width=pytest.approx(3.4),
                                                          texel_height=pytest.approx(3.4))


def test_one_data_frame_carries_every_matrix_in_matrix_order():
    # two matrices, 2 x 3 then 1 x 2: 8 cells after the 5-byte header
    cells = [11, 12, 13, 21, 22, 23, 91, 92]
    payload = le16(0x0064) + le16(0) + b'\x00' + b''.join(le16(v) for v in cells)
    first, second = dsa.parse_data_frames(payload, [(2, 3), (1, 2)])
    assert first.cells.tolist() == [[11, 12, 13], [21, 22, 23]] and second.cells.tolist() == [[91, 92]]
    assert first.timestamp_ms == second.timestamp_ms == 100
    assert dsa.encode_data_frame(100, [np.array(cells[:6]).reshape(2, 3), np.array([[91, 92]])]) == payload
    with pytest.raises(dsa.FrameError, match=r'matrices \(2 x 3 \+ 2 x 2\) need 20'):
        dsa.parse_data_frames(payload, [(2, 3), (2, 2)])
    # RLE runs over the matrices as one sequence: a run may cross from one matrix into the next
    rle = le16(0) + le16(0) + b'\x01' + le16(0x5007) + le16(0x3000)     # 7 x 5, 0 x 3
    first, second = dsa.parse_data_frames(rle, [(2, 3), (1, 2)])
    assert first.cells.reshape(-1).tolist() == [7] * 5 + [0] and second.cells.tolist() == [[0, 0]]
    assert dsa.encode_data_frame(0, [first.cells, second.cells], rle=True) == rle
    assert dsa.parse_data_frames(le16(0) + le16(0) + b'\x00', []) == []   # a controller with no matrix


@pytest.mark.parametrize('form, reply', [('echo', b'ping'), ('error_code_prefixed', b'\x00\x00ping')])
def test_loop_reply_forms(form, reply):
    # unverified (doc/dsa.md): a bare echo, or a u16 error code then the echo
    assert dsa.pack_loop_reply(b'ping', form) == reply
    assert dsa.parse_loop_reply(reply, b'ping') == (form, None if form == 'echo' else 0)
    assert dsa.decode_frame(hand_frame(0x06, reply)) == (0x06, reply)


def test_loop_replies_that_are_neither_form():
    assert dsa.parse_loop_reply(b'\x0e\x00', b'ping') is None           # an error code alone (unknown command)
    assert dsa.parse_loop_reply(b'pong', b'ping') is None
    assert dsa.parse_loop_reply(b'\x00\x00pin', b'ping') is None
    assert dsa.parse_loop_reply(b'\x10\x00ping', b'ping') == ('error_code_prefixed', 16)
    with pytest.raises(ValueError, match='echo, error_code_prefixed'):
        dsa.pack_loop_reply(b'x', 'status')
