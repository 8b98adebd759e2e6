"""Both tactile routes end to end: `collect.launch tactile_source:=finger1` (the DSA finger read through the WSG
driver, the authors' rig, no DSACON32 driver running) records episodes whose observations have the same
statistics as those of the DSACON32 serial route (`tactile_source:=dsa`), on the same simulated cloth."""
import h5py
import numpy as np
import pytest

from plas_ros.env import layout
from tests.helpers.common import free_port
from tests.helpers.ros import digest

pytestmark = pytest.mark.needs('launch/collect.launch', 'launch/drivers.launch',
                               *('scripts/' + s for s in ('sim_world', 'wsg_node', 'dsa_node', 'arm_node',
                                                          'env_node', 'behaviour_node', 'recorder_node')))

EPISODES = 4
CONTACT = 40.0 / layout.TACTILE_FULL_SCALE  # the controller's contact threshold, in observation units


def collect(roslaunch, tmp_path, source):
    output = str(tmp_path / ('%s.h5' % source))
    launch = roslaunch('collect.launch', episodes=EPISODES, output=output, seed=5, policy='expert',
                       tactile_source=source, sim_wsg_port=free_port(), sim_arm_port=free_port(),
                       sim_dsa_link=str(tmp_path / ('dsa_%s' % source)))
    assert launch.wait(timeout=240) == 0, digest(launch.output)
    with h5py.File(output, 'r') as f:
        assert not f['infos/errors'][:].any(), digest(launch.output)
        return (f['observations'][:], f['next_observations'][:], f['infos/tactile_raw'][:],
                f['terminals'][:] | f['timeouts'][:])


def statistics(observations):
    tactile = observations[:, layout.TACTILE]
    return {'tactile_mean': float(tactile.mean()), 'contact_share': float((tactile > CONTACT).mean()),
            'force_mean': float(observations[:, layout.FORCE].mean()),
            'tip_z_mean': float(observations[:, layout.TIP_Z].mean())}


def test_the_finger_route_records_the_same_observations_as_the_dsacon32_route(roslaunch, tmp_path):
    dsa_obs, _, _, dsa_ends = collect(roslaunch, tmp_path, 'dsa')
    finger_obs, finger_next, finger_raw, finger_ends = collect(roslaunch, tmp_path, 'finger1')
    assert dsa_ends.sum() == EPISODES and finger_ends.sum() == EPISODES
    # each observation is made of the raw cells the finger route delivered (the reading behind the next
    # observation is the one logged with the step), scaled as on the serial route
    np.testing.assert_allclose(finger_next[:, layout.TACTILE], finger_raw / layout.TACTILE_FULL_SCALE, rtol=1e-6)
    dsa, finger = statistics(dsa_obs), statistics(finger_obs)
    assert finger['contact_share'] > 0.05, finger  # the finger frames carry the cloth, not an idle pattern
    assert abs(finger['contact_share'] - dsa['contact_share']) < 0.1, (dsa, finger)
    assert abs(finger['tactile_mean'] - dsa['tactile_mean']) < 0.25 * dsa['tactile_mean'], (dsa, finger)
    assert abs(finger['force_mean'] - dsa['force_mean']) < 0.25 * dsa['force_mean'], (dsa, finger)
    assert abs(finger['tip_z_mean'] - dsa['tip_z_mean']) < 0.05, (dsa, finger)
