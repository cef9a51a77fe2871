"""Old name of the predict half of :mod:`sefin_utils.inference` (kept for the report notebook's
``predict.predict_paths`` / ``predict.format_table``). New code imports :mod:`sefin_utils.inference`."""

from sefin_utils.inference import (  # noqa: F401
    NoBundleError,
    collect_audio_files,
    find_latest_bundle,
    format_table,
    main,
    predict_paths,
    scan_inputs,
    write_csv,
    write_json,
)
