"""Tactile frames as images (mono16 bytes, the colour view) and the fingers as frames and joints, without ROS."""
import numpy as np
import pytest

from plas_ros.hardware.finger import FINGER
from plas_ros.hardware.tactile_image import (
    COLOUR_MAPS,
    TactileColouriser,
    TactileImageConfig,
    cells_array,
    load_tactile_image_config,
    lookup_table,
    mono16_bytes,
)
from plas_ros.hardware.wsg.frames import finger_frame, finger_offset, joint_state, unit_axis


def frame():
    return (np.arange(FINGER.rows * FINGER.cols, dtype=np.uint16) * 47).reshape(FINGER.rows, FINGER.cols)


def test_mono16_bytes_decode_back_to_the_cells():
    cells = frame()
    data = mono16_bytes(cells)
    assert len(data) == 2 * cells.size
    np.testing.assert_array_equal(np.frombuffer(data, '<u2').reshape(cells.shape), cells)
    np.testing.assert_array_equal(cells_array(cells.reshape(-1).tolist()), cells)


def test_the_colour_image_is_the_cells_upscaled_through_the_table():
    config = load_tactile_image_config()
    colouriser = TactileColouriser(config)
    cells = frame()
    image = colouriser.image(cells)
    s = config.scale
    assert image.shape == (FINGER.rows * s, FINGER.cols * s, 3) and image.dtype == np.uint8
    table = lookup_table(config.colour_map)
    for r, c in ((0, 0), (7, 3), (13, 5)):
        block = image[r * s:(r + 1) * s, c * s:(c + 1) * s]
        assert (block == table[int(cells[r, c]) * 255 // FINGER.full_scale]).all()
    saturated = colouriser.image(np.full_like(cells, 65535))
    assert (saturated == table[255]).all()  # above full scale: the last colour, no wrap-around


def test_colour_maps_and_the_config_are_checked():
    for name, anchors in COLOUR_MAPS.items():
        table = lookup_table(name)
        assert table.shape == (256, 3) and tuple(table[0]) == anchors[0] and tuple(table[-1]) == anchors[-1]
    with pytest.raises(ValueError, match='colour_map'):
        TactileImageConfig(scale=4, colour_map='rainbow')
    with pytest.raises(ValueError, match='scale'):
        TactileImageConfig(scale=0, colour_map='gray')


def test_fingers_sit_half_the_width_either_side_of_the_tip():
    assert finger_frame('wsg', 2) == 'wsg_finger2'
    np.testing.assert_allclose(finger_offset(30.0, 1, [0, 2, 0]), [0, -0.015, 0])
    np.testing.assert_allclose(finger_offset(30.0, 2, [0, 2, 0]), [0, 0.015, 0])
    positions, velocities, efforts = joint_state(30.0, -10.0, 4.5)
    assert positions == [-0.015, 0.015] and velocities == [0.005, -0.005] and efforts == [4.5, 4.5]
    with pytest.raises(ValueError, match='finger_axis'):
        unit_axis([0, 0, 0])
