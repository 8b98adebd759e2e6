"""Frames of the cloth-sliding task for render_mode="rgb_array", drawn with numpy (no display, no matplotlib).

A frame is the tactile image (the last reading's cells, colour-mapped and upscaled as the drivers' image_color
topics: plas_ros.hardware.tactile_image) beside a side view of the tip and the cloth edge (config/render.yaml):
y to the right, z up, the tip in the middle; the cloth below its edge, the finger's cells as a bar through the
tip at its pitch (red once the edge is lost).
"""
import dataclasses
import math
from typing import Tuple

import numpy as np

from plas_ros.config import from_mapping, load_yaml, lookup
from plas_ros.hardware.tactile_image import TactileColouriser

Colour = Tuple[int, int, int]


@dataclasses.dataclass(frozen=True)
class SideViewConfig:
    width: int
    span_y_m: float
    background: Colour
    cloth: Colour
    finger: Colour
    lost: Colour


@dataclasses.dataclass(frozen=True)
class RenderConfig:
    fps: float
    side_view: SideViewConfig


def load_render_config(path='render.yaml'):
    return from_mapping(RenderConfig, load_yaml(path), path)


def render_fps(path='render.yaml'):
    return float(lookup(path, 'fps'))


class FrameRenderer:
    """`frame(sim, tactile_raw)` -> (H, W, 3) uint8: the tactile image beside the side view."""

    def __init__(self, config=None, colouriser=None):
        self.config = config or load_render_config()
        self.colouriser = colouriser or TactileColouriser()

    def frame(self, sim, tactile_raw):
        tactile = self.colouriser.image(tactile_raw)
        return np.concatenate([tactile, self.side_view(sim, tactile.shape[0])], axis=1)

    def side_view(self, sim, height):
        view = self.config.side_view
        image = np.empty((height, view.width, 3), dtype=np.uint8)
        image[:] = view.background
        _, tip_y, tip_z, pitch = sim.tip_pose()
        metres_per_px = view.span_y_m / view.width
        ys = tip_y + (np.arange(view.width) - view.width / 2.0) * metres_per_px
        edge_rows = self._row(sim.edge_height_m(ys), tip_z, height, metres_per_px)
        below = np.arange(height)[:, None] >= edge_rows[None, :]
        image[below] = view.cloth
        colour = view.finger if sim.edge_held else view.lost
        self._bar(image, sim.finger_length_m / metres_per_px, pitch, colour)
        return image

    @staticmethod
    def _row(z, tip_z, height, metres_per_px):
        """Image rows of heights z (the tip's height in the middle row), clipped to the image."""
        rows = height / 2.0 - (np.asarray(z) - tip_z) / metres_per_px
        return np.clip(np.rint(rows), 0, height).astype(np.int64)

    @staticmethod
    def _bar(image, length_px, pitch_deg, colour, thickness=3):
        """A bar of `length_px` through the image's centre, vertical at pitch 0, tilted by the pitch."""
        height, width = image.shape[:2]
        angle = math.radians(pitch_deg)
        t = np.linspace(-0.5, 0.5, max(2, int(length_px) * 2))[:, None] * length_px
        across = np.arange(thickness)[None, :] - thickness // 2
        cols = np.rint(width / 2.0 + t * math.sin(angle) + across * math.cos(angle)).astype(np.int64).ravel()
        rows = np.rint(height / 2.0 - t * math.cos(angle) + across * math.sin(angle)).astype(np.int64).ravel()
        inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        image[rows[inside], cols[inside]] = colour
