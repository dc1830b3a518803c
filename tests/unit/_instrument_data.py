"""Real PneumoniaMNIST pieces shared by the instrument known-answer tests (cached per session).

The held-out design of a 50-shot split (seed 0): H (held-out), H2 (a second held-out set: the
"perfect generator"), R (reference) and E (the rest). A cheap domain model is trained on E only:
PCA of the pixels (the feature extractor) and a logistic regression on those features (the domain
classifier), so neither ever sees H, H2 or R.
"""

from __future__ import annotations

import functools
import os

import numpy as np

N_HELD = 300  # |H| = |H2| = |R|: small enough for seconds on one thread, large enough for a 1 % null rate


@functools.lru_cache(maxsize=1)
def design():
    from synthmed.data import load_dataset, make_heldout_design, make_split

    data = load_dataset("pneumoniamnist", data_dir=os.environ.get("SYNTHMED_DATA_DIR"))
    manifest = make_split(data, shots=50, seed=0)
    hd = make_heldout_design(manifest, data, n_heldout=2 * N_HELD, n_reference=N_HELD, seed=0)
    parts = hd.apply(data)
    perm = np.random.default_rng(0).permutation(len(parts["heldout"]))
    out = {"H": parts["heldout"].subset(np.sort(perm[:N_HELD])), "H2": parts["heldout"].subset(np.sort(perm[N_HELD:])),
           "R": parts["reference"], "E": parts["extractor"], "train": manifest.apply(data)["train"]}
    return out, hd


def pixels(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


@functools.lru_cache(maxsize=1)
def domain_model():
    """(PCA, logistic regression) fitted on E only; deterministic."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression

    sets, _ = design()
    pca = PCA(n_components=32, random_state=0).fit(pixels(sets["E"].images))
    clf = LogisticRegression(max_iter=500).fit(pca.transform(pixels(sets["E"].images)), sets["E"].labels)
    return pca, clf


def features(images: np.ndarray) -> np.ndarray:
    return domain_model()[0].transform(pixels(images)).astype(np.float64)


def proba(images: np.ndarray) -> np.ndarray:
    pca, clf = domain_model()
    return clf.predict_proba(pca.transform(pixels(images)))
