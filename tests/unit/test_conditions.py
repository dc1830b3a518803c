"""Each downstream condition builds the right training set: counts, labels, augmentation, no leaks;
the registry holds every condition's facts (roles, order, options) in one record."""

import numpy as np
import pytest

from synthmed import conditions as C
from synthmed.conditions import Condition, build_condition, get_condition, list_conditions
from synthmed.data.types import LabeledImages
from synthmed.errors import ConfigError, SynthmedError, UnknownNameError


def _set(n_per_class, value, k=2, name="real"):
    labels = np.repeat(np.arange(k), n_per_class)
    images = np.full((len(labels), 8, 8, 1), value, dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(len(labels)) % 256  # distinct images
    return LabeledImages(images=images, labels=labels, class_names=tuple(f"c{i}" for i in range(k)), name=name)


@pytest.fixture
def sets():
    real = _set(5, 10)
    pool = _set(40, 20)
    syn = _set(7, 200, name="synthetic")
    return real, pool, syn


def test_synthetic_label_plan_balanced_and_ratio():
    real = np.repeat([0, 1, 2], [10, 10, 10])
    plan = C.synthetic_label_plan(real, 3, total=1201)
    assert len(plan) == 1201 and np.bincount(plan).tolist() == [401, 400, 400]
    assert len(C.synthetic_label_plan(real, 3, ratio=2.0)) == 60
    mix = C.synthetic_label_plan(np.repeat([0, 1], [30, 10]), 2, total=100, balanced=False)
    assert np.bincount(mix).tolist() == [75, 25]


def test_real_and_classic_use_only_the_k_shot_images(sets):
    real, pool, syn = sets
    for cond, aug in (("real", False), ("real+classic", True)):
        c = build_condition(cond, real=real, train_pool=pool, synthetic=syn)
        assert c.train is real and c.augment is aug and c.n_extra == 0


def test_synthetic_only_and_real_plus_synthetic_counts(sets):
    real, pool, syn = sets
    s = build_condition("synthetic", real=real, synthetic=syn)
    assert len(s.train) == 14
    assert np.all(s.train.images[:, 1:, 1:] == 200)  # only synthetic pixels
    rs = build_condition("real+synthetic", real=real, synthetic=syn)
    assert len(rs.train) == 10 + 14 and rs.n_real == 10 and rs.n_extra == 14
    assert np.bincount(rs.train.labels).tolist() == [12, 12]
    assert not rs.augment


def test_real_plus_duplicate_is_count_matched_and_only_real(sets):
    real, pool, syn = sets
    d = build_condition("real+duplicate", real=real, synthetic=syn, seed=3)
    assert len(d.train) == len(real) + len(syn)
    assert np.bincount(d.train.labels).tolist() == [12, 12]
    assert np.all(d.train.images[:, 1:, 1:] == 10)  # every extra image is a real training image
    extra = d.train.images[len(real):]
    real_rows = {img.tobytes() for img in real.images}
    assert all(img.tobytes() in real_rows for img in extra)
    again = build_condition("real+duplicate", real=real, synthetic=syn, seed=3)
    assert np.array_equal(again.train.images, d.train.images)
    # the study's amount as options (no synthetic set needed): 9 extra, balanced 5/4
    opt = build_condition("real+duplicate", real=real, seed=3, options={"extra_total": 9})
    assert opt.n_extra == 9 and np.bincount(opt.train.labels).tolist() == [10, 9]


def test_all_real_uses_the_pool_and_never_test_images(sets):
    real, pool, syn = sets
    a = build_condition("all-real", real=real, train_pool=pool)
    assert a.train is pool and len(a.train) == 80


def test_errors_name_the_problem(sets):
    real, pool, _ = sets
    with pytest.raises(SynthmedError, match="needs synthetic images"):
        build_condition("real+synthetic", real=real)
    with pytest.raises(UnknownNameError, match="did you mean 'real\\+synthetic'"):
        build_condition("real+synthetc", real=real)
    small = LabeledImages(images=np.zeros((2, 4, 4, 1), np.uint8), labels=np.array([0, 1]), class_names=("c0", "c1"))
    with pytest.raises(SynthmedError, match="shape"):
        build_condition("real+synthetic", real=real, synthetic=small)
    with pytest.raises(ConfigError, match="unknown key 'extra_totl'; did you mean 'extra_total'"):
        build_condition("real+duplicate", real=real, options={"extra_totl": 3})
    with pytest.raises(ConfigError, match="condition 'real' options"):
        build_condition("real", real=real, options={"extra_total": 3})  # real takes no options


def test_registry_holds_roles_and_display_order():
    default = ["real", "real+classic", "real+duplicate", "all-real", "synthetic", "real+synthetic"]
    assert C.default_conditions() == default
    # the opt-in control real+domain-aug sits with the controls; the opt-in ways of using synthetic images come last
    assert list_conditions() == [*default[:3], "real+domain-aug", *default[3:], "synthetic-then-real",
                                 "real+synthetic-filtered"]
    assert C.find_condition("baseline") == "real" and C.find_condition("ceiling") == "all-real"
    assert [c for c in list_conditions() if get_condition(c).is_control] == ["real+classic", "real+duplicate",
                                                                           "real+domain-aug"]
    assert [c for c in C.default_conditions() if get_condition(c).needs_generator] == ["synthetic", "real+synthetic"]
    assert get_condition("real+duplicate").options_from_study({"total": 40, "ratio": None}) == \
        {"extra_total": 40, "extra_ratio": None}


def test_a_new_condition_is_one_registration(sets):
    real, pool, syn = sets
    half = Condition(name="half-real", order=9, description="first half of the k-shot images",
                     build=lambda inp, _: (inp.real.subset(np.arange(len(inp.real) // 2)), len(inp.real) // 2, 0))
    try:
        C.register_condition(half)
        assert "half-real" in list_conditions() and list_conditions()[-1] == "half-real"
        assert len(build_condition("half-real", real=real).train) == 5
        with pytest.raises(RuntimeError, match="registered twice"):
            C.register_condition(Condition(name="half-real", order=9, description="x", build=half.build))
    finally:
        from synthmed.conditions import base

        base._REGISTRY.pop("half-real", None)
