"""One conformance test per registered generator family (``list_generators()``).

Each family shrinks itself for tests through ``tiny_config()``; a new family is tested the day it registers.
"""

from __future__ import annotations

import numpy as np
import pytest

from synthmed.generators import get_generator_class, list_generators, load_generator, make_generator

pytestmark = pytest.mark.usefixtures("torch_single_thread")  # tiny nets: 1 thread is faster on a shared CPU


@pytest.mark.parametrize("family", list_generators())
def test_fit_sample_roundtrip(family, tiny_images, tmp_path):
    images, labels = tiny_images
    gen = make_generator(family, get_generator_class(family).tiny_config())
    assert not gen.fitted_ and gen.steps_done_ == 0 and gen.stopped_by_ is None  # declared by the base class
    assert gen.fit(images, labels) is gen
    assert gen.num_classes_ == 2 and tuple(gen.image_shape_) == (28, 28, 1) and gen.fitted_
    assert gen.steps_done_ > 0 and gen.stopped_by_ in ("max_steps", "max_minutes")

    want = np.repeat(np.arange(2), 3)  # balanced request: 3 per class
    out = gen.sample(want, seed=11)
    assert out.shape == (6, 28, 28, 1) and out.dtype == np.uint8
    assert np.array_equal(out, gen.sample(want, seed=11))  # deterministic for a seed
    assert np.array_equal(gen.sample(want), gen.sample(want, seed=gen.config.seed))  # seed=None: the config's

    gen.save(tmp_path / "gen.pt")
    again = load_generator(tmp_path / "gen.pt")
    assert type(again) is type(gen)
    assert np.array_equal(again.sample(want, seed=11), out)


@pytest.mark.parametrize("family", list_generators())
def test_declared_sample_knobs_are_keyword_arguments_of_sample(family):
    import inspect

    cls = get_generator_class(family)
    params = inspect.signature(cls.sample).parameters
    assert all(params[k].kind is inspect.Parameter.KEYWORD_ONLY for k in cls.sample_knobs)
