"""The WSG-DSA tactile finger's geometry (config/robot.yaml `finger`), read once here for the drivers, the
observation layout and the simulator."""
from dataclasses import dataclass

from plas_ros.config import load_section


@dataclass(frozen=True)
class FingerConfig:
    rows: int            # cells along the finger
    cols: int            # cells across it
    full_scale: int      # raw value of a saturated cell
    taxel_mm: float      # cell pitch


FINGER = load_section(FingerConfig, 'robot.yaml', 'finger')
