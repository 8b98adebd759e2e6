"""plas_ros.config: finding config/, strict sections (errors name the file and the dotted key), overlays, and
the values that have one owner among the YAML files."""
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import List, Optional, Tuple

import pytest
import yaml

from plas_ros import config as cfg
from plas_ros.config import ConfigError, config_dir, config_path, load_section, load_yaml, lookup, overlay

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass(frozen=True)
class Inner:
    gain: float
    sizes: Tuple[int, ...]


@dataclass(frozen=True)
class Outer:
    name: str
    count: int
    enabled: bool
    box: Tuple[float, float, float]
    layers: List[int]
    inner: Inner
    note: Optional[str] = None


GOOD = {'part': {'name': 'a', 'count': 3, 'enabled': True, 'box': [1, 2.5, 3], 'layers': [4, 5],
                 'inner': {'gain': 2, 'sizes': [1, 2]}}}


def _write(tmp_path, raw, name='thing.yaml'):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def test_config_dir_is_the_packages_config_folder():
    assert os.path.samefile(config_dir(), os.path.join(ROOT, 'config'))
    assert os.path.samefile(config_path('env.yaml'), os.path.join(ROOT, 'config', 'env.yaml'))
    assert load_yaml('env.yaml') == load_yaml(os.path.join(ROOT, 'config', 'env.yaml'))  # a bare name: config/


def test_config_dir_from_another_working_folder_and_through_the_devel_space(tmp_path):
    # Run elsewhere, plas_ros is imported as the environment has it (the catkin devel space under in_env.sh).
    code = 'import plas_ros.config as c; print(c.config_dir())'
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert os.path.samefile(out.stdout.strip(), os.path.join(ROOT, 'config'))


def test_config_dir_of_an_installed_package_comes_from_rospkg(monkeypatch):
    rospkg = pytest.importorskip('rospkg')
    try:
        rospkg.RosPack().get_path('plas_ros')
    except rospkg.ResourceNotFound:
        pytest.skip('plas_ros is not on ROS_PACKAGE_PATH here')
    monkeypatch.setattr(cfg, '__file__', '/nonexistent/lib/python3/dist-packages/plas_ros/config.py')
    cfg.config_dir.cache_clear()
    try:
        assert os.path.samefile(config_dir(), os.path.join(ROOT, 'config'))
    finally:
        cfg.config_dir.cache_clear()


def test_load_section_converts_lists_nested_dataclasses_and_ints_for_floats():
    part = load_section(Outer, GOOD, 'part', 'x.yaml')
    assert part == Outer('a', 3, True, (1.0, 2.5, 3.0), [4, 5], Inner(2.0, (1, 2)))
    assert isinstance(part.box, tuple) and isinstance(part.inner.gain, float) and isinstance(part.layers, list)
    assert load_section(Outer, dict(GOOD['part'], note='n'), None, 'x.yaml').note == 'n'


@pytest.mark.parametrize('change, key, text', [
    (lambda p: p.update(colour=1), 'part.colour', "unknown keys ['colour']"),
    (lambda p: p.pop('count'), 'part.count', "missing keys ['count']"),
    (lambda p: p.update(count=2.5), 'part.count', 'expected an integer'),
    (lambda p: p.update(count=True), 'part.count', 'expected an integer'),
    (lambda p: p.update(enabled='yes'), 'part.enabled', 'expected true or false'),
    (lambda p: p.update(box=[1, 2]), 'part.box', 'expected a list of 3'),
    (lambda p: p.update(name=7), 'part.name', 'expected a string'),
    (lambda p: p['inner'].update(gain='high'), 'part.inner.gain', 'expected a number'),
    (lambda p: p['inner'].update(sizes=[1, 'x']), 'part.inner.sizes[1]', 'expected an integer'),
    (lambda p: p['inner'].pop('sizes'), 'part.inner.sizes', "missing keys ['sizes']"),
    (lambda p: p.update(inner=3), 'part.inner', 'expected a mapping'),
])
def test_strict_errors_name_the_file_and_the_dotted_key(tmp_path, change, key, text):
    raw = yaml.safe_load(yaml.safe_dump(GOOD))
    change(raw['part'])
    path = _write(tmp_path, raw)
    with pytest.raises(ConfigError) as info:
        load_section(Outer, path, 'part')
    assert info.value.path == path and info.value.key == key
    message = str(info.value)
    assert message.startswith(path + ': ') and key in message and text in message
    assert isinstance(info.value, ValueError)


