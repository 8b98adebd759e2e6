"""The simulated Weiss DSACON32 tactile controller (doc/dsa.md), a twin of the device built from public sources.

`device`: the controller's behaviour, a pure state machine (bytes in, bytes out, clock injected); `pty`: its
transport, a pseudo-terminal with a link path (`DsaSimulator`); `cli`: `python -m plas_ros.sim.dsa`. It speaks
through the codec `plas_ros.hardware.dsa.protocol`, never through the driver's client.
"""
from plas_ros.sim.dsa.device import (
    PATTERN_MODULUS,
    TERMINAL_QUERY,
    TWIN,
    DsaDevice,
    DsaTwinConfig,
    PatternSource,
    boot_garbage_chunk,
    idle_frame,
    pattern_frame,
)
from plas_ros.sim.dsa.pty import DsaSimulator

__all__ = ['PATTERN_MODULUS', 'TERMINAL_QUERY', 'TWIN', 'DsaDevice', 'DsaSimulator', 'DsaTwinConfig', 'PatternSource',
           'boot_garbage_chunk', 'idle_frame', 'pattern_frame']
