"""The bounded master calls of plas_ros/nodes/lifecycle.py against a master that takes connections and never
answers (a listening socket nobody accepts on: what a frozen master, or one on a vanished host, looks like)."""
import socket
import time

import pytest


@pytest.fixture
def silent_master(monkeypatch):
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(8)     # the kernel completes the handshakes; nothing ever reads or answers
    monkeypatch.setenv('ROS_MASTER_URI', 'http://127.0.0.1:%d' % listener.getsockname()[1])
    yield
    listener.close()


def test_a_master_call_gives_up_after_its_timeout(silent_master):
    from plas_ros.nodes.lifecycle import master_proxy
    began = time.monotonic()
    with pytest.raises(socket.timeout):
        master_proxy(0.3).lookupService('/test', '/arm/move_tip')
    assert time.monotonic() - began < 10.0   # without the bound it would never return


def test_a_service_the_master_does_not_answer_about_is_not_advertised(silent_master, monkeypatch):
    from plas_ros.nodes import lifecycle, params
    monkeypatch.setattr(lifecycle, 'master_timeout', lambda: 0.3)
    assert params.unadvertised(['/arm/move_tip', '/wsg/move']) == ['/arm/move_tip', '/wsg/move']


def test_the_bound_is_the_configured_one():
    from plas_ros.config import lookup
    from plas_ros.nodes.lifecycle import master_timeout
    assert master_timeout() == lookup('run.yaml', 'master.timeout') > 0
