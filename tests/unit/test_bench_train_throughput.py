"""bench/train_throughput.py can fail: a ratio under its target is FAIL and makes the table (and the exit) fail."""
import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_bench():
    path = os.path.join(ROOT, 'bench', 'train_throughput.py')
    spec = importlib.util.spec_from_file_location('train_throughput', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rates(d3rlpy, ours, three):
    return {'d3rlpy': {'vae': d3rlpy, 'policy': d3rlpy}, 'ours': {'vae': ours, 'policy': ours},
            'ours x3 seeds': {'vae': three, 'policy': three}}


def test_every_target_is_checked_and_a_miss_fails(capsys):
    bench = load_bench()
    assert set(bench.TARGETS) == {(preset, phase + suffix) for preset in ('robot', 'mujoco')
                                  for phase in ('vae', 'policy') for suffix in ('', ' x3')} - {
        ('mujoco', 'vae x3'), ('mujoco', 'policy x3')}
    assert bench.verdict('robot', 'policy', 4.0) == ('>= 4.0x ok', True)
    assert bench.verdict('robot', 'policy', 3.99) == ('>= 4.0x FAIL', False)
    assert bench.verdict('mujoco', 'policy x3', 0.1) == ('', True)  # no target there
    # 100 upd/s for d3rlpy; ours 450 (4.5x); three seeds 300 each: 900 in aggregate, 9x d3rlpy's one seed.
    assert bench.print_table('robot', rates(100.0, 450.0, 300.0))
    assert 'FAIL' not in capsys.readouterr().out
    # Three seeds at 250 each: 7.5x in aggregate, under the 8x target.
    assert not bench.print_table('robot', rates(100.0, 450.0, 250.0))
    out = capsys.readouterr().out
    assert '1.80x' in out and '7.50x' in out and 'FAIL' in out
