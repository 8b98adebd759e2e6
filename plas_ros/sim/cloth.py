"""A compact, seeded model of the gripper, the cloth edge and their contact (the cloth-sliding task).

Geometry (the tip moves in the vertical y-z plane at a fixed x):
- the slide coordinate s is how far the tip has moved along the edge from the fixture (tip y = start_y + s);
  the cloth has no hard end, so 70 full-speed steps (7 m) fit;
- the edge's rest height along the slide is a per-episode smooth profile (slope + a few sinusoids); the
  cloth near the fingers may be stretched up or down from it by `deform` (dragged by the gripper);
- the finger's 14 rows run along the finger, vertically (row 0 on top), its 6 columns along the slide.
  Cloth lies below the edge, so the rows below the edge light up, as strongly as the grip compresses
  the cloth (width below the cloth's thickness; saturating at full scale), sparse when loose (texture).

Per step (`move_tip`): vertical moves drag the gripped cloth part of the way; sliding relaxes that
stretch and adds random slip that grows with speed and with a grip that is too loose or too tight;
friction grows with grip and speed and pulls the cloth out above a hold force; an ungripped cloth
flutters out at speed; the edge is lost when it leaves the finger's rows. Once lost, the tactile matrix
reads its empty floor (< 40) and the wrench its bias (below the controller's f_min).

Two random streams per episode: `dynamics` (profile, slip, pull-out) and `noise` (sensor readings), so
how often the sensors are read never changes what happens to the cloth.
"""
import dataclasses
import math
from dataclasses import dataclass
from typing import Tuple

import numpy as np

from plas_ros.config import check_keys, config_path, from_mapping, load_yaml, refer, reference, section, user_path
from plas_ros.env import layout
from plas_ros.hardware.arm import MoveResult, SafetyBox

DEFAULT_SIM_YAML = config_path('sim.yaml')
DEFAULT_ROBOT_YAML = config_path('robot.yaml')
SECTIONS = ('fixture', 'profile', 'finger', 'contact', 'dynamics', 'wrench')
# Fields another file owns: {section here: {field: (file, dotted key there)}}.
REFERENCES = {'fixture': {'start_width_mm': ('env.yaml', 'calibration.start_width_mm')},
              'finger': {'taxel_mm': ('robot.yaml', 'finger.taxel_mm')}}


@dataclass(frozen=True)
class ClothConfig:
    # from config/robot.yaml (arm section)
    tip_x_m: float
    box_low_m: Tuple[float, float, float]
    box_high_m: Tuple[float, float, float]
    # fixture
    start_y_m: float
    start_z_m: float
    start_pitch_deg: float
    start_width_mm: float
    start_edge_mm: float
    start_edge_jitter_mm: float
    slide_y_high_m: float
    # profile
    slope_max: float
    components: int
    amplitude_mm: Tuple[float, float]
    wavelength_m: Tuple[float, float]
    # finger
    taxel_mm: float
    lost_margin_mm: float
    # contact
    cloth_width_mm: Tuple[float, float]
    hem_extra_mm: float
    hem_width_mm: float
    pressure_scale_mm: float
    roughness_mm: float
    texture_wavelength_mm: Tuple[float, float]
    edge_softness_mm: float
    taxel_gain_spread: float
    noise_sigma: float
    noise_rel: float
    floor_sigma: float
    floor_max: float
    # dynamics
    good_compression_mm: Tuple[float, float]
    drag_fraction_max: float
    drag_scale_mm: float
    deform_max_mm: float
    relax_length_m: float
    slip_sigma_mm: float
    loose_gain: float
    tight_gain: float
    speed_hazard: float
    friction_n_per_mm: float
    static_friction_fraction: float
    hold_force_n: float
    pullout_gain: float
    # wrench
    bias_n: Tuple[float, float, float]
    noise_n: Tuple[float, float, float]
    cloth_weight_n: float
    tension_n_per_mm: float
    lateral_fraction: float
    lever_m: Tuple[float, float, float]
    torque_noise_nm: float
    sample_rate_hz: float      # the simulated force sensor's sampling rate (the arm twin's wrench_samples)

    @property
    def safety_box(self):
        """The robot's box with y raised to slide_y_high_m (the simulated cloth has no hard end)."""
        high = list(self.box_high_m)
        high[1] = max(high[1], self.slide_y_high_m)
        return SafetyBox(self.box_low_m, high)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def load_cloth_config(path=None, robot_path=None):
    """ClothConfig from config/sim.yaml (sections flattened), strictly (plas_ros.config), with the values other
    files own: the arm section of config/robot.yaml (tip x, safety box), the finger's taxel pitch
    (robot.yaml finger) and the fingers' opening at reset (config/env.yaml calibration.start_width_mm)."""
    path = user_path(path, 'sim.yaml')
    robot_path = user_path(robot_path, 'robot.yaml')
    raw = load_yaml(path)
    check_keys(raw, SECTIONS, path)
    values, where = {}, {}
    for name in SECTIONS:
        entries = section(raw, name, path)
        entries = refer(entries, {k: reference(*owner) for k, owner in REFERENCES.get(name, {}).items()}, path, name)
        values.update(entries)
        where.update((k, '%s.%s' % (name, k)) for k in entries)
    arm = section(robot_path, 'arm')
    plane = from_mapping(_ArmPlane, {k: arm[k] for k in ('tip_x', 'safety_box_low', 'safety_box_high') if k in arm},
                         robot_path, 'arm')
    values.update(tip_x_m=plane.tip_x, box_low_m=plane.safety_box_low, box_high_m=plane.safety_box_high)
    return from_mapping(ClothConfig, values, path, where=where)


