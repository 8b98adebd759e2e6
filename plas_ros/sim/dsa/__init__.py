"""The simulated Weiss DSACON32 tactile controller (doc/dsa.md), a twin of the device built from public sources.

`device`: the controller's behaviour, a pure state machine (bytes in, bytes out, clock injected); `pty`: its
transport, a pseudo-terminal with a link path (`DsaSimulator`); `cli`: `python -m plas_ros.sim.dsa`. It speaks
through the codec `plas_ros.hardware.dsa.protocol`, never through the driver's client.
"""
from plas_ros.sim.dsa.device import PATTERN_MODULUS, DsaDevice, PatternSource, boot_garbage_chunk, pattern_frame
from plas_ros.sim.dsa.pty import DsaSimulator

__all__ = ['PATTERN_MODULUS', 'DsaDevice', 'DsaSimulator', 'PatternSource', 'boot_garbage_chunk', 'pattern_frame']
