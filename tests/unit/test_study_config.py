"""Study config validation and the stage graph's content-hash keys."""

import pytest

from synthmed.errors import ConfigError
from synthmed.study import load_study_config
from synthmed.study.expand import expand_study
from synthmed.study.graph import topological_order


def test_default_study_is_the_embedded_one():
    cfg = load_study_config()
    assert cfg.dataset.name == "pneumoniamnist" and cfg.dataset.size == 28 and cfg.split.shots == 50
    assert [g.family for g in cfg.generators] == ["cgan", "cvae", "ddpm"]
    # the question's comparison and its controls; synthetic-only is in full/usage (issue 13: the default's time)
    assert cfg.conditions == ["real", "real+classic", "real+duplicate", "all-real", "real+synthetic"]
    assert cfg.seeds == [0, 1, 2, 3, 4]  # five paired k-shot draws: the least that answers (issue 13)
    ddpm = cfg.generators[2]
    assert cfg.generators[0].config == {"max_steps": 1000} and ddpm.config == {"max_steps": 750} and ddpm.sample == {"steps": 25}
    assert cfg.split.per_seed and cfg.ceiling.max_steps == 600


def test_quick_profile_is_one_draw_of_the_default():
    quick, default = load_study_config(profile="quick"), load_study_config()
    assert quick.seeds == [0]
    assert quick.model_dump(exclude={"seeds"}) == default.model_dump(exclude={"seeds"})


def test_full_profile_lists_every_registered_family():
    from synthmed.generators import list_generators

    from synthmed.conditions import default_conditions

    cfg = load_study_config(profile="full")
    assert [g.family for g in cfg.generators] == list_generators() and cfg.seeds == [0, 1, 2, 3, 4]
    assert cfg.conditions == default_conditions() and "synthetic" in cfg.conditions
    assert "synthetic" in load_study_config(profile="smoke").conditions


def test_unknown_key_gives_one_line_naming_the_field():
    with pytest.raises(ConfigError) as e:
        load_study_config({"split": {"shot": 20}})
    msg = str(e.value)
    assert "split.shot" in msg and "did you mean 'shots'" in msg and "\n" not in msg


def test_bad_value_and_unknown_condition_and_profile():
    with pytest.raises(ConfigError, match="split.shots"):
        load_study_config({"split": {"shots": 0}})
    with pytest.raises(ConfigError, match="did you mean 'real\\+classic'"):
        load_study_config({"conditions": ["real+clasic"]})
    with pytest.raises(ConfigError, match="unknown profile 'smok'; did you mean 'smoke'"):
        load_study_config(profile="smok")


def test_unknown_generator_family_and_family_option_fail_at_expansion():
    from synthmed.errors import SynthmedError

    with pytest.raises(SynthmedError, match="did you mean 'wgan-gp'"):
        expand_study(load_study_config({"generators": [{"family": "wgan_gp"}]}, profile="smoke"))
    with pytest.raises(ConfigError, match="cgan config"):
        expand_study(load_study_config({"generators": [{"family": "cgan", "config": {"no_such_option": 1}}]}, profile="smoke"))


def _keys(cfg):
    return {s.name: s.key for s in topological_order(expand_study(cfg))}


def test_changing_one_setting_changes_only_downstream_keys():
    base = _keys(load_study_config(profile="smoke"))
    assert _keys(load_study_config(profile="smoke")) == base  # deterministic
    more = _keys(load_study_config({"synthetic": {"total": 60}}, profile="smoke"))
    changed = {n for n in base if base[n] != more.get(n)}
    assert changed and all(n.startswith(("sample", "classify", "fidelity", "reference")) for n in changed)
    assert more["split seed 0"] == base["split seed 0"]
    assert more["generator cgan seed 0"] == base["generator cgan seed 0"]
    assert more["classify real [-] seed 0"] == base["classify real [-] seed 0"]  # real does not use samples
    assert more["classify real+duplicate [-] seed 0"] != base["classify real+duplicate [-] seed 0"]  # count-matched


def test_seeds_expand_every_condition():
    stages = topological_order(expand_study(load_study_config({"seeds": [0, 1]}, profile="smoke")))
    classify = [s for s in stages if s.kind == "classify"]
    # 4 controls + 2 generators x 2 generator conditions, per seed
    assert len(classify) == 2 * (4 + 2 * 2)
    splits = [s for s in stages if s.kind == "split"]
    assert [s.config["seed"] for s in splits] == [0, 1]  # each seed draws its own k-shot split by default
    shared = expand_study(load_study_config({"seeds": [0, 1], "split": {"per_seed": False, "seed": 3}}, profile="smoke"))
    assert {s.config["seed"] for s in shared if s.kind == "split"} == {3}  # one split (the given seed) for every seed


def test_default_study_has_no_time_caps_and_a_fair_ceiling():
    cfg = load_study_config()
    assert all("max_minutes" not in g.config for g in cfg.generators)  # step budgets decide (issue 13)
    stages = expand_study(cfg)
    assert all(s.config["config"].get("max_minutes") is None for s in stages if s.kind == "generator")
    ceiling = next(s for s in stages if s.kind == "classify" and s.config["condition"] == "all-real")
    assert ceiling.config["fair_budget"] == {"max_steps": 600, "balanced_sampling": True}
    real = next(s for s in stages if s.kind == "classify" and s.config["condition"] == "real")
    assert real.config["fair_budget"] is None


