"""A flipped bit inside a recorded file's data is caught on read (HDF5 chunk checksums), never trained on."""
import h5py
import pytest

from plas_ros.data.loader import load_datasets
from plas_ros.data.schema import DatasetError, episode_arrays
from plas_ros.data.writer import ReplayWriter
from plas_ros.env.layout import DATASET_FORMAT as CLOTH
from tests.helpers.data import make_steps


def flip_byte_inside(path, key, at=100):
    with h5py.File(path, 'r') as f:
        dataset = f[key].id
        offset = dataset.get_chunk_info(0).byte_offset if f[key].chunks else dataset.get_offset()
    with open(path, 'r+b') as g:
        g.seek(offset + at)
        value = g.read(1)[0]
        g.seek(offset + at)
        g.write(bytes([value ^ 0x01]))


@pytest.mark.parametrize('key', ['observations', 'rewards'])
def test_flipped_bit_in_the_data_names_file_and_key(tmp_path, key):
    path = str(tmp_path / 'run.h5')
    writer = ReplayWriter(path, CLOTH, fsync=False)
    for episode in range(3):
        writer.write_episode(episode_arrays(make_steps(episode, n=20)))
    load_datasets([path])  # intact: loads
    flip_byte_inside(path, key, at=8)
    with pytest.raises(DatasetError) as caught:
        load_datasets([path])
    assert caught.value.path == path and caught.value.key == key
    assert 'damaged' in str(caught.value)
