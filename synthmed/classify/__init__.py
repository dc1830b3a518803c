"""Baseline classifier: torchvision ResNet-18/50 and VGG-16 with small-image stems; train, predict, save.

    clf = train_classifier(split["train"], split["val"], ClassifierConfig(model="resnet18"))
    metrics = evaluate_classifier(clf, split["test"])        # synthmed.metrics.classification
"""

from synthmed.classify.config import ClassifierConfig
from synthmed.classify.models import STEMS, ImageClassifier, build_classifier, list_classifiers
from synthmed.classify.train import train_classifier
from synthmed.classify.trained import TrainedClassifier

__all__ = [
    "STEMS", "ClassifierConfig", "ImageClassifier", "TrainedClassifier",
    "build_classifier", "list_classifiers", "run_classify", "train_classifier",
]


def __getattr__(name):  # run_classify pulls in the data layer; import it only when asked for
    if name == "run_classify":
        from synthmed.classify.run import run_classify

        return run_classify
    raise AttributeError(f"module 'synthmed.classify' has no attribute {name!r}")