def test_missing_files_sections_and_bad_yaml_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match='cannot read'):
        load_yaml(str(tmp_path / 'absent.yaml'))
    bad = tmp_path / 'bad.yaml'
    bad.write_text('a: [1, 2\n')
    with pytest.raises(ConfigError, match='bad.yaml: not valid YAML'):
        load_yaml(str(bad))
    bad.write_text('- 1\n- 2\n')
    with pytest.raises(ConfigError, match='expected a mapping at the top'):
        load_yaml(str(bad))
    path = _write(tmp_path, {'part': {'a': 1}})
    with pytest.raises(ConfigError) as info:
        load_section(Outer, path, 'other.deeper')
    assert (info.value.path, info.value.key) == (path, 'other')
    with pytest.raises(ConfigError) as info:
        lookup(path, 'part.b')
    assert (info.value.path, info.value.key) == (path, 'part.b')
    assert lookup(path, 'part.a') == 1


def test_overlay_checks_types_and_takes_empty_strings_as_the_default():
    defaults = {'rate': 30.0, 'port': 1000, 'host': 'h', 'sim': False, 'box': [1, 2], 'bound': None}
    out = overlay(defaults, {'rate': 20, 'port': '', 'sim': True, 'bound': '[0, 1]'}, 'robot.yaml', 'wsg')
    assert out == {'rate': 20.0, 'port': 1000, 'host': 'h', 'sim': True, 'box': [1, 2], 'bound': '[0, 1]'}
    for given, key in (({'port': 1.5}, 'wsg.port'), ({'sim': 'true'}, 'wsg.sim'), ({'host': 3}, 'wsg.host'),
                       ({'box': 3}, 'wsg.box'), ({'colour': 1}, 'wsg.colour')):
        with pytest.raises(ConfigError) as info:
            overlay(defaults, given, 'robot.yaml', 'wsg')
        assert info.value.key == key and 'robot.yaml' in str(info.value)
    with pytest.raises(ConfigError, match='wsg.bound: required'):
        overlay(defaults, {}, 'robot.yaml', 'wsg', required=('bound',))


def test_a_value_owned_elsewhere_may_not_be_repeated(tmp_path):
    from plas_ros.collect.policies import load_collect_config
    from plas_ros.sim.cloth import load_cloth_config
    collect = load_yaml('collect.yaml')
    collect['expert']['contact_taxel_threshold'] = 40
    with pytest.raises(ConfigError) as info:
        load_collect_config(_write(tmp_path, collect, 'collect.yaml'))
    assert info.value.key == 'expert.contact_taxel_threshold' and 'config/env.yaml' in str(info.value)
    sim = load_yaml('sim.yaml')
    sim['fixture']['start_width_mm'] = 4.0
    with pytest.raises(ConfigError) as info:
        load_cloth_config(_write(tmp_path, sim, 'sim.yaml'))
    assert info.value.key == 'fixture.start_width_mm' and 'calibration.start_width_mm' in str(info.value)


