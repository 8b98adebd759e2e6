"""A driver node without diagnostic_updater stops at once with one line naming the package to install, before
it registers with the master (no traceback, no node left behind)."""
import os
import subprocess

import pytest

from tests.helpers.tree import script


@pytest.mark.parametrize('node', ['wsg_node', 'dsa_node', 'arm_node'])
def test_a_driver_without_diagnostic_updater_names_the_package(node, ros_master, tmp_path):
    (tmp_path / 'diagnostic_updater.py').write_text("raise ImportError('hidden for this test')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get('PYTHONPATH', '')]))
    done = subprocess.run([script(node)], env=env, capture_output=True, text=True, timeout=60)
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode != 0 and len(lines) == 1, lines
    assert 'the Python module diagnostic_updater is missing: install python3-diagnostic-updater (Debian 12) or ' \
           'ros-noetic-diagnostic-updater (ROS Noetic)' in lines[0]
