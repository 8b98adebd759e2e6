"""The figure-3(c) reproduction: the paper's claims decided from evaluation histories, and a quick run end to end."""
import json
import os
import subprocess
import sys

import numpy as np

from plas_ros import reproduce
from tests.helpers.tree import REPO_ROOT


def history(returns_by_seed, every=150):
    """Evaluation records as the trainer writes them: one per seed and evaluation step."""
    return [{'seed': seed, 'step': every * (i + 1), 'return_mean': float(r)}
            for seed, returns in enumerate(returns_by_seed) for i, r in enumerate(returns)]


def results(**curves):
    return {algo: {'history': history(np.tile(curve, (3, 1)))} for algo, curve in curves.items()}


LEVELS = {'expert': 4.6, 'dataset': 1.4}


def decided(res):
    return {claim: holds for claim, holds, _ in reproduce.claims(res, LEVELS)}


def test_the_paper_s_figure_gives_every_claim():
    flat = np.full(16, 1.0)
    res = results(plas=np.full(16, 4.4), plas_p=np.full(16, 4.0), bc=flat, td3=np.full(16, 0.2),
                  bcq=np.full(16, 1.3), bear=np.r_[np.linspace(1.0, 4.0, 8), np.full(8, 2.0)])
    assert decided(res) == {'BC fails': True, 'offline TD3 fails': True, 'BCQ is close to BC': True,
                            'BEAR rises, then drops': True, 'PLAS is near the expert': True, 'PLAS is the best': True}


def test_claims_that_do_not_hold_say_so_with_their_numbers():
    res = results(plas=np.full(16, 3.0), bc=np.full(16, 4.2), td3=np.full(16, 4.0), bcq=np.full(16, 2.0),
                  bear=np.linspace(1.0, 4.0, 16))
    assert decided(res) == {'BC fails': False, 'offline TD3 fails': False, 'BCQ is close to BC': False,
                            'BEAR rises, then drops': False, 'PLAS is near the expert': False,
                            'PLAS is the best': False}
    numbers = {claim: text for claim, _, text in reproduce.claims(res, LEVELS)}
    assert 'BC late 4.20 vs midpoint 3.00' in numbers['BC fails']
    assert 'best late return: BC 4.20' in numbers['PLAS is the best']


def test_a_claim_about_an_algorithm_that_did_not_run_is_not_decided():
    res = results(plas=np.full(16, 4.4), bc=np.full(16, 1.0))
    table = {claim: holds for claim, holds, _ in reproduce.claims(res, LEVELS)}
    assert table['BEAR rises, then drops'] is None and table['BC fails'] is True


def test_plas_and_plas_p_share_one_job_and_its_cvae():
    plan = {'algos': ['plas', 'plas_p', 'bc', 'bear'], 'share_cvae': ['plas', 'plas_p']}
    assert reproduce.job_groups(plan) == [['plas', 'plas_p'], ['bc'], ['bear']]


def test_a_quick_reproduction_writes_the_figure_the_tables_and_the_claims(tmp_path):
    out = tmp_path / 'r'
    proc = subprocess.run([sys.executable, '-m', 'plas_ros.reproduce', '--out', str(out), '--quick', '--no-progress'],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in ('figure_3c.png', 'results.md', 'results.json', 'dataset.h5'):
        assert os.path.getsize(out / name) > 0, name
    saved = json.loads((out / 'results.json').read_text())
    assert sorted(saved['results']) == sorted(saved['plan']['algos'])
    assert saved['plan']['behaviour_policy'] == 'online_td3' and saved['timing']['total_s'] > 0
    text = (out / 'results.md').read_text()
    assert '| claim of the paper' in text and 'PLAS is the best' in text
    assert saved['results']['plas_p']['cvae'] == 'shared with plas'


def test_plas_p_takes_the_cvae_plas_trained_and_skips_phase_1(tmp_path):
    import torch

    from plas_ros.algos.config import load_config
    from plas_ros.algos.trainer import Trainer
    from plas_ros.data.loader import load_datasets
    dataset = load_datasets([os.path.join(REPO_ROOT, 'data', 'cloth_sim_small.h5')])
    plas = Trainer(load_config(None, algo='plas', steps=5, vae_steps=20), dataset, [0, 1],
                   [str(tmp_path / 'a0'), str(tmp_path / 'a1')], progress=False, tensorboard=False)
    plas.run()
    state = plas.algorithm.cvae.state_dict()
    plas_p = Trainer(load_config(None, algo='plas_p', steps=5, vae_steps=20), dataset, [0, 1],
                     [str(tmp_path / 'b0'), str(tmp_path / 'b1')], progress=False, tensorboard=False,
                     cvae_state=state)
    plas_p.run()
    assert 'vae' not in plas_p.rates and 'vae' in plas.rates
    for name, value in plas_p.algorithm.cvae.state_dict().items():
        assert torch.equal(value, state[name]), name
