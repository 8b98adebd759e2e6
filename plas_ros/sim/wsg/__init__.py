"""The simulated WSG 32 (doc/wsg.md, "Simulated WSG 32"): the device state machine (`device`) and its TCP
transport (`server`). It speaks the codec of plas_ros.hardware.wsg.protocol and knows nothing of the driver.

    python -m plas_ros.sim.wsg --port P [--host H] [--part-width MM] [--referenced] [--no-disconnect-error]
"""
from plas_ros.sim.wsg.device import (  # noqa: F401 - re-exported
    SIM_INFO,
    SIM_LIMITS,
    TWIN,
    PatternFrames,
    StaticPart,
    TwinConfig,
    WsgDevice,
    load_twin_config,
)
from plas_ros.sim.wsg.server import WsgSimulator  # noqa: F401 - re-exported
