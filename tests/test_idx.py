"""The IDX reader: round trips (gzip and raw), and clear errors for damaged files."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from lstmctl.data.idx import read_idx, write_idx
from lstmctl.errors import UserError


@pytest.mark.parametrize("name", ["imgs-idx3-ubyte.gz", "imgs-idx3-ubyte"])
def test_round_trip_images_and_labels(tmp_path, name):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=7, dtype=np.uint8)
    p = write_idx(tmp_path / name, images)
    q = write_idx(tmp_path / ("labels" + (".gz" if name.endswith(".gz") else "")), labels)
    assert (p.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    got = read_idx(p, expect_ndim=3)
    assert got.dtype == np.uint8 and got.shape == (7, 28, 28)
    np.testing.assert_array_equal(got, images)
    np.testing.assert_array_equal(read_idx(q, expect_ndim=1), labels)


def test_round_trip_other_dtypes(tmp_path):
    for arr in (np.arange(12, dtype=np.int32).reshape(3, 4) - 5, np.linspace(-1, 1, 6, dtype=np.float32)):
        np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "a.idx", arr)), arr)


def test_header_matches_the_standard_layout(tmp_path):
    p = write_idx(tmp_path / "x", np.zeros((2, 3, 4), np.uint8))
    raw = p.read_bytes()
    assert raw[:4] == b"\x00\x00\x08\x03"  # 0x00000803: unsigned bytes, 3 dimensions
    assert struct.unpack(">3I", raw[4:16]) == (2, 3, 4)
    assert len(raw) == 16 + 24


def test_bad_magic(tmp_path):
    p = tmp_path / "bad"
    p.write_bytes(b"\x12\x34\x08\x03" + b"\x00" * 40)
    with pytest.raises(UserError, match="bad magic number 0x12340803"):
        read_idx(p)
    p.write_bytes(b"PK\x03\x04 not idx at all")
    with pytest.raises(UserError, match="not an IDX file"):
        read_idx(p)


def test_truncated_body_and_header(tmp_path):
    p = write_idx(tmp_path / "t", np.ones((10, 28, 28), np.uint8))
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(UserError, match="truncated: the header promises 10 items"):
        read_idx(p)
    p.write_bytes(b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(UserError, match="truncated: the header needs 16 bytes"):
        read_idx(p)
    p.write_bytes(b"\x00\x00")
    with pytest.raises(UserError, match="only 2 bytes"):
        read_idx(p)


def test_truncated_gzip(tmp_path):
    p = write_idx(tmp_path / "t.gz", np.ones((100, 28, 28), np.uint8))
    p.write_bytes(p.read_bytes()[:-30])
    with pytest.raises(UserError, match="damaged gzip file"):
        read_idx(p)


def test_wrong_item_count(tmp_path):
    """A header that counts fewer items than the file holds is an error, not a silent cut."""
    body = struct.pack(">HBB", 0, 8, 1) + struct.pack(">I", 5) + bytes(8)
    p = tmp_path / "labels.gz"
    p.write_bytes(gzip.compress(body))
    with pytest.raises(UserError, match="header says 5 items .* item count is wrong"):
        read_idx(p)


def test_wrong_dimensions_and_missing_file(tmp_path):
    p = write_idx(tmp_path / "l", np.zeros(4, np.uint8))
    with pytest.raises(UserError, match="expected an IDX file with 3 dimensions, this one has 1"):
        read_idx(p, expect_ndim=3)
    with pytest.raises(UserError, match="IDX file not found"):
        read_idx(tmp_path / "nope")
