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
    ('td3', CRITIC + ['--steps', '600'], ('policy',)),
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


# ---------------------------------------------------------------------------------------- refused runs

def tree_bytes(folder):
    """{relative path: sha256} of every file under `folder`."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, 'rb') as f:
                found[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return found


def in_process(*args):
    from plas_ros import train
    return train.main(list(args))


def refused(words, *args):
    """main(args) ends with one line 'error: ...' holding `words`."""
    with pytest.raises(SystemExit) as stop:
        in_process(*args)
    message = str(stop.value.code)
    assert message.startswith('error: ') and '\n' not in message and words in message, message
    return message


@pytest.fixture(scope='module')
def finished_run(tmp_path_factory, dataset):
    """A small saved PLAS run and the arguments that made it."""
    out = str(tmp_path_factory.mktemp('run') / 'plas')
    args = ['--dataset', dataset, '--algo', 'plas', '--vae-steps', '20', '--steps', '20'] + TINY + CRITIC + CVAE
    args = [a if a != '150' else '10' for a in args]  # --save-every 10
    assert in_process(*args + ['--out', out]) == 0
    return out, args


def with_option(args, option, value):
    """args with `option`'s value replaced (or the option added)."""
    if option not in args:
        return args + [option, value]
    index = args.index(option)
    return args[:index + 1] + [value] + args[index + 2:]


@pytest.mark.parametrize('change, words', [
    (lambda args, tmp: with_option(args, '--algo', 'plas_p'), 'the training state is of algorithm plas, not plas_p'),
    (lambda args, tmp: with_option(args, '--dataset', str(tmp)), 'the datasets differ from those of the run'),
    (lambda args, tmp: args + ['--set', 'actor_lr=1e-3'], 'configuration differs from that of the run: actor_lr'),
    (lambda args, tmp: with_option(args, '--seed', '3'), 'the training state is of seeds 0, not 3'),
    (lambda args, tmp: args + ['--vae-from', 'x'], '--vae-from with --resume'),
])
def test_a_resume_that_does_not_fit_is_refused_and_writes_nothing(finished_run, tmp_path, change, words):
    out, args = finished_run
    other = tmp_path / 'other.h5'
    write_dataset(other, n=100)
    before = tree_bytes(out)
    refused(words, *change(args, other) + ['--resume', out])
    assert tree_bytes(out) == before


