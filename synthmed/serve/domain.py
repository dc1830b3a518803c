"""Is an uploaded image like the images the classifiers were trained on? (the out-of-distribution warning)

Every classifier returns confident probabilities for any input, a colour holiday photo included.
The app measures how far the upload is from the run's real training images in the classifier's own
penultimate-feature space (``TrainedClassifier.embed``): the distance to the nearest training image.
The threshold is calibrated on real images the classifier never trained on (the split's validation
images): an upload farther than the 99th percentile of their distances is flagged, so about 1 real
image in 100 is flagged by chance and a far-off image is flagged always.

The real images are read from the dataset the run names (``$SYNTHMED_DATA_DIR`` or ``data_dir``),
never downloaded; without them the check is skipped and the response says so.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

QUANTILE = 99.0  # percentile of held-out real distances above which an upload is flagged


@dataclass(frozen=True)
class DomainReference:
    """Training features of one classifier and the calibrated distance threshold."""

    train_features: np.ndarray  # (N, D) penultimate features of the real training images
    threshold: float  # QUANTILE-th percentile of held-out real images' nearest-training distances
    n_heldout: int

    @classmethod
    def build(cls, clf, train_images: np.ndarray, heldout_images: np.ndarray) -> "DomainReference":
        ref = cls(clf.embed(train_images), 0.0, len(heldout_images))
        d = ref.distances(clf.embed(heldout_images))
        return cls(ref.train_features, float(np.percentile(d, QUANTILE)), len(heldout_images))

    def distances(self, features: np.ndarray) -> np.ndarray:
        """Euclidean distance of each row of ``features`` to its nearest training feature."""
        from scipy.spatial.distance import cdist

        return cdist(np.asarray(features, dtype=np.float64), self.train_features.astype(np.float64)).min(axis=1)

    def note(self, clf, image: np.ndarray) -> str | None:
        """A warning for one ``(1, H, W, C)`` image farther from the training images than the threshold."""
        d = float(self.distances(clf.embed(image))[0])
        if d <= self.threshold:
            return None
        return (f"this image is far from the images the classifiers were trained on (feature distance {d:.3g} > "
                f"{self.threshold:.3g}, the {QUANTILE:g}th percentile of {self.n_heldout} held-out real images); "
                "treat the probabilities below as meaningless for it")


def split_images(run_dir: Path, manifest: dict, seed: Any, data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    """The run's real training and validation images for ``seed`` (the split stage of that seed)."""
    from synthmed.data import load_study_dataset
    from synthmed.data.splits import SplitManifest
    from synthmed.serve.security import resolve_inside

    splits = [s for s in manifest.get("stages", []) if s.get("kind") == "split"]
    stage = next((s for s in splits if s.get("labels", {}).get("seed") == seed), splits[0])
    split = SplitManifest.from_json(resolve_inside(run_dir, f"{stage['folder']}/split.json"))
    ds = manifest["config"]["dataset"]
    data = load_study_dataset(ds, data_dir, download=False)
    parts = split.apply(data)
    return parts["train"].images, parts["val"].images


class DomainReferences:
    """References per classifier file, built once (under a lock) and kept while the app runs."""

    def __init__(self, data_dir: str | None = None):
        self.data_dir = data_dir
        self._refs: dict[str, DomainReference | str] = {}
        self._lock = threading.Lock()

    def get(self, key: str, run_dir: Path, manifest: dict, clf, seed) -> DomainReference | str:
        """The reference for the classifier at ``key``, or a one-line reason why there is none."""
        from synthmed.errors import SynthmedError

        with self._lock:
            if key not in self._refs:
                try:
                    train, heldout = split_images(run_dir, manifest, seed, self.data_dir)
                    self._refs[key] = DomainReference.build(clf, train, heldout) if len(heldout) else \
                        "the run's split has no held-out images to calibrate the distance check"
                except (SynthmedError, KeyError, IndexError, TypeError):
                    self._refs[key] = ("the distance-to-training check is off: the run's dataset is not in "
                                       "SYNTHMED_DATA_DIR on this server")
            return self._refs[key]
