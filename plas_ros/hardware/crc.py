"""CRC-16 shared by the Weiss WSG command set and the DSA controller protocol (doc/wsg.md, doc/dsa.md).

Table of polynomial 0x1021 (MSB-first), reflected update `crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)`,
initial value 0xFFFF, no final xor. Running it over a frame including its little-endian CRC yields 0.
"""

CRC_INIT = 0xFFFF


def _make_table():
    table = []
    for index in range(256):
        crc = index << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return tuple(table)


CRC_TABLE = _make_table()


def crc16(data, crc=CRC_INIT):
    """CRC of `data` (bytes-like), continuing from `crc`."""
    table = CRC_TABLE
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc
