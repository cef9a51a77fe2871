"""Moved: the emotion-classifier code now lives in ``classifiers`` (models, inputs, ablation codes), ``training``
(datasets, the fit loop), ``experiments`` (``run_experiments``, what is written) and ``results`` (tables).

This module only re-exports those names for one step, so that callers not yet switched (``runs``, ``bundle``,
notebook 02) keep working; import from the new modules instead. It will be removed.
"""

from __future__ import annotations

from sefin_utils.classifiers import (
    ABLATION,
    ALL_FIN,
    FEATURE_DIMS,
    FEATURE_NAMES,
    FIN_INITS,
    HEADS,
    N_SUMMARY,
    SOURCES,
    ablation_code,
    assemble_pooled,
    build_baseline,
    build_end_to_end,
    build_head,
    clone_fin,
    copy_head_weights,
    encode_labels,
    inputs_from_clips,
    make_inputs,
    model_input_names,
    norm_stats,
    pooled_label_parts,
    pooled_label_vectors,
    sources_from_code,
)
from sefin_utils.experiments import DEFAULT_PARAMS, evaluate, pooled_fin_outputs, run_experiments
from sefin_utils.features import SUMMARY_ORDER
from sefin_utils.layers import FrameClips, MaskedMean, MergeFrames, SplitFrames
from sefin_utils.results import SUMMARY_METRICS, best_model, results_html, summary_table
from sefin_utils.training import (
    MAX_TENSOR_BYTES,
    balanced_class_weight,
    make_dataset,
    predict_proba,
    train_classifier,
)

__all__ = [
    "ABLATION",
    "ALL_FIN",
    "DEFAULT_PARAMS",
    "FEATURE_DIMS",
    "FEATURE_NAMES",
    "FIN_INITS",
    "HEADS",
    "MAX_TENSOR_BYTES",
    "N_SUMMARY",
    "SOURCES",
    "SUMMARY_METRICS",
    "SUMMARY_ORDER",
    "FrameClips",
    "MaskedMean",
    "MergeFrames",
    "SplitFrames",
    "ablation_code",
    "assemble_pooled",
    "balanced_class_weight",
    "best_model",
    "build_baseline",
    "build_end_to_end",
    "build_head",
    "clone_fin",
    "copy_head_weights",
    "encode_labels",
    "evaluate",
    "inputs_from_clips",
    "make_dataset",
    "make_inputs",
    "model_input_names",
    "norm_stats",
    "pooled_fin_outputs",
    "pooled_label_parts",
    "pooled_label_vectors",
    "predict_proba",
    "results_html",
    "run_experiments",
    "sources_from_code",
    "summary_table",
    "train_classifier",
]
