from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from nas.data import load_image_folder
from nas.errors import DataError, DatasetNotFoundError


def _folder(tmp_path, classes=("cat", "dog"), n=10):
    for c in classes:
        (tmp_path / c).mkdir()
        for i in range(n):
            Image.fromarray(np.full((20, 30, 3), i * 10, np.uint8)).save(tmp_path / c / f"{i}.png")
    return tmp_path


def test_image_folder_loads_classes_and_splits(tmp_path):
    data = load_image_folder(
        _folder(tmp_path), size=16, channels=3, val_fraction=0.25, test_fraction=0.2
    )
    assert data.class_names == ("cat", "dog")
    assert len(data.train) + len(data.val) + len(data.test) == 20
    assert data.train.images.shape[1:] == (3, 16, 16)
    assert data.preprocessing.channels == 3


def test_folder_without_classes_is_an_error(tmp_path):
    with pytest.raises(DataError, match="no class sub-folders"):
        load_image_folder(tmp_path)


def test_class_without_images_is_an_error_naming_it(tmp_path):
    _folder(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty"):
        load_image_folder(tmp_path)


def test_unreadable_image_is_named(tmp_path):
    _folder(tmp_path)
    (tmp_path / "cat" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken.png"):
        load_image_folder(tmp_path)


def test_missing_folder(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="nope"):
        load_image_folder(tmp_path / "nope")
