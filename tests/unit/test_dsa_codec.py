"""DSA codec: frames written byte by byte from doc/dsa.md (protocol), the CRC variant, RLE, the parser."""
import numpy as np
import pytest

from plas_ros.hardware.crc import crc16
from plas_ros.hardware.dsa import protocol as dsa


def le16(value):
    return bytes([value & 0xFF, value >> 8])


def hand_frame(command, payload):
    """A frame assembled from the documented layout: preamble, id, u16 LE length, payload, CRC over id..payload."""
    covered = bytes([command]) + le16(len(payload)) + payload
    return b'\xaa\xaa\xaa' + covered + (le16(crc16(covered)) if payload else b'')


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
    with pytest.raises(dsa.FrameError, match='needs 168'):
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
