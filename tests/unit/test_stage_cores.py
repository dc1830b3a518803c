"""The stage cores that the study's stages and the CLI commands share (synthmed.study.stages)."""

import numpy as np
import pytest

from synthmed.data.types import LabeledImages
from synthmed.errors import ConfigError
from synthmed.generators import get_generator_class, load_generator
from synthmed.study.stages.generator import fit_generator_into
from synthmed.study.stages.samples import sample_into

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_fit_then_sample_into_a_folder(tiny_images, tmp_path):
    images, labels = tiny_images
    train = LabeledImages(images=images, labels=labels, class_names=("a", "b"))
    config = get_generator_class("cvae").make_config({"tiny": True, "max_steps": 3}).model_dump(mode="json")
    gen, record = fit_generator_into(tmp_path, "cvae", config, train, desc="t", progress=False, tensorboard=False)
    assert record["steps_done"] == 3 and record["stopped_by"] == "max_steps" and record["resumed"] is False
    assert (tmp_path / "generator.pt").exists() and not (tmp_path / "checkpoint.pt").exists()

    out = tmp_path / "samples"
    rec = sample_into(out, load_generator(tmp_path / "generator.pt"), np.array([0, 0, 1]), ["a", "b"], seed=5,
                      per_row=2, pngs=True)
    assert rec["n"] == 3 and (out / "grid.png").exists() and len(list((out / "a").glob("*.png"))) == 2
    with np.load(out / "samples.npz") as z:
        assert np.array_equal(z["images"], gen.sample([0, 0, 1], seed=5)) and z["labels"].tolist() == [0, 0, 1]
    with pytest.raises(ConfigError, match="cvae sampling takes no steps"):  # cvae declares no sampling knobs
        sample_into(out, gen, np.array([0]), ["a", "b"], seed=0, per_row=1, steps=10)
