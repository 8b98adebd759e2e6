"""The cloth simulator: determinism, the tactile picture, grip, slip, pull-out, loss, forces, bad input."""
import numpy as np
import pytest

from plas_ros.env import layout
from plas_ros.sim.cloth import ClothSim, load_cloth_config

F_MIN = np.array([4.5, 4.5, 9.0])  # the gripper controller's "no force" thresholds (config/env.yaml)


@pytest.fixture(scope='module')
def config():
    return load_cloth_config()


def gripped(config, seed, compression_mm=0.8):
    """A sim with the fingers closed to `compression_mm` on the cloth."""
    sim = ClothSim(config, seed=seed)
    sim.set_width(sim.part_width_mm() - config.hem_extra_mm - compression_mm)
    return sim


def track(sim, dy, steps=70):
    """Perfect ground-truth tracking at a fixed speed; returns the steps held."""
    for step in range(steps):
        sim.move_tip(dy, sim.edge_offset_mm / 1000.0)
        if not sim.edge_held:
            return step
    return steps


def test_same_seed_same_episode_and_readings(config):
    runs = []
    for _ in range(2):
        sim = gripped(config, seed=11)
        frames = []
        for dz in (0.0, 0.004, -0.006, 0.002):
            sim.move_tip(0.05, dz)
            frames.append((sim.tactile_raw(), sim.wrench(), sim.tip_pose(), sim.edge_held))
        runs.append(frames)
    for a, b in zip(*runs):
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and np.array_equal(a[2], b[2])
        assert a[3] == b[3]
    assert gripped(config, seed=12).edge_offset_mm != gripped(config, seed=11).edge_offset_mm


def test_reading_sensors_does_not_change_what_happens(config):
    quiet, busy = gripped(config, seed=5), gripped(config, seed=5)
    for step in range(40):
        for _ in range(step % 4):
            busy.tactile_raw()
            busy.wrench()
        quiet.move_tip(0.08, 0.0)
        busy.move_tip(0.08, 0.0)
        assert quiet.edge_held == busy.edge_held and quiet.edge_offset_mm == busy.edge_offset_mm


def test_reset_without_seed_draws_the_next_episode_reproducibly(config):
    a, b = ClothSim(config, seed=3), ClothSim(config, seed=3)
    first = a.edge_offset_mm
    a.reset()
    b.reset()
    assert a.edge_offset_mm == b.edge_offset_mm and a.edge_offset_mm != first
    assert a.width_mm == config.start_width_mm and a.edge_held


def test_frame_shape_range_and_open_fingers_read_nothing(config):
    sim = ClothSim(config, seed=1)
    frame = sim.tactile_raw()
    assert frame.shape == (layout.TACTILE_ROWS, layout.TACTILE_COLS) and frame.dtype == np.uint16
    assert sim.width_mm == 4.0 and frame.max() < 40  # open at reset: the cloth is thinner than 4 mm


def test_rows_below_the_edge_light_up_and_follow_it(config):
    sim = gripped(config, seed=2)
    covered_rows = (sim.pressure() > 100).mean(axis=1)
    assert covered_rows[-1] == 1.0 and covered_rows[0] == 0.0  # cloth below the edge, nothing above
    assert np.all(np.diff(covered_rows) >= 0)
    before = covered_rows.sum()
    sim.move_tip(0.0, -0.007)  # tip down: the edge rises in the finger (partly dragged along)
    assert (sim.pressure() > 100).mean(axis=1).sum() > before + 0.5


def test_tighter_grip_reads_higher_and_saturates(config):
    sim = ClothSim(config, seed=4)
    means, coverage = [], []
    for width in (sim.part_width_mm() - 0.3, 2.0, 1.5, 0.5):
        sim.set_width(width)
        pressure = sim.pressure()
        covered = pressure[pressure > 40]
        means.append(covered.mean() if covered.size else 0.0)
        coverage.append(covered.size)
    assert means == sorted(means) and coverage == sorted(coverage)
    assert coverage[0] < coverage[-1]  # loose: sparse
    frames = np.stack([sim.tactile_raw() for _ in range(20)])
    assert frames.max() == layout.TACTILE_FULL_SCALE  # tight: saturated cells read full scale, never more


def test_leaving_the_rows_loses_the_edge_and_silences_the_sensors(config):
    sim = gripped(config, seed=6)
    assert sim.part_width_mm() is not None
    sim.move_tip(0.0, 0.08)  # far up: the edge drops out below the finger
    assert not sim.edge_held and sim.lost_reason == 'left_rows'
    assert sim.part_width_mm() is None
    for _ in range(50):
        assert sim.tactile_raw().max() < 40
    forces = np.median([sim.wrench()[:3] for _ in range(10)], axis=0)
    assert np.all(np.abs(forces) < F_MIN)
    sim.move_tip(0.0, -0.08)  # coming back does not bring the cloth back
    assert not sim.edge_held


def test_friction_grows_with_grip_and_speed(config):
    def drag(compression, dy):
        sim = gripped(config, seed=8, compression_mm=compression)
        sim.move_tip(dy, 0.0)
        return -np.median([sim.wrench()[1] for _ in range(15)])
    assert drag(0.5, 0.02) < drag(0.5, 0.1) < drag(1.5, 0.1)


def test_slip_and_pull_out_grow_with_speed_and_bad_grip(config):
    seeds = range(40)

    def held(compression, dy):
        return np.mean([track(gripped(config, s, compression), dy) for s in seeds])
    good_slow, good_fast = held(0.8, 0.03), held(0.8, 0.1)
    assert good_slow > good_fast
    assert held(2.6, 0.1) < good_fast     # too tight: pulled out
    assert held(-0.5, 0.1) < good_fast    # not gripped at all: flutters out
    assert good_slow > 60


def test_random_actions_lose_the_edge_quickly(config):
    rng = np.random.default_rng(0)
    lengths = []
    for seed in range(30):
        sim = gripped(config, seed)
        steps = 0
        while sim.edge_held and steps < 70:
            sim.move_tip(*layout.action_to_step(rng.uniform(-1, 1, 2)))
            steps += 1
        lengths.append(steps)
    assert max(lengths) < 30 and np.mean(lengths) < 10


def test_safety_box_clips_the_tip(config):
    sim = ClothSim(config, seed=0)
    result = sim.move_tip(0.0, 1.0)
    assert result.clipped and result.pose[2] == config.box_high_m[2]
    assert sim.tip_pose()[0] == config.tip_x_m
    far = ClothSim(config, seed=0)
    for _ in range(70):  # the long cloth: 70 full steps never hit the box in y
        assert not far.move_tip(0.1, 0.0).clipped


@pytest.mark.parametrize('call', [lambda s: s.set_width(float('nan')), lambda s: s.set_width(-1.0),
                                  lambda s: s.move_tip(float('inf'), 0.0), lambda s: s.move_tip(0.0, 'x')])
def test_bad_input_is_refused_and_changes_nothing(config, call):
    sim = ClothSim(config, seed=0)
    before = (sim.tip_pose(), sim.width_mm)
    with pytest.raises(ValueError):
        call(sim)
    assert np.array_equal(sim.tip_pose(), before[0]) and sim.width_mm == before[1]


def test_config_errors_name_the_key(tmp_path):
    import yaml

    from plas_ros.sim.cloth import DEFAULT_SIM_YAML
    with open(DEFAULT_SIM_YAML) as f:
        raw = yaml.safe_load(f)
    del raw['dynamics']['hold_force_n']
    raw['contact']['bogus'] = 1
    path = tmp_path / 'sim.yaml'
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match="hold_force_n.*bogus"):
        load_cloth_config(str(path))
