"""Pictures of recorded data: one episode as a figure, tactile frames over time as an image strip.

`python -m plas_ros.data plot FILE --episode N -o out.png` draws episode N (0-based, in file order, as
`info` counts them; -1 is the last) of a cloth-sliding file: the tactile strip, the forces, the tip's z and
pitch, the gripper width with its adjustments, the reward and return, and the outcome in the title. The file
describes its own observation (its `obs_layout` attribute); a recorder file's raw extras (`infos/*`, in
newtons, counts, metres and degrees) are drawn where it recorded them, else the scaled observation.
The trainer logs `tactile_strip` images of evaluation episodes to TensorBoard. Settings: config/data.yaml.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from plas_ros.config import section
from plas_ros.data import schema
from plas_ros.data.episodes import episode_slices
from plas_ros.data.loader import read_file
from plas_ros.hardware.finger import FINGER
from plas_ros.hardware.tactile_image import COLOUR_MAPS, lookup_table

CONFIG_FILE = 'data.yaml'
INFOS = schema.INFOS_GROUP + '/'
# The observation parts drawn, by the prefix of their name in the file's layout (plas_ros.env.layout).
PARTS = ('force', 'tactile', 'tip_z', 'pitch')


def finger_shape() -> Tuple[int, int]:
    """(rows, cols) of the tactile finger, config/robot.yaml `finger`."""
    return FINGER.rows, FINGER.cols


def layout_parts(attrs, obs_dim) -> Dict[str, slice]:
    """The observation slices of the cloth task's parts (PARTS) named by the file's `obs_layout` attribute."""
    parts = {}
    for name, start, stop in schema.obs_layout_segments(attrs):
        for part in PARTS:
            if name.startswith(part) and 0 <= start < stop <= obs_dim:
                parts.setdefault(part, slice(start, stop))
    return parts


# -- the tactile strip -----------------------------------------------------------------------------------------
def frame_indices(count: int, max_frames: int) -> np.ndarray:
    """At most `max_frames` indices spread evenly over range(count), the first and the last included."""
    if count <= max_frames:
        return np.arange(count)
    return np.unique(np.round(np.linspace(0, count - 1, max_frames)).astype(int))


def tactile_strip(frames, max_frames: Optional[int] = None, scale: Optional[int] = None,
                  gap: Optional[int] = None, colormap: Optional[str] = None) -> np.ndarray:
    """(H, W, 3) uint8: frames (T, rows, cols) in [0, 1] (1 = full scale) side by side, colour-mapped.

    Each cell is a `scale` x `scale` block; frames are `gap` black pixels apart; at most `max_frames` frames,
    evenly spaced in time. Defaults: config/data.yaml `strip`.
    """
    cfg = section(CONFIG_FILE, 'strip')
    max_frames = int(cfg['max_frames'] if max_frames is None else max_frames)
    scale = int(cfg['scale'] if scale is None else scale)
    gap = int(cfg['gap'] if gap is None else gap)
    frames = np.asarray(frames, dtype=np.float64)
    if frames.ndim != 3 or not len(frames):
        raise ValueError('tactile_strip needs frames of shape (T, rows, cols), got %s' % (frames.shape,))
    if max_frames < 1 or scale < 1 or gap < 0:
        raise ValueError('tactile_strip: max_frames and scale must be >= 1 and gap >= 0')
    chosen = frames[frame_indices(len(frames), max_frames)]
    name = colormap or cfg['colormap']
    if name not in COLOUR_MAPS:
        raise ValueError('unknown colour map %r (config/data.yaml strip.colormap): one of %s'
                         % (name, ', '.join(COLOUR_MAPS)))
    lut = lookup_table(name)  # the colours of the tactile image topics (plas_ros.hardware.tactile_image)
    levels = np.round(np.clip(np.nan_to_num(chosen, nan=0.0), 0.0, 1.0) * (len(lut) - 1)).astype(int)
    blocks = lut[levels].repeat(scale, axis=1).repeat(scale, axis=2)           # (n, rows*s, cols*s, 3)
    n, height, width, _ = blocks.shape
    strip = np.zeros((height, n * width + (n - 1) * gap, 3), np.uint8)
    for i, block in enumerate(blocks):
        strip[:, i * (width + gap):i * (width + gap) + width] = block
    return strip


def observation_frames(observations, tactile: slice, shape: Tuple[int, int]) -> np.ndarray:
    """The tactile part of observations (N, obs_dim), scaled to [0, 1] of full scale, as (N, rows, cols)."""
    rows, cols = shape
    cells = np.asarray(observations)[:, tactile]
    if cells.shape[1] != rows * cols:
        raise ValueError('the tactile part holds %d values, the finger %d x %d cells (config/robot.yaml finger)'
                         % (cells.shape[1], rows, cols))
    return cells.reshape(-1, rows, cols)


# -- one episode -----------------------------------------------------------------------------------------------
class EpisodeData:
    """What the plot draws of one episode of a file: per-step series with their units."""

    def __init__(self, path, episode: int):
        arrays, attrs = read_file(path)
        slices = episode_slices(arrays['terminals'], arrays['timeouts'])
        if not slices:
            raise ValueError('%s holds no episodes' % path)
        if not -len(slices) <= episode < len(slices):
            raise ValueError('%s has %d episodes (0..%d); there is no episode %d'
                             % (path, len(slices), len(slices) - 1, episode))
        rows = slices[episode]
        obs = np.asarray(arrays['observations'][rows], dtype=np.float64)
        self.parts = layout_parts(attrs, obs.shape[1])
        if 'tactile' not in self.parts:
            raise ValueError('%s: its obs_layout attribute names no tactile part; `plot` draws cloth-sliding '
                             'files (plas_ros recorder files)' % path)
        self.path, self.index, self.steps = str(path), episode % len(slices), rows.stop - rows.start
        self.rewards = np.asarray(arrays['rewards'][rows], dtype=np.float64)
        self.outcome = schema.rows_outcome(arrays, rows)
        self.policy = str(attrs.get(schema.ATTR_POLICY, ''))
        info = {key[len(INFOS):]: np.asarray(value[rows]) for key, value in arrays.items() if key.startswith(INFOS)}
        raw = info.get('raw_known', np.zeros(self.steps, bool)).astype(bool)
        self.raw = bool(raw.all()) and 'tactile_raw' in info
        full_scale = float(FINGER.full_scale)
        shape = finger_shape()
        if self.raw:
            self.frames = info['tactile_raw'].reshape(-1, *shape) / full_scale
            self.force, self.force_label = info['force_raw'].astype(np.float64), 'force (N)'
            self.tip_z, self.pitch = info['tip_pose'][:, 2], info['tip_pose'][:, 3]
            self.tip_z_unit, self.pitch_unit = 'm', 'deg'
        else:
            self.frames = observation_frames(obs, self.parts['tactile'], shape)
            self.force = obs[:, self.parts['force']] if 'force' in self.parts else None
            self.tip_z = obs[:, self.parts['tip_z']][:, 0] if 'tip_z' in self.parts else None
            self.pitch = obs[:, self.parts['pitch']][:, 0] if 'pitch' in self.parts else None
            self.force_label = '|force| (observation)'
            self.tip_z_unit = self.pitch_unit = 'observation units'
        self.width = info.get('gripper_width')
        self.adjustment = info.get('gripper_adjustment')


def plot_episode(path, episode: int, out) -> EpisodeData:
    """Draw `episode` of `path` into the image file `out` (PNG by its name); returns what was drawn."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    data = EpisodeData(path, episode)
    cfg = section(CONFIG_FILE, 'plot')
    fig, axes = plt.subplots(5, 1, figsize=(float(cfg['width_in']), float(cfg['height_in'])),
                             gridspec_kw={'height_ratios': [1.3, 1, 1, 1, 1]})
    _draw_strip(axes[0], data)
    steps = np.arange(data.steps)
    _draw_lines(axes[1], steps, data.force, ['x', 'y', 'z'], data.force_label)
    _draw_pose(axes[2], steps, data)
    _draw_gripper(axes[3], steps, data)
    axes[4].bar(steps, data.rewards, color='tab:green', label='reward')
    axes[4].plot(steps, np.cumsum(data.rewards), color='black', label='return so far')
    axes[4].set_ylabel('reward')
    axes[4].set_xlabel('step')
    axes[4].legend(loc='upper left', fontsize='small')
    for ax in axes[1:]:
        ax.set_xlim(-0.5, max(data.steps - 0.5, 0.5))
        ax.grid(alpha=0.3)
    fig.suptitle('%s, episode %d: %d steps, return %.3f, outcome %s%s'
                 % (data.path, data.index, data.steps, data.rewards.sum(), data.outcome,
                    ', policy %s' % data.policy if data.policy else ''), fontsize='medium')
    fig.tight_layout()
    fig.savefig(str(out), dpi=int(cfg['dpi']))
    plt.close(fig)
    return data


