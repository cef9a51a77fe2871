"""Every number the seed study published, in one place.

Sources: the study's logs and README (FIN R² in domain and on ESD, FIN parameter counts and losses, SER test numbers
on its file-level split with speakers shared, the ablation's accuracy range) and the public Kaggle notebook it extends
(test accuracy 0.607 on augmented rows). Nothing here is computed by sefin; reports read these numbers beside ours.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

PROTOCOL: str = "study file-level split, speakers shared"
"""How the study's SER numbers were obtained (single runs, 1,825 unaugmented test files, 8 classes)."""

FIN_R2: Mapping[str, Mapping[str, float | None]] = MappingProxyType(
    {
        "rms": MappingProxyType({"r2_test": 0.985, "r2_vw_test": None, "r2_ood": 0.968, "r2_vw_ood": None}),
        "zcr": MappingProxyType({"r2_test": 0.935, "r2_vw_test": None, "r2_ood": 0.94, "r2_vw_ood": None}),
        "chroma": MappingProxyType({"r2_test": 0.932, "r2_vw_test": None, "r2_ood": 0.917, "r2_vw_ood": None}),
        "mfcc": MappingProxyType({"r2_test": 0.917, "r2_vw_test": None, "r2_ood": 0.543, "r2_vw_ood": None}),
        "mel": MappingProxyType({"r2_test": 0.333, "r2_vw_test": 0.969, "r2_ood": None, "r2_vw_ood": 0.892}),
    }
)
"""The study's published FIN R² (test frames of the training corpora; ESD out of domain). For 1-d features uniform and
variance-weighted R² coincide; ``None`` where the study gave no number."""

FIN_PARAMS: Mapping[str, int] = MappingProxyType(
    {"rms": 66_241, "zcr": 263_057, "chroma": 894_412, "mfcc": 822_420, "mel": 983_680}
)
"""Parameter counts of the study's FIN topologies (a test builds them and checks)."""

FIN_LOSS: Mapping[str, str] = MappingProxyType(
    {"rms": "mse", "zcr": "mse", "chroma": "mae", "mfcc": "mse", "mel": "mse"}
)
"""The study's training loss per FIN."""

SER_RESULTS: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {
        "baseline": MappingProxyType({"accuracy": 0.513, "macro_f1": 0.48}),
        "e2e_frozen": MappingProxyType({"accuracy": 0.491, "macro_f1": 0.47}),
        "e2e_finetuned": MappingProxyType({"accuracy": 0.616, "macro_f1": 0.65}),
        "e2e_random": MappingProxyType({"accuracy": 0.520, "macro_f1": 0.55}),
    }
)
"""The study's logged SER test numbers per variant (:data:`PROTOCOL`; the baseline unstandardised)."""

KAGGLE_NOTEBOOK_ACCURACY: float = 0.607
"""The public Kaggle notebook's test accuracy (its split shares augmented rows of one recording across splits)."""

ABLATION_ACCURACY: tuple[float, float] = (0.578, 0.618)
"""The range of test accuracy over the study's 32-way ablation (:data:`PROTOCOL`, single runs)."""

ANCHORS_FULL: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {
        "study": MappingProxyType({"logreg": 0.486, "svm_rbf": 0.558, "mlp": 0.603}),
        "speaker": MappingProxyType({"logreg": 0.305, "svm_rbf": 0.339, "mlp": 0.385}),
    }
)
"""Test macro-F1 of scikit-learn anchors on the standardised 162-dim vector, full corpora, no augmentation (measured
by an earlier sefin session, issue 12; kept for comparison, not published by the study)."""


def study_key(variant: str) -> str | None:
    """The key of :data:`SER_RESULTS` that a sefin variant name is read beside (``None`` when the study has none).

    ``baseline_kaggle``, ``baseline_study`` and their ``*_raw`` forms map to ``baseline``.
    """
    v = str(variant)
    if v.startswith("baseline"):
        return "baseline"
    return v if v in SER_RESULTS else None
