"""Checkpoints are tensors + JSON (safetensors): exact round trips, and nothing else is ever loaded.

Issue 15 §3.1: a crafted ``generator.pt`` (a pickle) ran code on load. These tests craft such a file
with a payload that would write a marker file, and check it is refused with one line and the
marker never appears.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from synthmed.classify import TrainedClassifier
from synthmed.errors import DataFormatError, DataNotFoundError, SynthmedError
from synthmed.generators import load_generator, make_generator
from synthmed.generators import get_generator_class
from synthmed.utils.checkpoint import load_checkpoint_file, save_checkpoint_file

pytestmark = pytest.mark.usefixtures("torch_single_thread")


class _Payload:
    """Unpickling this runs ``exec`` — what an attacker would put in a shared run folder."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('code ran')",))


def _crafted(path, marker, zip_format: bool):
    blob = {"family": "cgan", "config": {}, "payload": _Payload(marker)}
    if zip_format:  # what torch.save writes
        torch.save(blob, path)
    else:
        path.write_bytes(pickle.dumps(blob, protocol=4))
    return path


@pytest.fixture(scope="module")
def tiny_cgan(tmp_path_factory):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(8, 28, 28, 1), dtype=np.uint8)
    gen = make_generator("cgan", tiny=True).fit(images, np.array([0, 1] * 4))
    path = tmp_path_factory.mktemp("gen") / "generator.pt"
    gen.save(path)
    return gen, path


def test_nested_state_round_trips_exactly(tmp_path):
    rs = np.random.RandomState(3)
    tree = {
        "w": torch.randn(3, 4)[:, 1:],  # a non-contiguous view
        "step": torch.tensor(7.0), "gen_state": torch.Generator().manual_seed(5).get_state(),
        "numpy_rng": rs.get_state(),  # ('MT19937', uint32 array, int, int, float)
        "pcg": np.random.default_rng(1).bit_generator.state,  # 128-bit ints
        "opt": {0: {"exp_avg": torch.ones(2)}, 1: {}}, "betas": (0.5, 0.999), "nan": float("nan"),
        "__tuple__": "a key that looks like a tag", "perm": np.arange(5, dtype=np.int64), "none": None,
    }
    save_checkpoint_file(tmp_path / "c.pt", tree, kind="generator")
    back = load_checkpoint_file(tmp_path / "c.pt", kind="generator")
    assert torch.equal(back["w"], tree["w"]) and torch.equal(back["gen_state"], tree["gen_state"])
    assert back["numpy_rng"][0] == "MT19937" and back["numpy_rng"][1].dtype == np.uint32
    np.random.RandomState().set_state(back["numpy_rng"])  # accepted as a numpy state
    assert np.array_equal(back["numpy_rng"][1], tree["numpy_rng"][1]) and back["numpy_rng"][2:] == tree["numpy_rng"][2:]
    assert back["pcg"] == tree["pcg"] and back["betas"] == (0.5, 0.999) and list(back["opt"]) == [0, 1]
    assert np.isnan(back["nan"]) and back["__tuple__"] == tree["__tuple__"] and back["none"] is None
    assert np.array_equal(back["perm"], tree["perm"]) and back["perm"].dtype == np.int64


def test_generator_save_load_samples_identically_and_is_not_a_pickle(tiny_cgan):
    gen, path = tiny_cgan
    assert path.read_bytes()[:1] not in (b"\x80", b"P")  # safetensors starts with its header length
    again = load_generator(path)
    assert np.array_equal(again.sample([0, 1, 1], seed=3), gen.sample([0, 1, 1], seed=3))


@pytest.mark.parametrize("zip_format", [True, False], ids=["torch.save", "raw-pickle"])
def test_crafted_pickle_generator_is_refused_and_its_code_never_runs(tmp_path, zip_format):
    marker = tmp_path / "PWNED"
    path = _crafted(tmp_path / "generator.pt", marker, zip_format)
    with pytest.raises(DataFormatError) as err:
        load_generator(path)
    assert not marker.exists(), "unpickling ran the payload"
    msg = str(err.value)
    assert "\n" not in msg and "pickle" in msg and "generator.pt" in msg
    with pytest.raises(DataFormatError):
        get_generator_class("cvae").load(path)  # the family's own load refuses it too
    assert not marker.exists()


def test_crafted_pickle_classifier_is_refused_and_its_code_never_runs(tmp_path):
    marker = tmp_path / "PWNED"
    path = _crafted(tmp_path / "classifier.pt", marker, zip_format=True)
    with pytest.raises(DataFormatError, match="pickle"):
        TrainedClassifier.load(path)
    assert not marker.exists()


def test_truncated_checkpoint_is_one_line(tiny_cgan, tmp_path):
    _, path = tiny_cgan
    cut = tmp_path / "generator.pt"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataFormatError, match="truncated") as err:
        load_generator(cut)
    assert "\n" not in str(err.value)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(DataFormatError):
        load_generator(tmp_path / "empty.pt")


def test_wrong_kind_and_wrong_family_are_refused(tiny_cgan, tmp_path):
    _, path = tiny_cgan
    with pytest.raises(DataFormatError, match="holds a 'generator'"):
        TrainedClassifier.load(path)
    with pytest.raises(SynthmedError, match="'cgan' generator, not 'cvae'"):
        get_generator_class("cvae").load(path)
    with pytest.raises(DataNotFoundError):
        load_generator(tmp_path / "missing.pt")
