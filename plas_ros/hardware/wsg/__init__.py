"""The Weiss WSG 32 (doc/wsg.md): `protocol` (the codec), `client` (WsgClient over TCP) and `driver` (the
driver node's ROS-free logic).

The public names of all three are importable from here (`from plas_ros.hardware.wsg import Status,
WsgClient`). The codec's are loaded with the package; the client's and the driver's only when first asked
for, so that a user of the codec alone (the simulated gripper, the DSA codec) does not load the driver.
"""
import importlib

from plas_ros.hardware.wsg.protocol import (  # noqa: F401 - re-exported
    ACK_KEY,
    AUTO_UPDATE_ON_CHANGE,
    AUTO_UPDATE_PERIODIC,
    FINGER_COMMANDS,
    FINGERS,
    MAX_PAYLOAD,
    MOTION_COMMANDS,
    MOVE_RELATIVE,
    MOVE_STOP_ON_BLOCK,
    MOVE_SUCCESSES,
    STATE_COMMANDS,
    TACTILE_CELLS,
    TACTILE_COLS,
    TACTILE_ROWS,
    Command,
    CorruptFrame,
    Frame,
    FrameError,
    FrameParser,
    GraspingState,
    Status,
    SystemFlag,
    SystemInfo,
    SystemLimits,
    WsgError,
    WsgLinkError,
    check_limits,
    command_name,
    decode_frame,
    decode_state_value,
    encode_frame,
    finger_command,
    pack_auto_update,
    pack_finger_data,
    pack_float,
    pack_homing,
    pack_info,
    pack_limits,
    pack_move,
    pack_status,
    pack_width_speed,
    status_name,
    unpack_finger_data,
    unpack_float,
    unpack_info,
    unpack_limits,
    unpack_status,
    unpack_u8,
    unpack_u32,
)

_LAZY = {
    'client': ('DEFAULT_PORT', 'WsgClient', 'WsgCounters', 'WsgState', 'check_state_value'),
    'driver': ('CommandResult', 'DriverCounters', 'TactilePoller', 'WsgDriver', 'check_fingers', 'explain'),
}
_LAZY_NAMES = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name):  # PEP 562: the client and driver names, loaded on first use
    module = _LAZY_NAMES.get(name)
    if module is None:
        raise AttributeError('module %r has no attribute %r' % (__name__, name))
    value = getattr(importlib.import_module('%s.%s' % (__name__, module)), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY_NAMES))