@dataclass(frozen=True)
class _ArmPlane:
    """What the simulator takes from config/robot.yaml's arm section."""
    tip_x: float
    safety_box_low: Tuple[float, float, float]
    safety_box_high: Tuple[float, float, float]


def _finite(value, what):
    value = float(value)
    if not math.isfinite(value):
        raise ValueError('%s must be a finite number, got %r' % (what, value))
    return value


class _Episode:
    """Everything drawn once per episode from the dynamics stream."""

    def __init__(self, config, rng):
        c = config
        n = c.components
        self.slope = rng.uniform(-c.slope_max, c.slope_max)
        self.amplitude_m = rng.uniform(*c.amplitude_mm, size=n) / 1000.0
        self.wavenumber = 2.0 * np.pi / rng.uniform(*c.wavelength_m, size=n)
        self.phase = rng.uniform(0.0, 2.0 * np.pi, size=n)
        self.cloth_width_mm = rng.uniform(*c.cloth_width_mm)
        rows = layout.TACTILE_ROWS
        # Two sinusoids per row along the cloth: the texture the finger slides over.
        self.texture_wavenumber = 2.0 * np.pi / (rng.uniform(*c.texture_wavelength_mm, size=(rows, 1, 2)) / 1000.0)
        self.texture_phase = rng.uniform(0.0, 2.0 * np.pi, size=(rows, 1, 2))
        self.taxel_gain = 1.0 + rng.uniform(-c.taxel_gain_spread, c.taxel_gain_spread,
                                            size=(rows, layout.TACTILE_COLS))
        self.start_edge_m = (c.start_edge_mm + rng.normal(0.0, c.start_edge_jitter_mm)) / 1000.0

    def height(self, s):
        """Rest height of the edge (m, relative to the profile's start) at slide coordinate(s) s (m)."""
        s = np.asarray(s, dtype=np.float64)
        waves = np.sin(np.multiply.outer(s, self.wavenumber) + self.phase) - np.sin(self.phase)
        return self.slope * s + waves @ self.amplitude_m

    def texture(self, s):
        """Texture height in [0, 1] per taxel at slide coordinates s (rows, cols)."""
        waves = np.sin(s[:, :, None] * self.texture_wavenumber + self.texture_phase)
        return 0.5 + 0.25 * waves.sum(axis=2)


