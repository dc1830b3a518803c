"""synthmed: does synthetic data from a generative model help a few-shot medical image classifier?

The public Python API (every CLI command is a thin layer over these):

    from synthmed.data import load_dataset, make_split
    from synthmed.generators import make_generator, list_generators
    from synthmed.classify import train_classifier
    from synthmed.study import run_study
"""

__version__ = "0.1.0"

from synthmed.errors import SynthmedError  # noqa: E402

__all__ = ["SynthmedError", "__version__"]
