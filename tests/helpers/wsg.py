"""The WSG 32's two sample frames, as the vendor's software sends them, and the wait of the WSG tests."""

HOMING = bytes.fromhex('aaaaaa 20 0100 00 8f83'.replace(' ', ''))   # homing, default direction
LOOP_EMPTY = bytes.fromhex('aaaaaa 06 0000 9726'.replace(' ', ''))  # loop-back with no payload

WAIT = 10.0  # s: generous, the machine is shared; no test asserts a duration
