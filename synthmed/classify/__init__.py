"""Baseline classifier: torchvision ResNet-18/50 and VGG-16 with small-image stems; train, predict, save.

    clf = train_classifier(split["train"], split["val"], ClassifierConfig(model="resnet18"))
    metrics = evaluate_classifier(clf, split["test"])        # synthmed.metrics.classification
"""

from synthmed.classify.config import ClassifierConfig
from synthmed.classify.models import STEMS, ImageClassifier, build_classifier, list_classifiers
from synthmed.classify.train import tiny_classifier_config, train_classifier
from synthmed.classify.trained import TrainedClassifier

__all__ = [
    "STEMS", "ClassifierConfig", "ImageClassifier", "TrainedClassifier",
    "build_classifier", "list_classifiers", "tiny_classifier_config", "train_classifier",
]
