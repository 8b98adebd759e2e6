"""Training logs the evaluation episodes' tactile frames to TensorBoard as images (config/train.yaml
evaluation.tactile_strips), drawn as `python -m plas_ros.data plot` draws them."""
import numpy as np
from tensorboard.backend.event_processing.event_accumulator import IMAGES, EventAccumulator

from plas_ros.algos.config import load_config
from plas_ros.algos.trainer import Trainer
from plas_ros.config import lookup
from plas_ros.data.loader import load_datasets
from plas_ros.data.plot import tactile_strip
from plas_ros.env import layout
from plas_ros.env.evaluation import Evaluator
from plas_ros.sim.gym_env import make_env
from tests.unit.test_data_cli import recorded


def test_evaluation_tactile_strips_reach_tensorboard(tmp_path):
    dataset = load_datasets([recorded(tmp_path / 'a.h5', ends=('timeout',) * 4, length=8)])
    cfg = load_config('config/train_robot.yaml', algo='bc', steps=4, log_every=2, eval_every=2, eval_episodes=2)
    evaluator = Evaluator(lambda: make_env(max_steps=6), episodes=2, gamma=None)
    out = tmp_path / 'run'
    trainer = Trainer(cfg, dataset, [0], [str(out)], evaluator=evaluator, progress=False)
    trainer.run()
    evaluator.close()
    tb = EventAccumulator(str(out / 'tb'), size_guidance={IMAGES: 0}).Reload()
    tags = tb.Tags()['images']
    count = int(lookup('train.yaml', 'evaluation.tactile_strips'))
    assert count >= 1 and sorted(tags) == ['eval/tactile_strip_%d' % i for i in range(count)]
    events = tb.Images('eval/tactile_strip_0')
    assert [e.step for e in events] == [2, 4]
    # The last image is the strip of the last evaluation's first episode, frame for frame.
    frames = evaluator.last_observations[0][:, layout.TACTILE].reshape(-1, layout.TACTILE_ROWS, layout.TACTILE_COLS)
    expected = tactile_strip(frames)
    assert (events[-1].height, events[-1].width) == expected.shape[:2]
    import io

    from matplotlib import image
    decoded = (image.imread(io.BytesIO(events[-1].encoded_image_string), format='png')[..., :3] * 255).round()
    np.testing.assert_array_equal(decoded.astype(np.uint8), expected)


def test_no_strips_without_a_tactile_layout(tmp_path):
    import h5py
    path = tmp_path / 'plain.h5'
    rng = np.random.default_rng(0)
    with h5py.File(path, 'w') as f:
        f['observations'] = rng.random((40, layout.OBS_DIM)).astype(np.float32)
        f['actions'] = rng.uniform(-1, 1, (40, 2)).astype(np.float32)
        f['rewards'] = np.zeros(40, np.float32)
        f['terminals'] = np.zeros(40, bool)
        f['timeouts'] = np.tile([0] * 7 + [1], 5).astype(bool)
    cfg = load_config('config/train_robot.yaml', algo='bc', steps=2, log_every=2, eval_every=2, eval_episodes=1)
    evaluator = Evaluator(lambda: make_env(max_steps=3), episodes=1, gamma=None)
    Trainer(cfg, load_datasets([path]), [0], [str(tmp_path / 'run')], evaluator=evaluator, progress=False).run()
    evaluator.close()
    assert EventAccumulator(str(tmp_path / 'run' / 'tb')).Reload().Tags()['images'] == []
