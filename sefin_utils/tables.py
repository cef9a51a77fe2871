"""Tables for people: rounded numbers, readable column names, no index column, wide tables that scroll.

Stage notebooks and the report index show their tables through :func:`people` (a DataFrame in, an object that
notebooks display as HTML out); :func:`mean_sd` writes ``mean ± sd`` only where there is a spread to show;
:func:`seed_summary` turns a results table (one row per model and seed) into one row per model; :func:`card_table`
shows a model bundle's card as a short two-column table instead of JSON.

Examples
--------
>>> import pandas as pd
>>> from sefin_utils import tables
>>> tables.mean_sd([0.5, 0.6, 0.7])
'0.600 ± 0.100'
>>> tables.mean_sd([0.5])
'0.500'
>>> tables.readable("test_macro_f1_mean")
'test macro-F1'
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

DIGITS = 3
"""Decimals of every float a table shows."""

COLUMN_NAMES: dict[str, str] = {
    "variant": "model",
    "n_seeds": "seeds",
    "s_per_epoch": "s / epoch",
    "epoch_s": "s / epoch",
    "macs": "multiply-adds / frame",
    "params": "parameters",
    "n_params": "parameters",
    "arch": "architecture",
    "rel_error": "max error / range",
    "max_abs_error": "max |error|",
    "clip_id": "clip",
    "speaker_key": "speaker (unique)",
    "source_label": "corpus label",
    "sample_rate": "sample rate (Hz)",
    "duration": "duration (s)",
}
"""Column names read aloud; other names go through :func:`readable`'s word rules."""

_WORDS: dict[str, str] = {
    "f1": "F1",
    "macro": "macro-",
    "uar": "UAR",
    "ood": "ESD",
    "r2": "R²",
    "vw": "(variance-weighted)",
    "db": "(dB)",
    "val": "validation",
    "acc": "accuracy",
    "n": "number of",
}


def readable(column: str) -> str:
    """A column name for people: ``test_macro_f1_mean`` -> ``test macro-F1``, ``r2_vw_ood`` -> ``R² ESD
    (variance-weighted)``; names in :data:`COLUMN_NAMES` are taken as they are given there.

    ``_mean`` suffixes are dropped (the table shows means, with the spread where there is one); ``ood`` is read as
    ESD, sefin's out-of-domain test set.
    """
    name = str(column)
    if name in COLUMN_NAMES:
        return COLUMN_NAMES[name]
    base = re.sub(r"_mean$", "", name)
    if base in COLUMN_NAMES:
        return COLUMN_NAMES[base]
    words = [_WORDS.get(w, w) for w in base.split("_") if w]
    trailing = [w for w in words if w.startswith("(")]
    words = [w for w in words if not w.startswith("(")] + trailing  # "(variance-weighted)" after the split name
    text = " ".join(words).replace("macro- ", "macro-")
    if text.startswith("validation ") and "F1" in text:
        text = text.replace("validation ", "val ", 1)
    return text


def fmt(value: Any, *, digits: int = DIGITS) -> str:
    """One cell for people: floats rounded to ``digits`` decimals (integers without), big integers grouped, missing
    values empty, booleans as yes/no."""
    if value is None:
        return ""
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}" if abs(int(value)) >= 10_000 else str(int(value))
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isnan(v):
            return ""
        if math.isinf(v):
            return "∞" if v > 0 else "-∞"
        if v.is_integer() and abs(v) >= 1_000:
            return f"{int(v):,}"
        if v != 0 and abs(v) < 10 ** (-digits):
            return f"{v:.1e}"
        return f"{v:.{digits}f}"
    return str(value)


def pm(mean: Any, sd: Any = None, *, digits: int = DIGITS, missing: str = "") -> str:
    """``mean ± sd`` from a mean and a spread already computed (:func:`fmt` each): the bare mean when the spread is
    missing (None or NaN), ``missing`` when the mean is."""
    if mean is None or pd.isna(mean):
        return missing
    text = fmt(float(mean), digits=digits)
    return text if sd is None or pd.isna(sd) else f"{text} ± {fmt(float(sd), digits=digits)}"


