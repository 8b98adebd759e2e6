"""Weiss DSA tactile controller (DSACON32) on a serial port (doc/dsa.md).

`protocol`: the codec (frames with the DSA CRC variant, payload layouts, RLE), shared with the simulated
controller (`plas_ros.sim.dsa`); `client`: `DsaClient`, the driver. The public names of both are here too;
`DsaClient` is imported on first use, so the twin, which imports `protocol` only, never loads the driver.
"""
from plas_ros.hardware.dsa.protocol import (
    ACQUIRE,
    COLS,
    CONTROLLER_INFO_SIZE,
    CONTROLLER_INFO_SIZES,
    CRC_SIZE,
    DATA_HEADER,
    FULLSCALE,
    HEADER_SIZE,
    LOOP_REPLY_FORMS,
    MATRIX_INFO_SIZE,
    MAX_FRAME_RATE,
    MAX_MATRICES,
    MAX_PAYLOAD,
    PREAMBLE,
    RLE,
    RLE_MAX_COUNT,
    RLE_MAX_VALUE,
    ROBOT,
    ROWS,
    TEXEL_SIZE_MM,
    Command,
    ControllerInfo,
    DataFrame,
    DsaError,
    DsaLinkError,
    DsaReplyError,
    DsaTimeout,
    Frame,
    FrameError,
    FrameParser,
    MatrixInfo,
    SensorInfo,
    command_name,
    decode_frame,
    encode_data_frame,
    encode_frame,
    frame_crc,
    frame_size,
    line_frame_rate,
    matrix_info_tail,
    pack_acquisition,
    pack_controller_info,
    pack_error,
    pack_loop_reply,
    pack_matrix_info,
    pack_sensor_info,
    parse_data_frame,
    parse_data_frames,
    parse_loop_reply,
    reply_error,
    rle_decode,
    rle_encode,
    unpack_acquisition,
    unpack_controller_info,
    unpack_matrix_info,
    unpack_sensor_info,
)

__all__ = [
    'ACQUIRE', 'COLS', 'CONTROLLER_INFO_SIZE', 'CONTROLLER_INFO_SIZES', 'CRC_SIZE', 'Command', 'ControllerInfo',
    'DATA_HEADER', 'DataFrame', 'DsaClient', 'DsaError', 'DsaLinkError', 'DsaReplyError', 'DsaTimeout', 'FULLSCALE',
    'Frame', 'FrameError', 'FrameParser', 'HEADER_SIZE', 'LOOP_REPLY_FORMS', 'MATRIX_INFO_SIZE', 'MAX_FRAME_RATE',
    'MAX_MATRICES', 'MAX_PAYLOAD', 'MatrixInfo', 'PREAMBLE', 'RLE', 'RLE_MAX_COUNT', 'RLE_MAX_VALUE', 'ROBOT',
    'ROWS', 'SensorInfo', 'TEXEL_SIZE_MM', 'command_name', 'decode_frame', 'encode_data_frame', 'encode_frame',
    'frame_crc', 'frame_size', 'line_frame_rate', 'matrix_info_tail', 'pack_acquisition', 'pack_controller_info',
    'pack_error', 'pack_loop_reply', 'pack_matrix_info', 'pack_sensor_info', 'parse_data_frame',
    'parse_data_frames', 'parse_loop_reply', 'reply_error', 'rle_decode', 'rle_encode', 'unpack_acquisition',
    'unpack_controller_info', 'unpack_matrix_info', 'unpack_sensor_info',
]


def __getattr__(name):
    if name == 'DsaClient':
        from plas_ros.hardware.dsa.client import DsaClient
        return DsaClient
    raise AttributeError('module %r has no attribute %r' % (__name__, name))
