"""Algorithm name -> class (the names of TrainConfig.algo and of the trainer's --algo)."""
from plas_ros.algos.bc import BC
from plas_ros.algos.bcq import BCQ
from plas_ros.algos.bear import BEAR
from plas_ros.algos.config import ALGOS
from plas_ros.algos.plas import PLAS, PLASP
from plas_ros.algos.td3 import TD3

ALGORITHMS = {'plas': PLAS, 'plas_p': PLASP, 'bc': BC, 'td3': TD3, 'bcq': BCQ, 'bear': BEAR}
assert tuple(sorted(ALGORITHMS)) == tuple(sorted(ALGOS))


def build_algorithm(cfg, obs_dim, act_dim, action_low, action_high, seeds=(0,)):
    return ALGORITHMS[cfg.algo](cfg, obs_dim, act_dim, action_low, action_high, seeds)
