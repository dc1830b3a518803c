"""MedMNIST loader on small generated npz files in the MedMNIST layout (never the real download)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from medmnist import INFO

from synthmed.data import load_dataset
from synthmed.errors import DataFormatError, DataNotFoundError, UnknownNameError

COUNTS = {"train": 10, "val": 4, "test": 6}


def write_medmnist(path, size=28, channels=1, n_classes=2, label_cols=1, seed=0, **override):
    """Write a MedMNIST-shaped npz with COUNTS rows per split; ``override`` replaces arrays by key."""
    rng = np.random.default_rng(seed)
    shape = (size, size) if channels == 1 else (size, size, channels)
    arrays = {}
    for split, n in COUNTS.items():
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
        if label_cols == 1:
            arrays[f"{split}_labels"] = (np.arange(n) % n_classes).astype(np.uint8)[:, None]
        else:
            arrays[f"{split}_labels"] = rng.integers(0, 2, (n, label_cols), dtype=np.uint8)
    arrays.update(override)
    np.savez_compressed(path, **arrays)
    return path


def test_reads_grey_flag_with_official_split(tmp_path):
    write_medmnist(tmp_path / "pneumoniamnist.npz")
    data = load_dataset("pneumoniamnist", data_dir=tmp_path)
    assert data.images.shape == (20, 28, 28, 1) and data.images.dtype == np.uint8
    assert data.class_names == ("normal", "pneumonia")
    assert {s: int((data.official_split == s).sum()) for s in COUNTS} == COUNTS
    assert data.meta["licence"] == INFO["pneumoniamnist"]["license"]


def test_reads_size_64_file_by_its_name(tmp_path):
    write_medmnist(tmp_path / "pneumoniamnist_64.npz", size=64)
    data = load_dataset("pneumoniamnist", size=64, data_dir=tmp_path)
    assert data.images.shape == (20, 64, 64, 1)
    assert data.name == "pneumoniamnist_64"


def test_reads_rgb_flag_and_env_data_dir(tmp_path, monkeypatch):
    write_medmnist(tmp_path / "bloodmnist.npz", channels=3, n_classes=8)
    monkeypatch.setenv("SYNTHMED_DATA_DIR", str(tmp_path))
    data = load_dataset("bloodmnist")
    assert data.images.shape == (20, 28, 28, 3)
    assert data.num_classes == 8 and data.labels.max() == 7


def test_chestmnist_multilabel_becomes_single_label_subset(tmp_path):
    labels = np.zeros((10, 14), dtype=np.uint8)
    labels[1, 3] = 1  # infiltration only
    labels[2, [3, 2]] = 1  # infiltration + effusion: dropped
    labels[3, 2] = 1  # effusion only
    write_medmnist(tmp_path / "chestmnist.npz", label_cols=14, **{
        f"{s}_labels": labels[: COUNTS[s]] for s in COUNTS})
    data = load_dataset("chestmnist", data_dir=tmp_path)
    assert data.class_names == ("no finding", "infiltration")
    # each split takes the first rows: row 1 is infiltration, rows 2-3 are dropped, the rest have no
    # finding → train 7 + val 1 + test 3 no finding, one infiltration per split
    assert data.class_counts() == {"no finding": 11, "infiltration": 3}
    other = load_dataset("chestmnist", data_dir=tmp_path, classes=["effusion", "no finding"])
    assert other.class_names == ("effusion", "no finding") and other.class_counts()["effusion"] == 3


def test_all_as_one_and_class_subset(tmp_path):
    write_medmnist(tmp_path / "bloodmnist.npz", channels=3, n_classes=8)
    one = load_dataset("bloodmnist", data_dir=tmp_path, classes="all-as-one")
    assert one.class_names == ("all",) and set(one.labels.tolist()) == {0}
    two = load_dataset("bloodmnist", data_dir=tmp_path, classes=["neutrophil", "basophil"])
    assert two.class_names == ("neutrophil", "basophil")
    assert len(two) == sum(1 for s, n in COUNTS.items() for i in range(n) if i % 8 in (0, 6))
    with pytest.raises(UnknownNameError, match="did you mean 'basophil'"):
        load_dataset("bloodmnist", data_dir=tmp_path, classes=["basophill"])


def test_missing_file_says_where_and_how(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHMED_OFFLINE", "1")
    with pytest.raises(DataNotFoundError) as err:
        load_dataset("pneumoniamnist", size=64, data_dir=tmp_path)
    msg = str(err.value)
    assert "pneumoniamnist_64.npz" in msg and str(tmp_path) in msg and "--offline" in msg
    assert INFO["pneumoniamnist"]["url_64"] in msg and INFO["pneumoniamnist"]["MD5_64"] in msg
    assert "\n" not in msg


def test_wrong_keys_names_file_and_keys(tmp_path):
    np.savez(tmp_path / "pneumoniamnist.npz", images=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(DataFormatError, match=r"pneumoniamnist\.npz: missing key\(s\).*train_images"):
        load_dataset("pneumoniamnist", data_dir=tmp_path)


def test_labels_out_of_range(tmp_path):
    write_medmnist(tmp_path / "pneumoniamnist.npz", test_labels=np.full((6, 1), 5, np.uint8))
    with pytest.raises(DataFormatError, match=r"labels must lie in 0\.\.1.*found 0\.\.5"):
        load_dataset("pneumoniamnist", data_dir=tmp_path)


def test_wrong_image_size_for_file_name(tmp_path):
    write_medmnist(tmp_path / "pneumoniamnist_64.npz", size=28)
    with pytest.raises(DataFormatError, match="28x28 px; expected 64x64"):
        load_dataset("pneumoniamnist", size=64, data_dir=tmp_path)


def test_not_an_npz(tmp_path):
    (tmp_path / "pneumoniamnist.npz").write_bytes(b"not a zip file")
    with pytest.raises(DataFormatError, match="pneumoniamnist.npz is corrupt or not an npz"):
        load_dataset("pneumoniamnist", data_dir=tmp_path)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupt_npz_is_one_line_naming_only_the_file_and_the_fix(tmp_path, damage):
    """A truncated download (zipfile.BadZipFile) or flipped bytes (bad CRC / deflate stream): one
    line naming the file (not the server's folders), saying it is corrupt and how to re-download."""
    good = write_medmnist(tmp_path / "good.npz", size=64).read_bytes()
    if damage == "truncate":
        bad = good[: len(good) // 2]
    else:
        mid = len(good) // 3
        bad = good[:mid] + bytes(b ^ 0xFF for b in good[mid : mid + 64]) + good[mid + 64 :]
    (tmp_path / "pneumoniamnist_64.npz").write_bytes(bad)
    with pytest.raises(DataFormatError) as err:
        load_dataset("pneumoniamnist", size=64, data_dir=tmp_path)
    msg = str(err.value)
    assert msg.startswith("pneumoniamnist_64.npz is corrupt") and "delete it" in msg and "re-download" in msg
    assert str(tmp_path) not in msg and "\n" not in msg


def test_content_errors_name_the_file_not_its_folder(tmp_path):
    write_medmnist(tmp_path / "pneumoniamnist.npz", test_labels=np.full((6, 1), 5, np.uint8))
    with pytest.raises(DataFormatError) as err:
        load_dataset("pneumoniamnist", data_dir=tmp_path)
    assert str(err.value).startswith("pneumoniamnist.npz: ") and str(tmp_path) not in str(err.value)


def test_download_checks_md5_and_writes_atomically(tmp_path, monkeypatch):
    """The real download code on a file:// URL (urllib handles it like https, with no network)."""
    monkeypatch.delenv("SYNTHMED_OFFLINE", raising=False)
    src = write_medmnist(tmp_path / "served.npz", size=64)
    md5 = hashlib.md5(src.read_bytes()).hexdigest()
    monkeypatch.setitem(INFO["pneumoniamnist"], "url_64", src.as_uri())
    monkeypatch.setitem(INFO["pneumoniamnist"], "MD5_64", md5)
    cache = tmp_path / "cache"
    data = load_dataset("pneumoniamnist", size=64, data_dir=cache, download=True)
    assert len(data) == 20 and (cache / "pneumoniamnist_64.npz").read_bytes() == src.read_bytes()

    monkeypatch.setitem(INFO["pneumoniamnist"], "MD5_64", "0" * 32)
    other = tmp_path / "other"
    with pytest.raises(DataFormatError, match="MD5"):
        load_dataset("pneumoniamnist", size=64, data_dir=other, download=True)
    assert not any(other.iterdir())  # neither the bad file nor a temp file is left


def test_download_failure_is_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("SYNTHMED_OFFLINE", raising=False)
    monkeypatch.setitem(INFO["pneumoniamnist"], "url", (tmp_path / "absent.npz").as_uri())
    with pytest.raises(DataNotFoundError, match="could not download"):
        load_dataset("pneumoniamnist", data_dir=tmp_path / "c", download=True)