def test_shared_values_have_one_owner_and_every_user_reads_it():
    from plas_ros.collect.policies import load_collect_config
    from plas_ros.env import layout
    from plas_ros.env.config import load_env_config
    from plas_ros.hardware.dsa import protocol as dsa
    from plas_ros.sim.cloth import load_cloth_config
    env, expert, cloth = load_env_config(), load_collect_config().expert, load_cloth_config()
    finger = load_yaml('robot.yaml')['finger']
    # The finger: 14 x 6 cells of 3.4 mm, full scale 3895 (config/robot.yaml finger).
    assert finger == {'rows': 14, 'cols': 6, 'full_scale': 3895, 'taxel_mm': 3.4}
    assert (layout.TACTILE_ROWS, layout.TACTILE_COLS, layout.TACTILE_FULL_SCALE) == (14, 6, 3895.0)
    assert (dsa.ROWS, dsa.COLS, dsa.FULLSCALE, dsa.TEXEL_SIZE_MM) == (14, 6, 3895, 3.4)
    assert cloth.taxel_mm == 3.4 and expert.taxel_m == pytest.approx(0.0034)
    # The contact threshold 40 and the start width 4.0 mm (config/env.yaml).
    assert env.gripper.contact_taxel_threshold == expert.contact_taxel_threshold == 40
    assert env.calibration.start_width_mm == cloth.start_width_mm == 4.0
    # The width speed 70 mm/s: env.yaml gripper.speed_mm_s; the WSG driver's default speed refers to it.
    assert env.gripper.speed_mm_s == lookup('env.yaml', 'gripper.speed_mm_s') == 70.0
    assert 'default_speed' not in load_yaml('robot.yaml')['wsg']
    # The env node's timings live in config/env.yaml node.
    assert (lookup('env.yaml', 'node.action_timeout'), lookup('env.yaml', 'node.sensor_max_age')) == (1.0, 0.5)
    # Nothing repeats these in the other files.
    for name, section in (('collect.yaml', 'expert'), ('sim.yaml', 'fixture'), ('sim.yaml', 'finger')):
        assert not {'contact_taxel_threshold', 'taxel_m', 'taxel_mm', 'start_width_mm'} & set(load_yaml(name)[section])


def test_yaml_files_hold_no_nulls_where_a_ros_master_loads_them():
    # drivers' tests load config/robot.yaml into a master; XML-RPC has no null.
    def nulls(value, key=''):
        if isinstance(value, dict):
            return [k for name, v in value.items() for k in nulls(v, '%s.%s' % (key, name) if key else name)]
        return [key] if value is None else []
    assert nulls(load_yaml('robot.yaml')) == []


def test_the_driver_clients_defaults_are_the_robot_files():
    import inspect

    from plas_ros.hardware.arm import WrenchMedianFilter
    from plas_ros.hardware.dsa.client import DsaClient
    from plas_ros.hardware.intera_arm import InteraArm
    from plas_ros.hardware.wsg import WsgClient
    from plas_ros.sim.arm import SimArmClient
    robot = load_yaml('robot.yaml')

    def defaults(cls):
        return {n: p.default for n, p in inspect.signature(cls).parameters.items() if p.default is not p.empty}
    wsg, dsa, arm = defaults(WsgClient), defaults(DsaClient), defaults(InteraArm)
    assert (wsg['port'], wsg['timeout']) == (robot['wsg']['port'], robot['wsg']['timeout'])
    assert {k: dsa[k] for k in ('baudrate', 'timeout', 'frame_rate', 'rle', 'matrix', 'boot_timeout')} == {
        k: robot['dsa'][k] for k in ('baudrate', 'timeout', 'frame_rate', 'rle', 'matrix', 'boot_timeout')}
    tip = ('tip_offset', 'reference_orientation', 'pitch_range_deg', 'pitch_step_max_deg')
    intera = ('limb', 'joint_speed', 'move_timeout', 'joint_tolerance', 'ik_timeout') + tip
    assert {k: arm[k] for k in intera} == {k: robot['arm'][k] for k in intera}
    assert defaults(WrenchMedianFilter)['window'] == robot['arm']['wrench_median_window']
    sim = defaults(SimArmClient)
    assert (sim['host'], sim['timeout'], sim['tip_x']) == (robot['arm']['sim_host'], robot['arm']['sim_timeout'],
                                                           robot['arm']['tip_x'])
    assert {k: sim[k] for k in tip} == {k: robot['arm'][k] for k in tip}
