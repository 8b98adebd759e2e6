"""DSACON32 frames written by hand from the documented layout (doc/dsa.md), and the host end of a pty spoken to
byte by byte: what the DSA codec, twin and client tests share."""
import os
import select
import time

from plas_ros.hardware.crc import crc16
from plas_ros.hardware.dsa import protocol as dsa


def le16(value):
    return bytes([value & 0xFF, value >> 8])


def hand_frame(command, payload):
    """A frame assembled from the documented layout: preamble, id, u16 LE length, payload, CRC over id..payload."""
    covered = bytes([command]) + le16(len(payload)) + payload
    return b'\xaa\xaa\xaa' + covered + (le16(crc16(covered)) if payload else b'')


class RawPort:
    """The host end of the pty, opened like a serial device; frames decoded by the codec's parser, and every
    byte received kept in `received`."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        self.parser = dsa.FrameParser()
        self.frames = []
        self.received = bytearray()

    def send(self, data):
        os.write(self.fd, data)

    def read_some(self, wait=0.05):
        if select.select([self.fd], [], [], wait)[0]:
            data = os.read(self.fd, 4096)
            self.received += data
            self.frames += self.parser.feed(data)

    def next_frame(self, command, timeout=3.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, frame in enumerate(self.frames):
                if frame.command == command:
                    del self.frames[:i + 1]
                    return frame.payload
            self.read_some()
        raise AssertionError('no %s frame within %.1f s' % (dsa.command_name(command), timeout))

    def request(self, command, payload=b''):
        self.send(dsa.encode_frame(command, payload))
        return self.next_frame(command)

    def close(self):
        os.close(self.fd)
