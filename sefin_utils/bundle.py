"""Old name of the bundle half of :mod:`sefin_utils.inference` (kept for callers not yet moved: the pipeline's
``save_run_bundle`` and the report notebook). New code imports :mod:`sefin_utils.inference`."""

from sefin_utils.inference import (  # noqa: F401
    CARD_FILE,
    CLASSIFIER_FILE,
    KINDS,
    OFFSET_RULES,
    PREPROCESS_FILE,
    Bundle,
    BundleError,
    EmotionClassifier,
    Prediction,
    WindowPrediction,
    load_bundle,
    normalization_layers,
    resolve_preprocess,
    save_bundle,
    window_starts,
)