def _draw_strip(ax, data):
    indices = frame_indices(data.steps, int(section(CONFIG_FILE, 'strip')['max_frames']))
    ax.imshow(tactile_strip(data.frames), interpolation='nearest', aspect='auto')
    ax.set_yticks([])
    ax.set_xticks([])
    ax.set_title('tactile frames at steps %s (row 0 on top; %s)'
                 % (_step_list(indices), 'raw counts / full scale' if data.raw else 'observation'),
                 fontsize='small')


def _step_list(indices: Sequence[int]) -> str:
    shown = [str(int(i)) for i in indices]
    return ', '.join(shown) if len(shown) <= 8 else '%s, ..., %s' % (', '.join(shown[:4]), ', '.join(shown[-2:]))


def _draw_lines(ax, steps, values, labels: List[str], ylabel: str):
    if values is None:
        ax.text(0.5, 0.5, 'not recorded', transform=ax.transAxes, ha='center')
    else:
        for column, label in zip(np.asarray(values).reshape(len(steps), -1).T, labels):
            ax.plot(steps, column, label=label)
        ax.legend(loc='upper left', fontsize='small', ncol=len(labels))
    ax.set_ylabel(ylabel)


def _draw_pose(ax, steps, data):
    _draw_lines(ax, steps, data.tip_z, ['tip z'], 'tip z (%s)' % data.tip_z_unit)
    if data.pitch is not None:
        twin = ax.twinx()
        twin.plot(steps, data.pitch, color='tab:red', label='pitch')
        twin.set_ylabel('pitch (%s)' % data.pitch_unit, color='tab:red')


def _draw_gripper(ax, steps, data):
    if data.width is None:
        _draw_lines(ax, steps, None, [], 'gripper width (mm)')
        return
    ax.plot(steps, data.width, color='tab:purple', label='width')
    for sign, marker, label in ((1, '^', 'widened'), (-1, 'v', 'narrowed')):
        where = np.flatnonzero(np.asarray(data.adjustment) == sign)
        if where.size:
            ax.scatter(where, np.asarray(data.width)[where], marker=marker, label=label, zorder=3)
    ax.set_ylabel('gripper width (mm)')
    ax.legend(loc='upper left', fontsize='small', ncol=3)
