"""Folder-based loaders on small generated trees: HAM10000 layout, NIH CSV layout, class folders."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from synthmed.data import load_dataset, make_split
from synthmed.data.ham10000 import CLASSES
from synthmed.errors import DataFormatError, DataNotFoundError, UnknownNameError


def write_image(path, seed, colour=True, size=(40, 30)):
    """A random image file (format from the suffix); grey ones are saved as RGB with R = G = B."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size[1], size[0], 3 if colour else 1), dtype=np.uint8)
    if not colour:
        arr = np.repeat(arr, 3, axis=-1)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def write_csv(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([",".join(header)] + [",".join(r) for r in rows]) + "\n")


# ----------------------------------------------------------------------------- HAM10000

HAM_ROWS = [  # lesion_id, image_id, dx  — two lesions have two images each
    ("HAM_0000001", "ISIC_0000001", "nv"), ("HAM_0000001", "ISIC_0000002", "nv"),
    ("HAM_0000002", "ISIC_0000003", "mel"), ("HAM_0000003", "ISIC_0000004", "vasc"),
    ("HAM_0000003", "ISIC_0000005", "vasc"), ("HAM_0000004", "ISIC_0000006", "df"),
]


@pytest.fixture
def ham_dir(tmp_path):
    root = tmp_path / "ham"
    write_csv(root / "HAM10000_metadata.csv", ["lesion_id", "image_id", "dx", "dx_type", "age"],
              [(l, i, d, "histo", "50.0") for l, i, d in HAM_ROWS])
    for n, (_, image_id, _) in enumerate(HAM_ROWS):
        part = "HAM10000_images_part_1" if n < 3 else "HAM10000_images_part_2"
        write_image(root / part / f"{image_id}.jpg", seed=n)
    return root


def test_ham10000_original_layout(ham_dir):
    data = load_dataset("ham10000", path=ham_dir, size=32)
    assert data.images.shape == (6, 32, 32, 3) and data.images.dtype == np.uint8
    assert data.class_names == CLASSES
    assert [data.class_names[k] for k in data.labels] == [d for _, _, d in HAM_ROWS]
    assert data.groups.tolist() == [l for l, _, _ in HAM_ROWS]


def test_ham10000_corrupt_image_names_file_or_is_skipped(ham_dir):
    bad = ham_dir / "HAM10000_images_part_2" / "ISIC_0000006.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(DataFormatError, match=r"ISIC_0000006\.jpg: unreadable image.*on_bad_image='skip'"):
        load_dataset("ham10000", path=ham_dir)
    with pytest.warns(UserWarning, match="skipped 1 missing or unreadable"):
        data = load_dataset("ham10000", path=ham_dir, on_bad_image="skip")
    assert len(data) == 5 and "df" not in [data.class_names[k] for k in data.labels]


def test_ham10000_missing_image_and_missing_csv(ham_dir, tmp_path):
    (ham_dir / "HAM10000_images_part_1" / "ISIC_0000002.jpg").unlink()
    with pytest.raises(DataNotFoundError, match=r"ISIC_0000002\.jpg \(listed in HAM10000_metadata\.csv\)"):
        load_dataset("ham10000", path=ham_dir)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataNotFoundError, match="HAM10000_metadata.csv is not in"):
        load_dataset("ham10000", path=tmp_path / "empty")


def test_ham10000_array_file(tmp_path):
    rng = np.random.default_rng(0)
    arrays = dict(images=rng.integers(0, 256, (7, 28, 28, 3), dtype=np.uint8), labels=np.arange(7, dtype=np.uint8),
                  image_ids=np.array([f"ISIC_{i}" for i in range(7)]), lesion_ids=np.array(["L1"] * 2 + ["L2"] * 5),
                  sources=np.array(["HAM10000"] * 7))
    np.savez_compressed(tmp_path / "ham10000_28.npz", **arrays)
    data = load_dataset("ham10000", data_dir=tmp_path)
    assert data.name == "ham10000_28" and data.groups.tolist() == arrays["lesion_ids"].tolist()
    assert data.labels.tolist() == list(range(7))
    del arrays["lesion_ids"]
    np.savez_compressed(tmp_path / "ham10000_28.npz", **arrays)
    with pytest.raises(DataFormatError, match=r"ham10000_28\.npz: missing key\(s\) \['lesion_ids'\]"):
        load_dataset("ham10000", data_dir=tmp_path)


# ----------------------------------------------------------------------------- NIH ChestX-ray14

