"""``real+domain-aug``: the k-shot real images plus as many extra images as the study adds synthetic ones, each a
real image re-drawn class by class (as ``real+duplicate`` draws them) and passed through MedMNIST-C's training
augmentation for its modality (Di Salvo et al. 2024, the ``medmnistc`` package): one of the dataset's
domain-specific corruptions (noise, blur, compression, brightness, contrast, gamma, ...) at a random severity, or
none. The count-matched control with a stronger, modality-aware augmentation than ``real+classic``.

Optional: needs ``medmnistc`` and ImageMagick's ``libMagickWand`` (its registry imports ``wand``); without them
the condition says how to install them in one line. Opt-in (``in_default=False``): one more classifier per draw.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import numpy as np

from synthmed.conditions.base import ConditionInputs, Condition, concat_images, register_condition
from synthmed.conditions.real_duplicate import REAL_DUPLICATE, DuplicateOptions, count_matched_indices
from synthmed.errors import SynthmedError

NAME = "real+domain-aug"
INSTALL = ("pip install --no-deps medmnistc==0.1.0 && pip install wand opencv-python-headless scikit-image, "
           "and ImageMagick's library (Debian: apt-get install libmagickwand-6.q16-6)")
# our dataset ids -> MedMNIST-C's corruption sets (DermaMNIST is HAM10000; MedMNIST names map to themselves)
ALIASES = {"ham10000": "dermamnist"}


def corruption_set(dataset: str) -> tuple[str, dict]:
    """``(medmnistc key, {name: corruption})`` for a dataset id such as ``pneumoniamnist`` or ``ham10000_28``."""
    try:
        from medmnistc.corruptions.registry import CORRUPTIONS_DS
    except (ImportError, OSError) as e:  # wand raises ImportError when libMagickWand is missing
        raise SynthmedError(f"condition '{NAME}' needs MedMNIST-C ({type(e).__name__}: {e}); install it: {INSTALL}") from None
    base = dataset.split("_")[0].lower()
    key = ALIASES.get(base, base)
    if key not in CORRUPTIONS_DS:
        raise SynthmedError(f"condition '{NAME}': MedMNIST-C has no corruptions for dataset '{dataset}' "
                            f"(it has {', '.join(sorted(CORRUPTIONS_DS))}); leave the condition out")
    return key, CORRUPTIONS_DS[key]


@contextmanager
def _numpy_global_seed(seed: int):
    """medmnistc draws from NumPy's global generator; seed it for this build and put the caller's state back."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _working(corruptions: dict, image: np.ndarray) -> tuple[dict, dict[str, str]]:
    """The corruptions that run on this image size and NumPy; the others with why. At 28 px with NumPy 2, DermaMNIST's
    ``motion_blur`` calls the removed ``np.fromstring`` and ``characters`` needs a larger image."""
    from PIL import Image

    ok, dropped = {}, {}
    for name, c in corruptions.items():
        try:
            c.apply(Image.fromarray(image), augmentation=True)
            ok[name] = c
        except Exception as e:  # a third-party corruption that cannot run here: left out, and recorded
            dropped[name] = f"{type(e).__name__}: {e}"
    return ok, dropped


def augment_images(images: np.ndarray, dataset: str, seed: int) -> tuple[np.ndarray, dict]:
    """Each ``(H, W, C)`` uint8 image through MedMNIST-C's ``AugMedMNISTC`` (one corruption at a random severity, or
    the identity) → ``(augmented images, facts)``; the same seed gives the same images."""
    from medmnistc.augmentation import AugMedMNISTC
    from PIL import Image

    key, corruptions = corruption_set(dataset)
    grey = images.shape[-1] == 1
    plain = images[..., 0] if grey else images
    with _numpy_global_seed(seed), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # medmnistc's corruptions warn on deprecated NumPy / skimage calls
        ok, dropped = _working(corruptions, plain[0]) if len(plain) else (corruptions, {})
        if not ok:
            raise SynthmedError(f"condition '{NAME}': no MedMNIST-C corruption of '{key}' runs here ({dropped})")
        aug = AugMedMNISTC(ok)
        out = np.empty_like(images)
        for i, img in enumerate(plain):
            a = np.asarray(aug(Image.fromarray(img)), dtype=np.uint8)
            a = a[..., :1] if grey and a.ndim == 3 else a  # motion_blur hands grey images back as RGB
            out[i] = a.reshape(images.shape[1:])
    return out, {"medmnistc_set": key, "corruptions": sorted(ok), "left_out": dropped}


def _build(inp: ConditionInputs, opts: DuplicateOptions):
    real, idx = inp.real, count_matched_indices(inp, opts, NAME)
    extra, facts = augment_images(real.images[idx], real.name, inp.seed)
    return concat_images(real, extra, real.labels[idx]), len(real), len(idx), facts


REAL_DOMAIN_AUG = register_condition(Condition(
    name=NAME, order=2.5, is_control=True, in_default=False, options=DuplicateOptions, build=_build,
    description="k-shot real + as many re-drawn real images passed through MedMNIST-C's domain augmentation "
                "(count-matched control)",
    options_from_study=REAL_DUPLICATE.options_from_study,  # count-matched exactly as real+duplicate
))
