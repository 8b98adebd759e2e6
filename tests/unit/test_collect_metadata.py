"""A file the in-process collector writes stores its seed (config/run.yaml seeds.collect by default), the behaviour
of each episode (the schedule's member) and the behaviour config it ran with."""
import h5py

from plas_ros.collect.collector import main
from plas_ros.collect.policies import load_collect_config
from plas_ros.config import config_path, job_seed
from plas_ros.data import schema
from plas_ros.data.loader import read_file


def test_the_collector_stores_seed_members_and_config(tmp_path, capsys):
    output = str(tmp_path / 'c.h5')
    assert main(['--policy', 'schedule', '--episodes', '4', '--output', output, '--no-progress']) == 0
    _, attrs = read_file(output)
    assert attrs[schema.ATTR_SEED] == str(job_seed('collect')) and attrs[schema.ATTR_POLICY].startswith('schedule(')
    with open(config_path('collect.yaml')) as f:
        assert attrs[schema.ATTR_BEHAVIOUR_CONFIG] == f.read()
    with h5py.File(output, 'r') as f:
        members = f[schema.EPISODE_BEHAVIOUR_KEY].asstr()[:].tolist()
    assert len(members) == 4
    schedule = load_collect_config().schedule
    assert set(members) <= {'random', 'expert', 'expert+noise0.1', 'expert+noise0.2'} and len(schedule) == 4


def test_an_explicit_seed_is_stored(tmp_path):
    output = str(tmp_path / 'c.h5')
    assert main(['--policy', 'random', '--episodes', '1', '--output', output, '--seed', '11', '--no-progress']) == 0
    _, attrs = read_file(output)
    assert attrs[schema.ATTR_SEED] == '11'
    with h5py.File(output, 'r') as f:
        assert f[schema.EPISODE_BEHAVIOUR_KEY].asstr()[:].tolist() == ['random']
