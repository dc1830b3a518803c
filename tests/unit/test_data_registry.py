"""The dataset table: names, presence, unknown names, describe and the example grid."""

from __future__ import annotations

import numpy as np
import pytest
from medmnist import INFO
from PIL import Image

from synthmed.data import LabeledImages, describe_dataset, list_datasets, load_dataset, save_examples_grid
from synthmed.data.registry import DatasetSpec, register_dataset
from synthmed.errors import ConfigError, UnknownNameError


def test_every_2d_medmnist_flag_and_each_source_is_listed(tmp_path):
    infos = {i.name: i for i in list_datasets(tmp_path)}
    flags_2d = {f for f in INFO if not f.endswith("3d")}
    assert flags_2d <= set(infos)
    assert not any(n.endswith("3d") for n in infos)
    assert {"ham10000", "nih-chestxray14", "folder"} <= set(infos)
    chest = infos["chestmnist"]
    assert chest.classes == ("no finding", "infiltration") and chest.sizes == (28, 64, 128, 224)
    assert infos["ham10000"].group_column == "lesion_id" and infos["nih-chestxray14"].needs_path


def test_presence_follows_the_data_dir(tmp_path):
    assert not {i.name: i for i in list_datasets(tmp_path)}["retinamnist"].present
    (tmp_path / "retinamnist_128.npz").write_bytes(b"")
    info = {i.name: i for i in list_datasets(tmp_path)}["retinamnist"]
    assert info.present and info.location.endswith("retinamnist_128.npz")


def test_unknown_dataset_suggests_closest():
    with pytest.raises(UnknownNameError, match=r"no dataset 'ham1000'; did you mean 'ham10000'\?"):
        load_dataset("ham1000")


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="on_bad_image"):
        load_dataset("folder", on_bad_image="ignore")
    with pytest.raises(ConfigError, match="channels"):
        load_dataset("folder", channels=2)


def test_a_name_registers_once():
    spec = DatasetSpec(name="folder", info=lambda d: None, load=lambda **kw: None)
    list_datasets()  # make sure the built-ins are registered
    with pytest.raises(ValueError, match="registered twice"):
        register_dataset(spec)


@pytest.fixture
def small_set():
    rng = np.random.default_rng(0)
    return LabeledImages(
        images=rng.integers(0, 256, (12, 8, 8, 1), dtype=np.uint8), labels=np.array([0] * 7 + [1] * 5),
        class_names=("a", "b"), official_split=np.array(["train"] * 8 + ["val"] * 2 + ["test"] * 2), name="small",
    )


def test_describe_counts_per_split_and_class(small_set):
    d = describe_dataset(small_set)
    assert d["counts"] == {"train": {"a": 7, "b": 1}, "val": {"a": 0, "b": 2}, "test": {"a": 0, "b": 2}}
    assert d["total_per_class"] == {"a": 7, "b": 5} and d["checksum"] == small_set.checksum


def test_examples_grid_png(small_set, tmp_path):
    path = save_examples_grid(small_set, tmp_path / "grid.png", per_class=4, scale=1)
    with Image.open(path) as im:
        # 2 rows and 4 columns of 8 px tiles with 2 px padding, after a strip naming each row's class
        label_w = im.size[0] - (4 * 10 + 2)
        assert im.size[1] == 2 * 10 + 2 and label_w > 0
        strip = np.asarray(im.convert("L"))[:, :label_w]
        assert (strip < 128).any(), "the label strip holds the class names' text"
