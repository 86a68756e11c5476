"""Reader for (Fashion-)MNIST's IDX format, plain or gzipped; errors name the file."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from nas.errors import DataError, DatasetNotFoundError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (``.gz`` or plain).

    Raises:
        DatasetNotFoundError: the file does not exist.
        DataError: the file is truncated, corrupt, or not IDX.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"IDX file not found: {path}")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"cannot read IDX file {path}: {e} (truncated or corrupt download?)") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    dtype_code, ndim = raw[2], raw[3]
    if dtype_code not in _DTYPES:
        raise DataError(f"{path}: unknown IDX data type 0x{dtype_code:02x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[dtype_code])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: IDX header promises shape {shape} ({expected} bytes of data) but the file "
            f"holds {len(raw) - header} bytes (truncated or corrupt)"
        )
    return (
        np.frombuffer(raw, dtype=dtype, offset=header)
        .reshape(shape)
        .astype(dtype.newbyteorder("="))
    )
