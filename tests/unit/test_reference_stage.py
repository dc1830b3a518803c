"""The seed-level reference (``reference`` stage): computed once per seed, and scoring a synthetic set
against it gives the numbers the single-stage path gave (known answers from before the split, on the real
PneumoniaMNIST slice of ``_instrument_data``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synthmed.errors import ConfigError
from synthmed.metrics.instruments import PreparedReference, instrument_report, prepare_reference

NAMES = ("normal", "pneumonia")
SETTINGS = {"n_subsets": 12, "n_boot": 120, "per_class": True, "seed": 3}
# instrument_report on this slice with the code before the reference stage existed (commit 665aed1)
OLD = {"fid": 0.5360060228976167, "fid_floor": 0.46827436481246565, "fid_ci": [0.2304637215573362, 0.8946197049092833],
       "floor_ci": [0.15276968978618483, 0.819454010585249], "coverage_floor_ci": [0.9279444444444443, 0.9927777777777778],
       "density": 0.9616666666666668, "pc_normal_fid_floor_ci": [0.8763958726078884, 3.0751760459089095],
       "pc_pneumonia_recall_ci": [0.8764880952380951, 0.9389880952380951],
       "bacc_floor_ci": [0.9179827605352285, 0.975587141191494], "auc_ci": [0.9788903823178017, 0.9979166666666667],
       "null": 0.006666666666666667, "thresholds": {"pixel": 0.6730299294633415, "feature": 0.5340865907336536},
       "flag_rate": 0.004166666666666667}


def _slice():
    from _instrument_data import design

    sets, _ = design()
    syn = sets["H2"].subset(np.arange(240))  # 240 < |H| = 300: the floors are size-matched down to it
    return sets, (syn.images, syn.labels), (sets["H"].images, sets["H"].labels), (sets["R"].images, sets["R"].labels)


def _report(prepared=None):
    from _instrument_data import features, proba

    sets, syn, held, ref = _slice()
    return instrument_report(syn, held, ref, sets["train"].images, NAMES, featurize=features, predict_proba=proba,
                             prepared=prepared, **SETTINGS)


def _prepare():
    from _instrument_data import features, proba

    sets, syn, held, ref = _slice()
    counts = np.bincount(syn[1], minlength=2)
    return prepare_reference(held, ref, sets["train"].images, NAMES, counts, featurize=features, predict_proba=proba,
                             **SETTINGS)


def test_prepared_reference_gives_the_single_stage_numbers(data_dir, tmp_path):
    inline = _report()
    _prepare().save(tmp_path)
    loaded = PreparedReference.load(tmp_path)  # the reference stage's files: npz + JSON, nothing pickled
    assert json.dumps(_report(loaded), sort_keys=True) == json.dumps(inline, sort_keys=True)
    f, pc = inline["fidelity"]["metrics"], inline["fidelity_per_class"]
    got = {"fid": f["fid"]["synthetic"], "fid_floor": f["fid"]["floor"], "fid_ci": f["fid"]["synthetic_ci"],
           "floor_ci": f["fid"]["floor_ci"], "coverage_floor_ci": f["coverage"]["floor_ci"],
           "density": f["density"]["synthetic"], "pc_normal_fid_floor_ci": pc["normal"]["metrics"]["fid"]["floor_ci"],
           "pc_pneumonia_recall_ci": pc["pneumonia"]["metrics"]["recall"]["synthetic_ci"],
           "bacc_floor_ci": inline["faithfulness"]["floor"]["balanced_accuracy"]["ci"],
           "auc_ci": inline["faithfulness"]["synthetic"]["roc_auc"]["ci"], "null": inline["memorization"]["null"]["rate"],
           "thresholds": inline["memorization"]["thresholds"], "flag_rate": inline["headline"]["flag_rate"]}
    # float rounding only: rank-based AUC (ulps) and FD of n ≤ D half-samples via eigvalsh (~1e-7 relative at one
    # thread; 1.1e-6 on this slice's FD of 0.536 under the suite's default thread count, whose features differ in ulps)
    for key, old in OLD.items():
        flat_old = np.ravel(list(old.values()) if isinstance(old, dict) else old)
        flat_got = np.ravel(list(got[key].values()) if isinstance(got[key], dict) else got[key])
        np.testing.assert_allclose(flat_got, flat_old, rtol=1e-5, atol=1e-12, err_msg=key)


def test_a_reference_for_other_settings_is_refused_and_other_sizes_recomputed(data_dir):
    prepared = _prepare()
    from _instrument_data import features, proba

    sets, syn, held, ref = _slice()
    with pytest.raises(ConfigError, match="re-run its reference stage"):
        instrument_report(syn, held, ref, sets["train"].images, NAMES, featurize=features, predict_proba=proba,
                          prepared=prepared, **{**SETTINGS, "n_boot": 200})
    # a synthetic set of another size than the floors were matched to: the floors are recomputed, same numbers
    small = (syn[0][:200], syn[1][:200])
    kw = {"featurize": features, "predict_proba": proba, **SETTINGS}
    a = instrument_report(small, held, ref, sets["train"].images, NAMES, prepared=prepared, **kw)
    b = instrument_report(small, held, ref, sets["train"].images, NAMES, **kw)
    assert a["fidelity"]["n_synthetic"] == 200
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_the_study_computes_the_reference_once_per_seed():
    from synthmed.study import load_study_config
    from synthmed.study.expand import expand_study
    from synthmed.study.graph import topological_order

    for seeds in ([0], [0, 1]):
        stages = topological_order(expand_study(load_study_config({"seeds": seeds}, profile="smoke")))
        refs = [s for s in stages if s.kind == "reference"]
        fids = [s for s in stages if s.kind == "fidelity"]
        assert len(refs) == len(seeds) and len(fids) == 2 * len(seeds)  # 2 generators per seed, 1 reference
        for f in fids:
            (ref,) = [r for r in refs if r.labels["seed"] == f.labels["seed"]]
            assert f.inputs["reference"].key == ref.key
            assert ref.inputs["split"].key == f.inputs["split"].key and ref.inputs["extractor"].key == f.inputs["extractor"].key
            assert {k: ref.config[k] for k in ("n_subsets", "n_boot", "alpha", "seed", "per_class")} == \
                {k: f.config[k] for k in ("n_subsets", "n_boot", "alpha", "seed", "per_class")}
        assert refs[0].config["total"] == 40  # the floors are size-matched to the smoke study's 40 synthetic images


def test_one_forward_pass_gives_the_judges_features_and_probabilities(pneumonia_50shot, tmp_path):
    """The stages run each image set through the domain network once: features and the softmax of its logits,
    which must equal ``predict_proba`` (and ``extract_features``) bit for bit, or the numbers would move."""
    from synthmed.classify import ClassifierConfig, TrainedClassifier, train_classifier
    from synthmed.metrics import features as F
    from synthmed.runs.layout import CLASSIFIER_FILE, write_stage_record
    from synthmed.study.stages.extractor import instrument_callables

    train, test = pneumonia_50shot["train"], pneumonia_50shot["test"]
    clf = train_classifier(train, None, ClassifierConfig(batch_size=16, max_steps=2, eval_every=2, device="cpu"))
    clf.save(tmp_path / CLASSIFIER_FILE)
    write_stage_record(tmp_path, {"config": {"kind": "domain"}})
    extractor, featurize, predict_proba = instrument_callables(tmp_path)
    images = test.images[:300]
    judge = TrainedClassifier.load(tmp_path / CLASSIFIER_FILE)
    assert np.array_equal(featurize(images), F.extract_features(extractor, images))
    assert np.array_equal(predict_proba(images), judge.predict_proba(images))
