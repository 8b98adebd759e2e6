"""Resume: a `python -m plas_ros.train` run killed with SIGKILL and resumed ends bit-identical to the run that was
never stopped (both phases of PLAS, with evaluation; TD3; BCQ with two seeds), its TensorBoard curves hold
every step once, and run.json tells the story. Tiny networks and a 200-row dataset: seconds per run."""
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.helpers.tree import REPO_ROOT
from tests.unit.test_train_cli import HERE, write_dataset

# Every step logged and a state every 150: the event files grow between two saves (their buffer fills).
TINY = ['--set', 'actor_hidden=8,8', '--batch-size', '16', '--log-every', '1', '--threads', '1', '--no-progress',
        '--save-every', '150']
CRITIC = ['--set', 'critic_hidden=8,8']
CVAE = ['--set', 'vae_hidden=8,8']
POLL_S, WAIT_S = 0.005, 240.0


def child_env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, REPO_ROOT, os.environ.get('PYTHONPATH', '')]))


def train(*args):
    done = subprocess.run([sys.executable, '-m', 'plas_ros.train'] + list(args), cwd=REPO_ROOT, env=child_env(),
                          capture_output=True, text=True, timeout=WAIT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def read_record(out):
    try:
        with open(os.path.join(out, 'run.json')) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None  # not there yet (it is replaced atomically: never half written)


def train_until_killed(args, out, saved_in_phase):
    """Start a run; once it has saved a training state in phase `saved_in_phase` and then written more
    TensorBoard events (which the resumed run must drop), SIGKILL it. Returns its run record."""
    proc = subprocess.Popen([sys.executable, '-m', 'plas_ros.train'] + list(args), cwd=REPO_ROOT, env=child_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline, sizes_at_save = time.monotonic() + WAIT_S, None
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if sizes_at_save is None:
                progress = (read_record(out) or {}).get('progress') or {}
                if progress.get('phase') == saved_in_phase:
                    sizes_at_save = event_sizes(out)
            elif event_sizes(out) != sizes_at_save:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(POLL_S)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, 'the run ended before it was killed: %s' % proc.stderr.read()[-2000:]
    proc.stderr.close()
    record = read_record(out)
    assert record['status'] == 'running' and record['progress']['phase'] == saved_in_phase
    assert record['progress']['updates_done'] < record['progress']['updates_total']
    recorded = torch.load(os.path.join(out, 'train_state.pt'), weights_only=True)['tensorboard']
    assert sum(sum(files.values()) for files in recorded.values()) < sum(event_sizes(out).values()), \
        'the killed run wrote no event after its last save: the test would not see duplicated steps'
    return record


def event_sizes(out):
    """{event file: bytes} of every TensorBoard folder of a run (its seeds' folders)."""
    sizes = {}
    for folder in checkpoint_dirs(out):
        tb = os.path.join(folder, 'tb')
        for name in (os.listdir(tb) if os.path.isdir(tb) else []):
            sizes[os.path.join(tb, name)] = os.path.getsize(os.path.join(tb, name))
    return sizes


def checkpoint_dirs(out):
    subs = sorted(n for n in os.listdir(out) if n.startswith('seed_')) if os.path.isdir(out) else []
    return [os.path.join(out, n) for n in subs] or [out]


def assert_same_weights(out_a, out_b):
    assert len(checkpoint_dirs(out_a)) == len(checkpoint_dirs(out_b))
    for a, b in zip(checkpoint_dirs(out_a), checkpoint_dirs(out_b)):
        wa = torch.load(os.path.join(a, 'model.pt'), weights_only=True)['modules']
        wb = torch.load(os.path.join(b, 'model.pt'), weights_only=True)['modules']
        assert sorted(wa) == sorted(wb)
        for module in wa:
            assert sorted(wa[module]) == sorted(wb[module])
            for key in wa[module]:
                assert torch.equal(wa[module][key], wb[module][key]), '%s: %s.%s differs' % (a, module, key)


def scalar_events(tb_folder):
    """{(tag, step): [values]} over every event file of a TensorBoard folder."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util import tensor_util
    found = {}
    names = sorted(n for n in os.listdir(tb_folder) if 'tfevents' in n)
    assert names, tb_folder
    for name in names:
        for event in EventFileLoader(os.path.join(tb_folder, name)).Load():
            for value in event.summary.value:
                number = float(tensor_util.make_ndarray(value.tensor)) if value.HasField('tensor') \
                    else value.simple_value
                found.setdefault((value.tag, event.step), []).append(number)
    return found


def assert_same_curves(out_a, out_b):
    for a, b in zip(checkpoint_dirs(out_a), checkpoint_dirs(out_b)):
        ea, eb = scalar_events(os.path.join(a, 'tb')), scalar_events(os.path.join(b, 'tb'))
        twice = sorted(k for k, v in eb.items() if len(v) > 1)
        assert not twice, 'steps logged more than once after the resume: %s' % twice[:5]
        assert sorted(ea) == sorted(eb), 'missing %s' % sorted(set(ea) - set(eb))[:5]
        assert ea == eb


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp('data') / 'a.h5'
    write_dataset(path)
    return str(path)


@pytest.mark.parametrize('algo, extra, kills', [
    ('plas', CRITIC + CVAE + ['--vae-steps', '300', '--steps', '450', '--eval-env', 'test_train_cli:make_step_env',
                              '--eval-every', '100', '--eval-episodes', '1'], ('vae', 'policy')),
    ('td3', CRITIC + ['--steps', '450'], ('policy',)),
    ('bcq', CRITIC + CVAE + ['--steps', '450', '--seeds', '0,1', '--set', 'act_samples=4',
                             '--set', 'target_samples=2'], ('policy',)),
])
def test_a_killed_run_resumes_bit_identically(tmp_path, dataset, algo, extra, kills):
    common = ['--dataset', dataset, '--algo', algo] + TINY + extra
    whole, broken = str(tmp_path / 'whole'), str(tmp_path / 'broken')
    train(*common + ['--out', whole])
    records = []
    for index, phase in enumerate(kills):
        args = common + (['--resume', broken] if index else ['--out', broken])
        records.append(train_until_killed(args, broken, phase))
    resumed = train(*common + ['--resume', broken])
    assert 'resuming from' in resumed.stdout and 'run record: %s' % os.path.join(broken, 'run.json') in resumed.stdout
    assert_same_weights(whole, broken)
    assert_same_curves(whole, broken)
    record, reference = read_record(broken), read_record(whole)
    assert record['status'] == 'finished' and len(record['resumes']) == len(kills)
    assert [r['phase'] for r in record['resumes']] == list(kills)
    assert record['evaluation'] == reference['evaluation'] and record['started'] == records[0]['started']
    assert record['summary']['last_stats'] == reference['summary']['last_stats']