def test_sampling_knobs_resample_without_retraining():
    def study(**ddpm_sample):
        gens = [{"family": "ddpm", "config": {"tiny": True, "max_steps": 3}, "sample": ddpm_sample},
                {"family": "cvae", "config": {"tiny": True, "max_steps": 3}}]
        return expand_study(load_study_config({"seeds": [0], "generators": gens}, profile="smoke"))

    plain, tuned = study(), study(steps=5)

    def keys(stages, kind, gen):
        return {s.key for s in stages if s.kind == kind and s.labels.get("generator") == gen}

    assert keys(plain, "generator", "ddpm") == keys(tuned, "generator", "ddpm")  # no retraining
    assert keys(plain, "samples", "ddpm") != keys(tuned, "samples", "ddpm")  # a new synthetic set
    assert keys(plain, "samples", "cvae") == keys(tuned, "samples", "cvae")
    assert all("knobs" not in s.config for s in plain if s.kind == "samples")  # no knobs: the old keys


def test_generator_keys_hash_what_auto_resolves_to(monkeypatch):
    from synthmed.generators.gan import CGAN, WGANGP

    def gen_keys(*gens):
        cfg = load_study_config({"seeds": [0], "generators": list(gens)}, profile="default")
        return {s.labels["generator"]: s for s in expand_study(cfg) if s.kind == "generator"}

    default = gen_keys({"family": "cgan"}, {"family": "wgan-gp"}, {"family": "ddpm"})
    spelled = gen_keys({"family": "cgan", "config": {"conditioning": CGAN.default_conditioning, "max_steps": 2000,
                                                     "embed_std": CGAN.default_embed_std, "d_norm": "batch",
                                                     "lr": 2e-4, "betas": [0.5, 0.999], "n_critic": 1}},
                       {"family": "ddpm", "config": {"max_steps": 2000}})
    for family in ("cgan", "ddpm"):  # the defaults spelled out are the default study's stages, not a retrain
        assert spelled[family].key == default[family].key
    resolved = default["wgan-gp"].config["config"]
    assert [k for k, v in resolved.items() if v in ("auto", None) and k != "device"] == ["max_minutes"]  # no cap
    assert default["wgan-gp"].config["config"]["d_norm"] == "layer"  # the loss's critic norm
    monkeypatch.setattr(WGANGP, "default_conditioning", "concat" if WGANGP.default_conditioning != "concat"
                        else "projection")
    assert gen_keys({"family": "wgan-gp"})["wgan-gp"].key != default["wgan-gp"].key  # a new default retrains


def test_unknown_sampling_knob_is_one_line_before_any_work():
    with pytest.raises(ConfigError) as e:
        expand_study(load_study_config({"generators": [{"family": "cvae", "sample": {"sampler": "unipc"}}]},
                                       profile="smoke"))
    assert "cvae sampling takes no sampler" in str(e.value) and "\n" not in str(e.value)


def test_pool_takes_the_earliest_draw_first_and_long_kinds_first_within_it():
    from synthmed.study.executor import _priority

    stages = topological_order(expand_study(load_study_config({"seeds": [0, 1]}, profile="smoke")))
    order = sorted(stages, key=_priority)
    seeds = [s.labels["seed"] for s in order]
    assert seeds == sorted(seeds)  # every stage of draw 0 is preferred to any of draw 1
    kinds = [s.kind for s in order if s.labels["seed"] == 0]
    assert kinds.index("generator") < kinds.index("classify") < kinds.index("fidelity")


def test_cli_profile_help_names_every_profile():
    import inspect

    from synthmed import cli
    from synthmed.study.config import profile_names

    text = inspect.signature(cli.run).parameters["profile"].default.help
    assert all(name in text for name in profile_names())


def test_smoke_profile_is_one_draw():
    assert load_study_config(profile="smoke").seeds == [0]


def test_dataset_channels_is_validated_and_leaves_existing_keys_alone():
    base = _keys(load_study_config(profile="smoke"))
    grey = load_study_config({"dataset": {"channels": 1}}, profile="smoke")
    assert grey.dataset.channels == 1
    assert _keys(grey)["split seed 0"] != base["split seed 0"]
    # unset, the new field is not in the stage configs, so caches made before it existed stay valid
    assert "channels" not in load_study_config(profile="smoke").dataset.model_dump()
    with pytest.raises(ConfigError, match="channels"):
        load_study_config({"dataset": {"channels": 2}}, profile="smoke")


def test_rgb_overrides_apply_only_to_rgb_data():
    from synthmed.study.expand import study_channels

    spec = {"family": "cvae", "config": {"tiny": True, "max_steps": 3}, "config_rgb": {"max_steps": 5}}

    def steps(dataset):
        cfg = load_study_config({"dataset": dataset, "generators": [spec]}, profile="smoke")
        gens = [s for s in expand_study(cfg) if s.kind == "generator"]
        return study_channels(cfg), {s.config["config"]["max_steps"] for s in gens}

    assert steps({"name": "pneumoniamnist"}) == (1, {3})
    assert steps({"name": "ham10000"}) == (3, {5})
    assert steps({"name": "ham10000", "channels": 1}) == (1, {3})  # the grey stand-in
    assert steps({"name": "folder", "path": "x"}) == (0, {5})  # unknown until the files are read: the RGB budget


def test_load_study_config_takes_a_yaml_path(tmp_path):
    from synthmed.errors import DataNotFoundError

    p = tmp_path / "study.yaml"
    p.write_text("name: mine\nseeds: [3]\n")
    cfg = load_study_config(p)
    assert cfg.name == "mine" and cfg.seeds == [3] and load_study_config(str(p)) == cfg
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_study_config(tmp_path / "missing.yaml")
    p.write_text("seeds: [3\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_study_config(p)