NIH_ROWS = [  # Image Index, Finding Labels, Patient ID
    ("00000001_000.png", "No Finding", "1"), ("00000001_001.png", "Infiltration", "1"),
    ("00000002_000.png", "Infiltration|Effusion", "2"), ("00000003_000.png", "Effusion", "3"),
    ("00000004_000.png", "No Finding", "4"), ("00000005_000.png", "Infiltration", "5"),
]


@pytest.fixture
def nih_dir(tmp_path):
    root = tmp_path / "nih"
    write_csv(root / "Data_Entry_2017_v2020.csv", ["Image Index", "Finding Labels", "Follow-up #", "Patient ID"],
              [(i, f, "0", p) for i, f, p in NIH_ROWS])
    for n, (name, _, _) in enumerate(NIH_ROWS):
        write_image(root / f"images_00{1 + n % 2}" / "images" / name, seed=n, colour=False)
    return root


def test_nih_default_subset_with_patient_groups(nih_dir):
    data = load_dataset("nih-chestxray14", path=nih_dir, size=28)
    assert data.class_names == ("No Finding", "Infiltration")
    assert data.images.shape == (4, 28, 28, 1)
    assert data.labels.tolist() == [0, 1, 0, 1]
    assert data.groups.tolist() == ["1", "1", "4", "5"]


def test_nih_other_subset_and_unknown_finding(nih_dir):
    data = load_dataset("nih-chestxray14", path=nih_dir, classes=["effusion", "no finding"])
    assert data.class_names == ("Effusion", "No Finding") and data.labels.tolist() == [1, 0, 1]
    with pytest.raises(UnknownNameError, match="did you mean 'Infiltration'"):
        load_dataset("nih-chestxray14", path=nih_dir, classes=["No Finding", "Infiltraton"])


def test_nih_missing_images_and_missing_table(nih_dir, tmp_path):
    (nih_dir / "images_002" / "images" / "00000001_001.png").unlink()
    with pytest.raises(DataNotFoundError, match="1 image.*00000001_001.png"):
        load_dataset("nih-chestxray14", path=nih_dir)
    with pytest.warns(UserWarning):
        assert len(load_dataset("nih-chestxray14", path=nih_dir, on_bad_image="skip")) == 3
    (tmp_path / "none").mkdir()
    with pytest.raises(DataNotFoundError, match=r"no Data_Entry_2017\*\.csv"):
        load_dataset("nih-chestxray14", path=tmp_path / "none")
    with pytest.raises(DataNotFoundError, match="pass path=DIR"):
        load_dataset("nih-chestxray14")


# ----------------------------------------------------------------------------- class folders


def test_folder_plain_grey_and_rgb(tmp_path):
    for c in ("NORMAL", "PNEUMONIA"):
        for i in range(3):
            write_image(tmp_path / "grey" / c / f"{i}.png", seed=i, colour=False)
    data = load_dataset("folder", path=tmp_path / "grey", size=16)
    assert data.images.shape == (6, 16, 16, 1) and data.class_names == ("NORMAL", "PNEUMONIA")
    assert data.official_split is None and data.name == "grey"
    write_image(tmp_path / "grey" / "NORMAL" / "colour.jpeg", seed=9, colour=True)
    assert load_dataset("folder", path=tmp_path / "grey", size=16).channels == 3
    assert load_dataset("folder", path=tmp_path / "grey", size=16, channels=1).channels == 1


def test_folder_pre_split_sets_official_split(tmp_path):
    root = tmp_path / "chest_xray"
    layout = {"train": 6, "val": 2, "test": 3}
    files = [root / split / c / f"{c}_{i}.jpg" for split, n in layout.items() for c in ("NORMAL", "PNEUMONIA") for i in range(n)]
    for seed, f in enumerate(files):
        write_image(f, seed=seed, colour=False)
    data = load_dataset("folder", path=root, size=16)
    assert {s: int((data.official_split == s).sum()) for s in layout} == {s: 2 * n for s, n in layout.items()}
    manifest = make_split(data, shots=4)  # official protocol by default when the folders are pre-split
    assert manifest.protocol == "official"
    assert manifest.counts["train"] == {"NORMAL": 4, "PNEUMONIA": 4}
    assert manifest.counts["test"] == {"NORMAL": 3, "PNEUMONIA": 3}


def test_folder_errors(tmp_path):
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(DataNotFoundError, match="no images"):
        load_dataset("folder", path=tmp_path / "empty")
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_dataset("folder", path=tmp_path / "nowhere")
    write_image(tmp_path / "loose" / "x.png", seed=0)
    with pytest.raises(DataFormatError, match="directly in the root"):
        load_dataset("folder", path=tmp_path / "loose")
