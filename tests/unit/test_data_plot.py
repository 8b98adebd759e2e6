"""`python -m plas_ros.data plot`: one episode drawn from a recorded file, and the tactile strip image."""
import h5py
import numpy as np
import pytest

from plas_ros.data import cli, plot
from plas_ros.data.loader import read_file
from plas_ros.env import layout
from tests.unit.test_data_cli import recorded, run

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


def test_tactile_strip_places_each_frame_and_colour_maps_it():
    frames = np.zeros((3, layout.TACTILE_ROWS, layout.TACTILE_COLS))
    frames[1, 2, 5] = 1.0                                       # one full-scale cell in the middle frame
    strip = plot.tactile_strip(frames, max_frames=10, scale=3, gap=2, colormap='gray')
    width = layout.TACTILE_COLS * 3
    assert strip.shape == (layout.TACTILE_ROWS * 3, 3 * width + 2 * 2, 3) and strip.dtype == np.uint8
    middle = strip[:, width + 2:2 * width + 2]
    np.testing.assert_array_equal(middle[6:9, 15:18], 255)       # cell (2, 5) as a 3 x 3 white block
    assert middle.sum() == 9 * 3 * 255                          # and nothing else lit
    assert not strip[:, width:width + 2].any()                  # the gap is black


def test_tactile_strip_keeps_first_and_last_of_a_long_episode():
    frames = np.zeros((100, 2, 2))
    frames[-1] = 1.0
    assert list(plot.frame_indices(100, 5)) == [0, 25, 50, 74, 99]
    strip = plot.tactile_strip(frames, max_frames=5, scale=1, gap=0, colormap='gray')
    assert strip.shape == (2, 10, 3) and strip[:, -2:].min() == 255 and strip[:, :8].max() == 0
    with pytest.raises(ValueError, match='colour map'):
        plot.tactile_strip(frames, colormap='no-such-map')


def test_plot_draws_an_episode_to_png(tmp_path, capsys):
    path = recorded(tmp_path / 'a.h5', ends=('timeout', 'terminal'), length=6)
    out = tmp_path / 'episode.png'
    code, text, err = run(capsys, 'plot', path, '--episode', 1, '-o', out)
    assert code == 0, err
    assert 'episode 1, 6 steps' in text and 'terminal' in text
    assert out.read_bytes()[:8] == PNG_MAGIC
    from matplotlib import image
    height, width = image.imread(str(out)).shape[:2]
    assert width > 600 and height > 600


def test_episode_data_uses_the_recorded_raw_extras(tmp_path):
    path = recorded(tmp_path / 'a.h5', ends=('timeout', 'error'), length=5)
    arrays = read_file(path)[0]
    data = plot.EpisodeData(path, -1)
    assert (data.index, data.steps, data.outcome, data.raw) == (1, 5, 'error', True)
    np.testing.assert_allclose(data.frames * layout.TACTILE_FULL_SCALE,
                               arrays['infos/tactile_raw'][5:].reshape(5, layout.TACTILE_ROWS, layout.TACTILE_COLS))
    np.testing.assert_array_equal(data.tip_z, arrays['infos/tip_pose'][5:, 2])
    np.testing.assert_array_equal(data.width, arrays['infos/gripper_width'][5:])


def test_episode_data_falls_back_to_the_observation(tmp_path):
    path = recorded(tmp_path / 'a.h5', ends=('timeout',), length=4)
    with h5py.File(path, 'r+') as f:
        f['infos/raw_known'][...] = False
    data = plot.EpisodeData(path, 0)
    obs = read_file(path)[0]['observations']
    assert not data.raw and data.force_label == '|force| (observation)'
    np.testing.assert_allclose(data.frames.reshape(4, -1), obs[:, layout.TACTILE])
    np.testing.assert_array_equal(data.pitch, obs[:, layout.PITCH])


def test_plot_errors_name_the_problem(tmp_path, capsys):
    path = recorded(tmp_path / 'a.h5', ends=('timeout',))
    code, _, err = run(capsys, 'plot', path, '--episode', 3, '-o', tmp_path / 'x.png')
    assert code == 1 and 'has 1 episodes (0..0); there is no episode 3' in err
    plain = tmp_path / 'plain.h5'
    with h5py.File(plain, 'w') as f:
        for key, value in read_file(path)[0].items():
            if not key.startswith(cli.INFOS) and key != 'next_observations':
                f[key] = value
    code, _, err = run(capsys, 'plot', plain, '-o', tmp_path / 'x.png')
    assert code == 1 and 'names no tactile part' in err and not (tmp_path / 'x.png').exists()
