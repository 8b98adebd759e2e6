"""The framing the Weiss WSG command set and the DSA controller share (doc/wsg.md and doc/dsa.md):

    AA AA AA | id u8 | payload length u16 LE | payload | CRC u16 LE

The protocols differ only in what the CRC covers and whether an empty payload has one, so this module
finds frames in a byte stream and each protocol's parser checks them.
"""
import collections
import struct

PREAMBLE = b'\xaa\xaa\xaa'
HEADER_SIZE = 6            # preamble, id, payload length
CRC_SIZE = 2

Frame = collections.namedtuple('Frame', 'command payload')

AGAIN = object()           # a step that made progress without yielding an item: call again


def unsealed_frame(command, payload, error):
    """Preamble, id, length and payload of a frame, before the protocol adds its CRC; `error` (the protocol's
    exception class) when the id or the payload does not fit its field."""
    payload = bytes(payload)
    if not 0 <= int(command) <= 0xFF:
        raise error('command id %r does not fit in a byte' % (command,))
    if len(payload) > 0xFFFF:
        raise error('payload of %d bytes does not fit the u16 length field' % len(payload))
    return PREAMBLE + struct.pack('<BH', int(command), len(payload)) + payload


def command_name(commands, command):
    """'MOVE (0x21)' for a member of the protocol's `commands` enum, 'command 0x7F' for an unknown id."""
    try:
        return '%s (0x%02X)' % (commands(command).name, command)
    except ValueError:
        return 'command 0x%02X' % command


class PreambleScanner:
    """Byte stream -> candidate frames (`raw` bytes and payload `length`), skipping garbage.

    Subclasses check a candidate's CRC in `_next_item` and decide what to drop. A run of more than three AA
    bytes is read as garbage followed by the preamble (no command has the id 0xAA); a preamble split across
    reads is kept; a length field over `max_payload` means the scanner locked onto garbage: it is skipped at
    once, nothing is allocated or awaited for it, so the buffer never holds more than one largest frame plus
    the last read. Fed with the time (`feed(data, now)`), it notes when the unfinished frame at its end began
    (`partial_since`), so that a frame dribbled a byte at a time is timed from its first byte, not its last.
    """

    def __init__(self, max_payload, frame_size):
        self.max_payload = max_payload
        self._frame_size = frame_size      # payload length -> total frame bytes
        self._buf = bytearray()
        self.frames = 0
        self.garbage_bytes = 0
        self.partial_since = None          # clock time the unfinished frame at the end began (feed with `now`)

    @property
    def pending_bytes(self):
        return len(self._buf)

    def _skip(self, count):
        self.garbage_bytes += count
        del self._buf[:count]
        if not self._buf:
            self.partial_since = None

    def _candidate(self):
        """None (needs more bytes), AGAIN (dropped garbage) or (raw, length) of a complete frame at the front."""
        buf = self._buf
        start = buf.find(PREAMBLE)
        if start < 0:
            keep = 2 if buf.endswith(PREAMBLE[:2]) else (1 if buf.endswith(PREAMBLE[:1]) else 0)
            self._skip(len(buf) - keep)
            return None
        while start + 3 < len(buf) and buf[start + 3] == PREAMBLE[0]:
            start += 1
        if start:
            self._skip(start)
        if len(buf) < HEADER_SIZE:
            return None
        length = struct.unpack_from('<H', buf, 4)[0]
        if length > self.max_payload:
            self._skip(1)
            return AGAIN
        total = self._frame_size(length)
        if len(buf) < total:
            return None
        return bytes(buf[:total]), length

    def _accept(self, raw, length):
        """Consume a checked frame from the front of the buffer."""
        del self._buf[:len(raw)]
        self.frames += 1
        return Frame(raw[3], raw[HEADER_SIZE:HEADER_SIZE + length])

    def feed(self, data, now=None):
        """Append bytes; returns the items (frames, and whatever a subclass reports) now complete. `now` (a
        clock reading) keeps `partial_since`."""
        self._buf += data
        items = []
        while True:
            item = self._next_item()
            if item is None:
                break
            if item is not AGAIN:
                items.append(item)
        if not self._buf:
            self.partial_since = None
        elif now is not None and (items or self.partial_since is None):
            self.partial_since = now  # a frame began in these bytes
        return items

    def partial_expired(self, now, max_age):
        """True when an unfinished frame began more than `max_age` s before `now` (then drop it)."""
        return self.partial_since is not None and now - self.partial_since > max_age

    def _next_item(self):
        raise NotImplementedError