def mean_sd(values: Iterable[float], *, digits: int = DIGITS) -> str:
    """``mean ± sd`` (sample standard deviation) of several values, the bare value of one, empty for none.

    NaNs are left out. The spread is shown only where there are two values or more: one seed has no spread.
    """
    v = np.asarray([float(x) for x in values], dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return ""
    if v.size == 1:
        return fmt(float(v[0]), digits=digits)
    return pm(v.mean(), v.std(ddof=1), digits=digits)


def seed_summary(
    results: pd.DataFrame,
    metrics: Sequence[str],
    *,
    by: Sequence[str] = ("variant",),
    seed_col: str = "seed",
    extra: Sequence[str] = (),
) -> pd.DataFrame:
    """One row per model (``by``) of a results table with one row per model and seed.

    Each metric becomes ``mean ± sd`` where the model has two seeds or more, the bare value otherwise; a ``seeds``
    column gives the number of seeds. ``extra`` columns are carried over from the group's first row. Column names
    stay raw (``people`` makes them readable); row order is the table's.

    Raises
    ------
    ValueError
        When a ``by`` or metric column is missing.
    """
    missing = [c for c in (*by, *metrics) if c not in results.columns]
    if missing:
        raise ValueError(f"results lack columns {missing} (columns: {list(results.columns)})")
    rows = []
    for key, g in results.groupby(list(by), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        row: dict[str, Any] = dict(zip(by, key, strict=True))
        row["n_seeds"] = int(g[seed_col].nunique()) if seed_col in g.columns else len(g)
        for c in extra:
            if c in g.columns:
                row[c] = g[c].iloc[0]
        for m in metrics:
            row[m] = mean_sd(g[m])
        rows.append(row)
    return pd.DataFrame(rows)


_NUMBER = re.compile(r"[-+]?[\d,.]+(e[-+]\d+)?( ± [\d.]+(e[-+]\d+)?)?")


class Table:
    """A DataFrame made readable, displayed as HTML by notebooks (``_repr_html_``) and pages (:meth:`to_html`).

    The frame's own index is dropped (name it as a column first when it carries data); wide tables scroll inside
    their box instead of running off the page.
    """

    def __init__(
        self,
        df: pd.DataFrame,
        *,
        caption: str | None = None,
        digits: int = DIGITS,
        rename: Mapping[str, str] | None = None,
    ) -> None:
        self.caption = caption
        self.digits = digits
        names = {c: (rename or {}).get(c, readable(c)) for c in df.columns}
        self.frame = pd.DataFrame({names[c]: [fmt(v, digits=digits) for v in df[c]] for c in df.columns})

    def __len__(self) -> int:
        return len(self.frame)

    def to_html(self) -> str:
        """``<div class="table-wrap"><table>...</table></div>``: cells escaped, numbers right-aligned."""
        numeric = [
            bool(len(self.frame)) and self.frame[c].map(lambda v: v == "" or bool(_NUMBER.fullmatch(v))).all()
            for c in self.frame.columns
        ]
        head = "".join(
            f'<th style="text-align:{"right" if num else "left"}">{html.escape(str(c))}</th>'
            for c, num in zip(self.frame.columns, numeric, strict=True)
        )
        body = []
        for row in self.frame.itertuples(index=False):
            cells = []
            for v in row:
                num = bool(_NUMBER.fullmatch(v))
                style = ' style="text-align:right"' if num else ' style="text-align:left"'
                cells.append(f"<td{style}>{html.escape(v)}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        note = 'class="table-note" style="font-size:.88em;color:#555;margin:.1em 0 1em"'
        cap = f"<p {note}>{html.escape(self.caption)}</p>" if self.caption else ""
        return (
            f'<div class="table-wrap" style="overflow-x:auto;max-width:100%">'
            f'<table class="sefin-table"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>{cap}</div>"
        )

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        return self.frame.to_string(index=False)


def people(
    df: pd.DataFrame,
    *,
    columns: Sequence[str] | None = None,
    index: str | None = None,
    caption: str | None = None,
    digits: int = DIGITS,
    rename: Mapping[str, str] | None = None,
    drop_empty: bool = True,
) -> Table:
    """A table for people from a DataFrame: ``columns`` (those present, in order; default all), the index as a
    first column named ``index`` when it carries data, numbers rounded to ``digits`` decimals, readable names;
    with ``drop_empty`` the columns with no value at all are left out.

    Examples
    --------
    >>> people(pd.DataFrame({"test_macro_f1": [0.123456]})).frame.to_dict("list")
    {'test macro-F1': ['0.123']}
    """
    out = df.copy()
    if index is not None:
        out = out.reset_index(names=index)
    if columns is not None:
        out = out[[c for c in columns if c in out.columns]]
    if drop_empty:
        out = out[[c for c in out.columns if not out[c].isna().all()]]
    return Table(out, caption=caption, digits=digits, rename=rename)


def crosstab(df: pd.DataFrame, *, index_name: str | None = None, caption: str | None = None) -> Table:
    """A crosstab or pivot (index and columns carrying data) as a people table: the index becomes the first column,
    named ``index_name`` (default the index's own name)."""
    name = index_name or df.index.name or ""
    flat = df.copy()
    flat.columns = [str(c) for c in flat.columns]
    return Table(flat.reset_index(names=name), caption=caption, rename={name: name, **{c: c for c in flat.columns}})


CARD_METRICS: tuple[str, ...] = (
    "val_macro_f1",
    "test_accuracy",
    "test_macro_f1",
    "test_uar",
    "ood_accuracy",
    "ood_macro_f1",
)
"""The metrics :func:`card_table` shows (those the card has)."""


def card_table(card: Mapping[str, Any], *, metrics: Sequence[str] = CARD_METRICS) -> Table:
    """A model bundle's card (``model/card.json``) as a short two-column table: the model, how it was chosen, the
    protocol, seeds, data, clips per split and its metrics (mean over seeds), rounded. The run's params stay in
    the card (the report index lists them)."""
    rows: list[tuple[str, Any]] = [("model", card.get("variant", "?"))]
    if card.get("chosen_by"):
        rows.append(("chosen by", card["chosen_by"]))
    if card.get("protocol"):
        rows.append(("split protocol", card["protocol"]))
    seeds = card.get("seeds") or []
    if seeds:
        rows.append(("seeds", f"{len(set(seeds))} ({', '.join(str(s) for s in sorted(set(seeds)))})"))
    data = card.get("data") or {}
    if data:
        rows.append(("data", ("GENERATED demo corpus" if data.get("generated") else str(data.get("data_root", "?")))))
        per = data.get("clips_per_split") or {}
        if per:
            rows.append(("clips per split", ", ".join(f"{k} {v}" for k, v in per.items())))
    m = card.get("metrics") or {}
    for key in metrics:
        if key in m:
            label = readable(key) + (" (mean over seeds)" if len(set(seeds)) > 1 else "")
            rows.append((label, fmt(float(m[key]))))
    return Table(pd.DataFrame(rows, columns=["", "value"]), rename={"": "", "value": "value"})
