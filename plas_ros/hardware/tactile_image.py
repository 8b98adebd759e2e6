"""Tactile frames as images, without ROS: the raw cells as mono16 and a colour-mapped, upscaled rgb8 view.

The colour image maps a cell's raw value (0 .. finger.full_scale, config/robot.yaml) through a 256-entry
lookup table and repeats each cell `scale` x `scale` times (config/robot.yaml `tactile_image`), so it is a few
numpy operations per frame. The colour maps are matplotlib's, sampled at five points and interpolated linearly
between them (close to, not equal to, matplotlib's tables; no matplotlib at run time).
"""
import dataclasses

import numpy as np

from plas_ros.config import load_section
from plas_ros.hardware.finger import FINGER

# Five samples (at 0, 1/4, 1/2, 3/4, 1) of each colour map, sRGB 0..255.
COLOUR_MAPS = {
    'inferno': [(0, 0, 4), (87, 16, 110), (188, 55, 84), (249, 142, 9), (252, 255, 164)],
    'viridis': [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)],
    'gray': [(0, 0, 0), (64, 64, 64), (128, 128, 128), (191, 191, 191), (255, 255, 255)],
}


@dataclasses.dataclass(frozen=True)
class TactileImageConfig:
    scale: int          # pixels per cell side in the colour image
    colour_map: str     # a name of COLOUR_MAPS

    def __post_init__(self):
        if not 1 <= self.scale <= 64:
            raise ValueError('tactile_image.scale must be 1..64 pixels per cell, got %r' % (self.scale,))
        if self.colour_map not in COLOUR_MAPS:
            raise ValueError('tactile_image.colour_map %r is none of %s' % (self.colour_map, ', '.join(COLOUR_MAPS)))


def load_tactile_image_config(path='robot.yaml'):
    return load_section(TactileImageConfig, path, 'tactile_image')


def lookup_table(name):
    """(256, 3) uint8: the colour map `name` at 256 evenly spaced values."""
    anchors = np.asarray(COLOUR_MAPS[name], dtype=np.float64)
    at = np.linspace(0.0, 1.0, len(anchors))
    x = np.linspace(0.0, 1.0, 256)
    return np.rint(np.stack([np.interp(x, at, anchors[:, c]) for c in range(3)], axis=1)).astype(np.uint8)


def cells_array(cells, rows=FINGER.rows, cols=FINGER.cols):
    """The frame's cells as a (rows, cols) uint16 array (from a flat row-major sequence or an array)."""
    array = np.asarray(cells, dtype=np.uint16)
    return array.reshape(rows, cols)


def mono16_bytes(cells):
    """The cells row-major as little-endian u16 bytes (sensor_msgs/Image mono16, is_bigendian 0)."""
    return np.ascontiguousarray(cells, dtype='<u2').tobytes()


class TactileColouriser:
    """rgb8 views of tactile frames: `image(cells)` -> (rows*scale, cols*scale, 3) uint8."""

    def __init__(self, config=None, full_scale=FINGER.full_scale):
        self.config = config or load_tactile_image_config()
        self.table = lookup_table(self.config.colour_map)
        self.full_scale = int(full_scale)

    def indices(self, cells):
        """Each cell's entry of the table (0 .. 255), saturating at full scale."""
        cells = np.asarray(cells, dtype=np.int64)
        return np.clip(cells * 255 // self.full_scale, 0, 255)

    def image(self, cells):
        scale = self.config.scale
        colours = self.table[self.indices(cells)]
        return np.repeat(np.repeat(colours, scale, axis=0), scale, axis=1)