@pytest.mark.parametrize('damage, words', [
    (lambda data: data[:len(data) // 2], 'damaged or unreadable training state'),
    (lambda data: b'not a zip file at all', 'damaged or unreadable training state'),
    (lambda data: b'', 'damaged or unreadable training state'),
])
def test_a_damaged_training_state_is_refused(finished_run, tmp_path, damage, words):
    import shutil
    out, args = finished_run
    copy = str(tmp_path / 'copy')
    shutil.copytree(out, copy)
    path = os.path.join(copy, 'train_state.pt')
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(damage(data))
    before = tree_bytes(copy)
    refused(words, *args + ['--resume', copy])
    assert tree_bytes(copy) == before


def test_a_missing_training_state_is_named(finished_run, tmp_path):
    out, args = finished_run
    refused('no training state to resume from', *args + ['--resume', str(tmp_path)])
    refused('a run resumes in its own folder', *args + ['--resume', out, '--out', str(tmp_path)])


@pytest.mark.parametrize('extra, words', [
    (['--set', 'actor_lrr=1e-3'], "plas has no setting 'actor_lrr'; valid keys: actor_hidden, actor_lr"),
    (['--set', 'phi=0.1'], "plas has no setting 'phi'"),
    (['--set', 'actor_lr=5'], 'command line: actor_lr: must lie in (0.0, 1.0] (config/train.yaml ranges), got 5.0'),
    (['--set', 'lmbda=-0.5'], 'lmbda: must lie in [0.0, 1.0]'),
    (['--set', 'critic_lr=0'], 'critic_lr: must lie in (0.0, 1.0]'),
    (['--set', 'batch_size=64'], 'batch_size is given twice'),
    (['--set', 'gamma'], None),
    (['--device', 'cuda'], '--device cuda: CUDA is not available on this machine'),
    (['--device', 'cuda:1'], '--device cuda:1: CUDA is not available'),
    (['--device', 'tpu'], "--device 'tpu': expected cpu, cuda, cuda:N or auto"),
    (['--save-every', '-1'], '--save-every must be >= 0'),
])
def test_bad_settings_and_devices_are_refused_and_write_nothing(finished_run, extra, words):
    if torch.cuda.is_available() and 'CUDA' in (words or ''):
        pytest.skip('this machine has CUDA')
    out, args = finished_run
    before = tree_bytes(out)
    if words is None:  # argparse's own usage error
        with pytest.raises(SystemExit):
            in_process(*args + extra + ['--out', out])
    else:
        refused(words, *with_option(args, '--batch-size', '16') + extra + ['--out', out])
    assert tree_bytes(out) == before


def test_settings_from_the_command_line_reach_the_checkpoint(tmp_path, dataset):
    import yaml
    out = str(tmp_path / 'bcq')
    assert in_process('--dataset', dataset, '--algo', 'bcq', '--steps', '3', '--out', out, '--no-progress',
                      '--set', 'actor_lr=1e-4', '--set', 'critic_hidden=[12, 10]', '--set', 'phi=0.1',
                      '--set', 'gamma=0.9', '--set', 'tau=0.01', '--set', 'lmbda=0.5', '--set', 'vae_hidden=6,6',
                      '--set', 'batch_size=8', '--device', 'cpu') == 0
    train_cfg = yaml.safe_load(open(os.path.join(out, 'config.yaml')))['train']
    assert (train_cfg['actor_lr'], train_cfg['critic_hidden'], train_cfg['phi'], train_cfg['gamma']) == (
        1e-4, [12, 10], 0.1, 0.9)
    assert (train_cfg['tau'], train_cfg['lmbda'], train_cfg['vae_hidden'], train_cfg['batch_size']) == (
        0.01, 0.5, [6, 6], 8)
    record = read_record(out)
    assert record['config'] == train_cfg and record['device'] == 'cpu' and record['save_every'] == 0
    refused('critic_hidden: must list numbers in [1, 65536] (config/train.yaml ranges), got [64, 0]', '--dataset',
            dataset, '--algo', 'td3', '--out', str(tmp_path / 'x'), '--set', 'critic_hidden=64,0')
    assert not os.path.exists(os.path.join(out, 'train_state.pt'))  # no --save-every: no state


# --------------------------------------------------------------------------------------------- run.json

def test_run_record_names_code_command_data_and_outcome(finished_run, dataset):
    out, args = finished_run
    record = read_record(out)
    assert record['format'] == 'plas_ros-run' and record['status'] == 'finished'
    git = record['package']['git']
    assert record['package']['version'] and (git['commit'] is None or len(git['commit']) == 40)
    assert isinstance(git['dirty'], bool) or git['commit'] is None
    assert record['command']['argv'][1:3] == ['-m', 'plas_ros.train'] and record['command']['argv'][3:] == \
        args + ['--out', out]
    with open(dataset, 'rb') as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert record['datasets'] == [{'path': os.path.abspath(dataset), 'size': os.path.getsize(dataset),
                                   'sha256': digest}]
    assert record['seeds'] == [0] and record['device'] == 'cpu' and record['checkpoints'] == [out]
    assert record['config']['vae_hidden'] == [8, 8] and record['train_state'] == os.path.join(out, 'train_state.pt')
    assert record['progress'] == {'phase': 'done', 'step': 0, 'updates_done': 40, 'updates_total': 40}
    assert record['summary']['algo'] == 'plas' and record['vae_from'] is None and record['resumes'] == []


def test_git_state_outside_a_checkout(tmp_path):
    from plas_ros.algos.run_record import git_state
    state = git_state(str(tmp_path))
    assert state['commit'] is None and state['dirty'] is None and 'no git checkout' in state['note']


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    from plas_ros.algos.checkpoint import atomic_write
    path = str(tmp_path / 'state.pt')
    atomic_write(path, lambda f: f.write(b'old'), binary=True)

    def broken(f):
        f.write(b'half of the new')
        raise OSError('disk full')
    with pytest.raises(OSError, match='disk full'):
        atomic_write(path, broken, binary=True)
    assert open(path, 'rb').read() == b'old'


# ----------------------------------------------------------------------------------------------- --vae-from

def test_vae_from_reuses_a_trained_cvae(finished_run, tmp_path, dataset):
    out, args = finished_run
    reuse = str(tmp_path / 'plas_p')
    common = ['--dataset', dataset, '--algo', 'plas_p', '--steps', '5', '--no-progress'] + CRITIC + CVAE
    assert in_process(*common + ['--vae-from', out, '--out', reuse]) == 0
    given = torch.load(os.path.join(out, 'model.pt'), weights_only=True)['modules']['cvae']
    used = torch.load(os.path.join(reuse, 'model.pt'), weights_only=True)['modules']['cvae']
    assert all(torch.equal(given[k], used[k]) for k in given)  # frozen: phase 1 skipped, the CVAE unchanged
    import yaml
    assert yaml.safe_load(open(os.path.join(reuse, 'config.yaml')))['progress'] == {'vae_steps': 0, 'policy_steps': 5}
    record = read_record(reuse)
    assert record['vae_from']['dir'] == os.path.abspath(out)
    assert record['vae_from']['checkpoints'][0]['model_sha256'] == hashlib.sha256(
        open(os.path.join(out, 'model.pt'), 'rb').read()).hexdigest()
    before = tree_bytes(out)
    refused('its vae_hidden is [8, 8], this run\'s [16, 16]',
            *common[:-2] + ['--set', 'vae_hidden=16,16', '--vae-from', out, '--out', str(tmp_path / 'x')])
    refused('td3 trains no separate CVAE', '--dataset', dataset, '--algo', 'td3', '--vae-from', out, '--out',
            str(tmp_path / 'y'))
    refused('cannot read the checkpoint configuration', *common + ['--vae-from', str(tmp_path), '--out',
                                                                   str(tmp_path / 'z')])
    assert tree_bytes(out) == before and not os.path.exists(tmp_path / 'x')


def test_devices():
    from plas_ros.algos.devices import resolve_device
    assert resolve_device('cpu') == torch.device('cpu')
    assert resolve_device('auto') == torch.device('cuda' if torch.cuda.is_available() else 'cpu')
