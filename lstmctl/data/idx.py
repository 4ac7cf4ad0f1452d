"""lstmctl's own reader (and a small writer) for IDX files, the format of MNIST and Fashion-MNIST.

Layout: two zero bytes, a type code (0x08 = unsigned byte, ...), the number of dimensions, then
one big-endian uint32 per dimension, then the values, big-endian, row-major. Files may be gzipped
(detected by their first two bytes, not by their name). Every defect is a UserError that names the
file: a wrong magic number, a truncated or over-long body, a broken gzip stream.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from lstmctl.errors import UserError

# type code -> big-endian numpy dtype
DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
CODES = {np.dtype(v).newbyteorder("="): k for k, v in DTYPES.items()}
GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"IDX file not found: {path}") from None
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None
    if raw[:2] == GZIP_MAGIC:
        try:
            return gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as e:
            raise UserError(
                f"{path} is a damaged gzip file ({e}); delete it and fetch it again (data.download: true)"
            ) from None
    return raw


def read_idx(path: str | os.PathLike, expect_ndim: int | None = None) -> np.ndarray:
    """Read an IDX file (gzip or raw) into a numpy array in native byte order."""
    path = Path(path)
    raw = _read_bytes(path)
    fix = "delete it and fetch it again (data.download: true)"
    if len(raw) < 4:
        raise UserError(f"{path} is not an IDX file: only {len(raw)} bytes; {fix}")
    zero, code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or code not in DTYPES or ndim == 0:
        raise UserError(
            f"{path} is not an IDX file: bad magic number 0x{raw[:4].hex()} "
            f"(expected 0x0000 + type code + dimension count, e.g. 0x00000803 for images); {fix}"
        )
    if expect_ndim is not None and ndim != expect_ndim:
        raise UserError(f"{path}: expected an IDX file with {expect_ndim} dimensions, this one has {ndim} (wrong file?)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"{path} is truncated: the header needs {header} bytes, the file has {len(raw)}; {fix}")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(DTYPES[code])
    need = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    have = len(raw) - header
    if have < need:
        raise UserError(
            f"{path} is truncated: the header promises {shape[0]} items of shape {tuple(shape[1:])} ({need} bytes), "
            f"the file holds {have}; {fix}"
        )
    if have > need:
        raise UserError(
            f"{path}: the header says {shape[0]} items ({need} bytes) but the file holds {have} bytes; "
            f"the item count is wrong or the file is damaged; {fix}"
        )
    arr = np.frombuffer(raw, dtype=dtype, count=need // dtype.itemsize, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path: str | os.PathLike, array: np.ndarray, compress: bool | None = None) -> Path:
    """Write an array as an IDX file; gzip when `compress` (default: the name ends in .gz)."""
    path = Path(path)
    a = np.asarray(array)
    code = CODES.get(a.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"IDX cannot store dtype {a.dtype}")
    body = struct.pack(">HBB", 0, code, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape)
    body += a.astype(a.dtype.newbyteorder(">"), copy=False).tobytes()
    if compress is None:
        compress = path.name.endswith(".gz")
    path.write_bytes(gzip.compress(body, mtime=0) if compress else body)
    return path