class ClothSim:
    """The cloth, the finger and the arm's tip in one seeded model. Not thread-safe."""

    def __init__(self, config=None, seed=None):
        self.config = config or load_cloth_config()
        self._box = self.config.safety_box
        self._seeds = np.random.SeedSequence(seed)
        taxel = self.config.taxel_mm / 1000.0
        rows, cols = layout.TACTILE_ROWS, layout.TACTILE_COLS
        # Taxel centres in the finger frame (m): row 0 on top, columns along the slide.
        self._row_up = ((rows - 1) / 2.0 - np.arange(rows))[:, None] * taxel * np.ones((1, cols))
        self._col_along = (np.arange(cols) - (cols - 1) / 2.0)[None, :] * taxel * np.ones((rows, 1))
        self._half_span = rows / 2.0 * taxel
        self.reset()

    # ------------------------------------------------------------------------------------------ episode

    def reset(self, seed=None):
        """New episode: new edge profile; tip at the fixture with the fingers open around the edge."""
        sequence = np.random.SeedSequence(seed) if seed is not None else self._seeds.spawn(1)[0]
        dynamics_seq, noise_seq = sequence.spawn(2)
        self._rng = np.random.default_rng(dynamics_seq)
        self._noise = np.random.default_rng(noise_seq)
        self._episode = _Episode(self.config, self._rng)
        c = self.config
        self._slide = 0.0
        self._z = c.start_z_m
        self._pitch = c.start_pitch_deg
        self._width = c.start_width_mm
        # Put the edge where the episode says, relative to the finger centre, with the cloth at rest.
        self._profile_origin = self._z + self._episode.start_edge_m
        self._deform = 0.0
        self._speed = 0.0
        self._force = np.zeros(3)
        self._lost_reason = None
        self._update_force(dz=0.0)
        return self.tip_pose()

    @property
    def edge_held(self):
        """Ground truth: the edge is still between the fingers (diagnostics and tests only)."""
        return self._lost_reason is None

    @property
    def lost_reason(self):
        """None while held, else 'left_rows', 'pulled_out' or 'fluttered_out'."""
        return self._lost_reason

    @property
    def slide_m(self):
        return self._slide

    def edge_height_m(self, y):
        """The edge's height (m, world z) at tip-y coordinate(s) y (m): the episode's profile with the current
        stretch (for views: no random draw)."""
        slide = np.asarray(y, dtype=np.float64) - self.config.start_y_m
        return self._profile_origin + self._episode.height(slide) + self._deform

    @property
    def finger_length_m(self):
        """The length of the finger's cells along it (m)."""
        return 2.0 * self._half_span

    @property
    def edge_offset_mm(self):
        """Edge height above the finger centre (mm), ground truth."""
        return self._edge_above_centre() * 1000.0

    # ------------------------------------------------------------------------------------------ gripper

    @property
    def width_mm(self):
        return self._width

    def set_width(self, width_mm):
        width = _finite(width_mm, 'finger width (mm)')
        if width < 0.0:
            raise ValueError('finger width must not be negative, got %r mm' % width)
        self._width = width
        self._update_force(dz=0.0)

    def part_width_mm(self):
        """Width at which closing fingers meet the cloth (its hem), or None when no cloth is between them."""
        if not self.edge_held:
            return None
        return self._episode.cloth_width_mm + self.config.hem_extra_mm

    def compression_mm(self):
        """How far the fingers squeeze the cloth (mm, <= 0 when they do not touch it)."""
        return self._episode.cloth_width_mm - self._width

    # ------------------------------------------------------------------------------------------ arm

    def tip_pose(self):
        return np.array([self.config.tip_x_m, self.config.start_y_m + self._slide, self._z, self._pitch])

    def move_tip(self, dy, dz, dpitch=0.0):
        """One step of the tip (m, m, deg), clipped to the safety box -> MoveResult(pose, clipped)."""
        dy, dz = _finite(dy, 'dy'), _finite(dz, 'dz')
        dpitch = _finite(dpitch, 'dpitch')
        start = self.tip_pose()
        target, clipped = self._box.clip(start[:3] + np.array([0.0, dy, dz]))
        dy, dz = target[1] - start[1], target[2] - start[2]
        self._slide += dy
        self._z += dz
        self._pitch += dpitch
        self._speed = max(dy, 0.0) / layout.MAX_STEP_M
        if self.edge_held:
            self._advance_cloth(dy, dz)
        self._update_force(dz)
        return MoveResult(self.tip_pose(), clipped)

    def _grip_factors(self):
        """(looseness, tightness), each in [0, 1], of the grip relative to the good compression band."""
        low, high = self.config.good_compression_mm
        compression = self.compression_mm()
        looseness = min(max((low - compression) / low, 0.0), 1.0)
        tightness = min(max((compression - high) / high, 0.0), 1.0)
        return looseness, tightness

    def _advance_cloth(self, dy, dz):
        c = self.config
        compression = max(self.compression_mm(), 0.0)
        # A vertical move drags the gripped cloth along, up to how far the cloth can stretch.
        drag = c.drag_fraction_max * (1.0 - math.exp(-compression / c.drag_scale_mm))
        deform_max = c.deform_max_mm / 1000.0
        self._deform = float(np.clip(self._deform + drag * dz, -deform_max, deform_max))
        # Sliding on brings fresh cloth between the fingers: the stretch relaxes.
        self._deform *= math.exp(-max(dy, 0.0) / c.relax_length_m)
        looseness, tightness = self._grip_factors()
        grip_factor = 1.0 + c.loose_gain * looseness + c.tight_gain * tightness
        slip_sigma = c.slip_sigma_mm / 1000.0 * self._speed ** 2 * grip_factor
        self._deform += self._rng.normal(0.0, 1.0) * slip_sigma
        friction = self._sliding_friction()
        hazard_pull = c.pullout_gain * max(friction - c.hold_force_n, 0.0) / c.hold_force_n
        hazard_flutter = c.speed_hazard * self._speed ** 3 * grip_factor
        draw = self._rng.uniform()  # always drawn, so the stream does not depend on the branch taken
        if draw < 1.0 - math.exp(-hazard_pull - hazard_flutter):
            self._lost_reason = 'pulled_out' if hazard_pull >= hazard_flutter else 'fluttered_out'
        elif abs(self._edge_above_centre()) > self._half_span + c.lost_margin_mm / 1000.0:
            self._lost_reason = 'left_rows'

    def _edge_above_centre(self):
        """Edge height above the finger centre (m) at the tip's slide coordinate."""
        rest = self._profile_origin + float(self._episode.height(self._slide))
        return rest + self._deform - self._z

    def _sliding_friction(self):
        c = self.config
        compression = max(self.compression_mm(), 0.0)
        scale = c.static_friction_fraction + (1.0 - c.static_friction_fraction) * self._speed
        return c.friction_n_per_mm * compression * scale

    def _update_force(self, dz):
        """The force the cloth exerts on the tip after the last change (held until the next one)."""
        c = self.config
        if not self.edge_held or self.compression_mm() <= 0.0:
            self._force = np.zeros(3)
            return
        friction = self._sliding_friction()
        tension = c.tension_n_per_mm * self._deform * 1000.0
        self._force = np.array([c.lateral_fraction * friction, -friction, -(c.cloth_weight_n + tension)])

    # ------------------------------------------------------------------------------------------ sensors

    def wrench(self):
        """One noisy reading [fx, fy, fz, tx, ty, tz] (N, Nm) at the wrist's force sensor."""
        c = self.config
        force = self._force + np.asarray(c.bias_n) + self._noise.normal(0.0, 1.0, 3) * np.asarray(c.noise_n)
        torque = np.cross(np.asarray(c.lever_m), force) + self._noise.normal(0.0, c.torque_noise_nm, 3)
        return np.concatenate([force, torque])

    def pressure(self):
        """Noise-free tactile pressure (14, 6), raw units (float)."""
        c = self.config
        if not self.edge_held:
            return np.zeros((layout.TACTILE_ROWS, layout.TACTILE_COLS))
        pitch = math.radians(self._pitch)
        along = self._col_along * math.cos(pitch) - self._row_up * math.sin(pitch)
        up = self._col_along * math.sin(pitch) + self._row_up * math.cos(pitch)
        slide = self._slide + along
        rest = self._profile_origin + self._episode.height(slide)
        depth = rest + self._deform - self._z - up  # how far below the edge each taxel sits (m)
        depth_mm = depth * 1000.0
        covered = np.clip(0.5 + depth_mm / c.edge_softness_mm, 0.0, 1.0)
        hem = c.hem_extra_mm * np.exp(-np.maximum(depth_mm, 0.0) / c.hem_width_mm)
        texture = c.roughness_mm * self._episode.texture(slide)
        compression = np.maximum(self.compression_mm() + hem - texture, 0.0)
        saturation = 1.0 - np.exp(-compression / c.pressure_scale_mm)
        return layout.TACTILE_FULL_SCALE * saturation * covered * self._episode.taxel_gain

    def tactile_raw(self):
        """One noisy DSA frame (14, 6) uint16: pressed taxels with Gaussian noise, empty ones below floor_max."""
        c = self.config
        pressure = self.pressure()
        shape = pressure.shape
        pressed = pressure + self._noise.normal(0.0, 1.0, shape) * (c.noise_sigma + c.noise_rel * pressure)
        floor = np.minimum(np.abs(self._noise.normal(0.0, c.floor_sigma, shape)), c.floor_max)
        values = np.where(pressure > 0.0, pressed, floor)
        return np.rint(np.clip(values, 0.0, layout.TACTILE_FULL_SCALE)).astype(np.uint16)
