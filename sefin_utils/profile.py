"""Typed parameter profiles: load ``params/<profile>.yaml`` (an overlay of ``params/base.yaml``), type and validate.

A profile file states ``extends: base`` and only the keys it changes; ``base.yaml`` documents every key once and holds
its default. Every key has a type (and its allowed values where it has them) in :data:`SCHEMA`; a profile is validated
when it is loaded, by the command line (``-p key value``) and by a stage notebook run on its own
(:func:`sefin_utils.runs.stage_params` calls :func:`validate`), so that an unknown key (``calm_mode`` for ``calm``) or a
wrong type (``-p fin_epochs abc``) is an error naming the key before any stage runs.

YAML 1.1 (PyYAML) reads ``0011`` as the octal integer 9; profile files and ``-p`` values are read with a loader that
keeps a scalar with a leading zero as text, so identifiers such as ESD speakers stay ``"0011"``.

This module is low in the package: it imports neither Keras nor the runner nor any stage code.

Examples
--------
>>> from sefin_utils import profile
>>> P = profile.load_profile("tiny", overrides={"fin_epochs": 2})  # doctest: +SKIP
>>> profile.parse_value("[0011, 0012]")
['0011', '0012']
"""

from __future__ import annotations

import itertools
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT: Path = Path(__file__).resolve().parents[1]
"""The checkout holding ``sefin_utils/``, ``params/`` and ``notebooks/``."""
PARAMS_DIR: Path = REPO_ROOT / "params"
BASE_PROFILE: str = "base"
DEFAULT_PROFILE: str = "demo"
KAGGLE_INPUT: Path = Path("/kaggle/input")
KAGGLE_WORKING: Path = Path("/kaggle/working")
DERIVED_KEYS: tuple[str, ...] = ("profile", "run_dir", "report_dir")
"""Keys the loader derives (``run_dir``/``report_dir`` may be given): the profile name and the two output folders."""
EXTENDS_KEY: str = "extends"
"""The overlay key of a profile file: the name (or YAML path) of the profile it changes."""


class ParamError(ValueError):
    """A param with a wrong type or value; the message names the key, the value found and what was expected."""


class UnknownParamError(ParamError, KeyError):
    """A key no profile knows (a typo such as ``calm_mode`` for ``calm``); the message lists the close known keys."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


# --------------------------------------------------------------------------------------------------- YAML


class _Loader(yaml.SafeLoader):
    """A safe loader that keeps leading-zero scalars (``0011``) as text instead of YAML 1.1 octal integers."""


_LEADING_ZERO = re.compile(r"[-+]?0[0-9_]+")


def _int_or_identifier(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int | str:
    text = loader.construct_scalar(node)
    if isinstance(text, str) and _LEADING_ZERO.fullmatch(text):
        return text  # an identifier such as ESD speaker 0011 (YAML 1.1 would read octal 9)
    return loader.construct_yaml_int(node)


_Loader.add_constructor("tag:yaml.org,2002:int", _int_or_identifier)


def load_yaml(text: str) -> Any:
    """Parse YAML text like ``yaml.safe_load``, except that ``0011`` stays the text ``"0011"``."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)


def parse_value(text: str) -> Any:
    """Type an override given on the command line as YAML does (``3`` -> 3, ``[a, b]`` -> list, ``null``), keeping
    leading-zero scalars as text (``0011`` -> ``"0011"``); text that is not valid YAML stays text."""
    try:
        return load_yaml(text)
    except yaml.YAMLError:
        return text


# --------------------------------------------------------------------------------------------------- types


@dataclass(frozen=True)
class Type:
    """The type of one param: ``check(key, value)`` returns the value in its canonical type or raises ParamError.

    ``kind`` is one of ``int``, ``float``, ``bool``, ``str``, ``choice``, ``list``, ``any``; ``choices`` the allowed
    values of a ``choice`` (or of a ``list``'s items), ``minimum`` a lower bound for numbers, ``nullable`` whether
    ``null`` is allowed, ``alternatives`` other types also accepted (e.g. ``per_frame`` or a number).
    """

    kind: str
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    nullable: bool = False
    item: Type | None = None
    alternatives: tuple[Type, ...] = ()
    describe_as: str = ""

    def describe(self) -> str:
        """What is expected, in words (used in error messages)."""
        if self.describe_as:
            return self.describe_as
        words = {
            "int": "an integer",
            "float": "a number",
            "bool": "true or false",
            "str": "a text",
            "any": "any value",
        }.get(self.kind, "")
        if self.kind == "choice":
            words = "one of " + ", ".join(map(str, self.choices))
        elif self.kind == "list":
            words = f"a list of {self.item.describe() if self.item else 'values'}"
        if self.minimum is not None:
            words += f" >= {self.minimum:g}"
        parts = [words, *(a.describe() for a in self.alternatives)]
        if self.nullable:
            parts.append("null")
        return " or ".join(parts)

    def check(self, key: str, value: Any) -> Any:
        """``value`` converted to this type (``"3"`` -> 3 for an integer, 1 -> 1.0 for a number) or ParamError."""
        if value is None:
            if self.nullable or self.kind == "any":
                return None
            raise ParamError(f"param {key!r}: got null, expected {self.describe()}")
        try:
            return self._check_one(key, value)
        except ParamError as err:
            if not self.alternatives:
                raise
            first = err
        for candidate in self.alternatives:
            try:
                return candidate._check_one(key, value)
            except ParamError:
                continue
        raise ParamError(f"param {key!r}: got {value!r}, expected {self.describe()}") from first

    def _check_one(self, key: str, value: Any) -> Any:
        fail = ParamError(f"param {key!r}: got {value!r} ({type(value).__name__}), expected {self.describe()}")
        if self.kind == "any":
            return value
        if self.kind == "bool":
            if isinstance(value, bool):
                return value
            raise fail
        if self.kind in {"int", "float"}:
            if isinstance(value, bool):
                raise fail
            if isinstance(value, str):  # a leading-zero scalar kept as text, or a string given by hand
                try:
                    value = int(value, 10) if self.kind == "int" else float(value)
                except ValueError:
                    raise fail from None
            if self.kind == "int":
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                if not isinstance(value, int):
                    raise fail
            else:
                if not isinstance(value, int | float):
                    raise fail
                value = float(value)
            if self.minimum is not None and value < self.minimum:
                raise fail
            return value
        if self.kind == "str":
            if isinstance(value, str | os.PathLike):
                return str(value)
            raise fail
        if self.kind == "choice":
            if isinstance(value, str | int | float) and not isinstance(value, bool) and value in self.choices:
                return value
            raise fail
        if self.kind == "list":
            if isinstance(value, str | bytes) or not isinstance(value, Sequence):
                raise fail
            if self.item is None:
                return list(value)
            return [self.item.check(f"{key}[{i}]", v) for i, v in enumerate(value)]
        raise fail


def Int(minimum: int | None = None, *, nullable: bool = False) -> Type:  # noqa: N802 (a type constructor)
    """An integer (``"7"`` and ``"007"`` are read as 7)."""
    return Type("int", minimum=minimum, nullable=nullable)


def Float(minimum: float | None = None, *, nullable: bool = False) -> Type:  # noqa: N802
    """A number (an integer is read as a float)."""
    return Type("float", minimum=minimum, nullable=nullable)


def Choice(*choices: Any, nullable: bool = False) -> Type:  # noqa: N802
    """One of ``choices``."""
    return Type("choice", choices=tuple(choices), nullable=nullable)


def ListOf(item: Type | None = None, *, nullable: bool = False) -> Type:  # noqa: N802
    """A list whose items have type ``item``."""
    return Type("list", item=item, nullable=nullable)


BOOL = Type("bool")
TEXT = Type("str")
PATH = Type("str", nullable=True, describe_as="a folder path or null")


def _speaker_id(key: str, value: Any) -> str:
    """One ESD speaker id as 4-digit text (``"0011"``; ``"11"`` is ``"0011"`` too).

    An integer is refused: it may be what a YAML 1.1 parser made of ``0011`` (octal 9; papermill's ``-y`` and
    ``yaml.safe_load`` do that), so that ``0013`` would silently become speaker ``0011``.
    """
    if isinstance(value, str) and value.strip():
        text = value.strip()
        return f"{int(text):04d}" if text.isdigit() else text
    if isinstance(value, int) and not isinstance(value, bool):
        raise ParamError(
            f"param {key!r}: speaker id {value!r} is a number; give ids as text ('0011'): a YAML 1.1 reader turns "
            "0011 into the octal number 9 (sefin's profile files and -p keep 0011 as text)"
        )
    raise ParamError(f"param {key!r}: speaker id {value!r} is not text such as '0011'")


@dataclass(frozen=True)
class SpeakerIds(Type):
    """``english``, ``mandarin``, ``all`` or a list of ESD speaker ids (kept as text: ``[0011, 0012]``)."""

    kind: str = "speakers"
    choices: tuple[Any, ...] = ("english", "mandarin", "all")
    describe_as: str = "english, mandarin, all or a list of speaker ids such as [0011, 0012]"

    def check(self, key: str, value: Any) -> Any:
        if isinstance(value, str) and value in self.choices:
            return value
        if isinstance(value, str) and value.isdigit():  # one id: -p esd_speakers 0011
            return [_speaker_id(key, value)]
        if isinstance(value, Sequence) and not isinstance(value, str | bytes) and len(value):
            return [_speaker_id(f"{key}[{i}]", v) for i, v in enumerate(value)]
        raise ParamError(f"param {key!r}: got {value!r}, expected {self.describe()}")


AUGMENTATIONS: tuple[str, ...] = ("noise", "stretch_pitch")
"""Augmentation kinds (``sefin_utils.augment.AUGMENTATIONS``; a test keeps the two equal)."""
CLIP_AUGMENTATIONS: tuple[str, ...] = ("orig", *AUGMENTATIONS)
SPLITS: tuple[str, ...] = ("train", "val", "test")
HEADS: tuple[str, ...] = ("kaggle", "study")
"""Classifier heads (``sefin_utils.classifiers.HEADS``)."""
E2E_VARIANTS: tuple[str, ...] = ("frozen", "finetuned", "random")
PROTOCOLS: tuple[str, ...] = ("speaker", "study")
"""Split protocols (``sefin_utils.splits.PROTOCOLS``)."""

SCHEMA: dict[str, Type] = {
    "seed": Int(0),
    "data_root": PATH,
    "demo_scale": Float(0.0),
    "run_dir": PATH,
    "report_dir": PATH,
    "protocol": Choice(*PROTOCOLS),
    "calm": Choice("class", "neutral", "drop"),
    "esd_speakers": SpeakerIds(),
    "offset": Float(0.0),
    "duration": Float(0.0),
    "augmentations": ListOf(Choice(*AUGMENTATIONS), nullable=True),
    "augment_splits": ListOf(Choice(*SPLITS), nullable=True),
    "tuning": Type("choice", choices=("per_frame",), alternatives=(Float(),), nullable=True),
    "tail_frames": BOOL,
    "fin_arch": Choice("fast", "study", "learnt"),
    "fin_init": Choice("librosa", "random"),
    "fin_epochs": Int(0),
    "fin_batch_size": Int(1),
    "fin_max_clips": Int(1, nullable=True),
    "fin_lr": Float(0.0),
    "fin_strategy": Choice("default", "mirrored"),
    "fin_patience": Int(0),
    "fins_from": PATH,
    "ser_heads": ListOf(Choice(*HEADS)),
    "ser_head": Choice(*HEADS),
    "ser_variants": ListOf(Choice(*E2E_VARIANTS)),
    "ser_epochs": Int(0),
    "ser_batch_size": Int(1),
    "ser_lr": Float(0.0),
    "ser_patience": Int(0),
    "ser_finetune_epochs": Int(0, nullable=True),
    "ser_finetune_lr": Float(0.0, nullable=True),
    "ser_finetune_batch_size": Int(1, nullable=True),
    "class_weight": Choice("balanced", nullable=True),
    "ser_train_augmentations": ListOf(Choice(*CLIP_AUGMENTATIONS), nullable=True),
    "ser_temporal_train_augmentations": ListOf(Choice(*CLIP_AUGMENTATIONS), nullable=True),
    "ser_select": Choice("val_macro_f1", "val_loss"),
    "ser_weight_decay": Float(0.0),
    "ser_lr_schedule": Choice("plateau", "cosine"),
    "ser_dropout": Float(0.0, nullable=True),
    "ser_pooling": ListOf(Choice("mean", "stats", "temporal")),
    "ser_frame_scale": Choice("db", "linear"),
    "anchors": ListOf(Choice("logreg", "svm_rbf", "mlp")),
    "seeds": ListOf(Int(0)),
    "ablation": BOOL,
    "ablation_epochs": Int(0, nullable=True),
    "ablation_codes": ListOf(Choice(*("-".join(c) for c in itertools.product("FL", repeat=5))), nullable=True),
    "workers": Int(1, nullable=True),
    "predict_examples": Int(0),
    # derived by the loader (may be given too)
    "profile": TEXT,
}
"""The type of every key of ``params/base.yaml`` (a test keeps the two in step) and of the derived ``profile``."""

UNSTAMPED: frozenset[str] = frozenset({"workers", "run_dir", "report_dir", "profile"})
"""Keys that change where or how fast a stage runs, not what it computes: left out of the stage stamps."""


# --------------------------------------------------------------------------------------------------- profiles


def profile_path(profile: str | os.PathLike, *, params_dir: Path | None = None) -> Path:
    """Path of a profile: a name in ``params_dir`` (``demo`` -> ``params/demo.yaml``) or a YAML file path.

    Raises
    ------
    FileNotFoundError
        Naming the missing file and the known profiles.
    """
    params_dir = PARAMS_DIR if params_dir is None else Path(params_dir)
    p = Path(profile)
    if p.suffix in {".yaml", ".yml"}:
        if not p.is_file():
            raise FileNotFoundError(f"profile file {p} does not exist")
        return p
    path = params_dir / f"{profile}.yaml"
    if not path.is_file():
        known = sorted(q.stem for q in params_dir.glob("*.yaml") if q.stem != BASE_PROFILE)
        raise FileNotFoundError(f"no profile {profile!r}: {path} does not exist (profiles: {', '.join(known)})")
    return path


def read_profile_file(path: Path) -> dict[str, Any]:
    """One profile file's own mapping (``extends`` included), read with the leading-zero-keeping loader."""
    loaded = load_yaml(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(loaded, dict):
        raise ParamError(f"{path}: expected a mapping of key: value, got {type(loaded).__name__}")
    return loaded


def profile_chain(profile: str | os.PathLike, *, params_dir: Path | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """The files of a profile from the root (``base.yaml``) to the profile itself, each with its own mapping.

    ``extends`` names a profile in the same folder (or a YAML path relative to the file). A cycle is an error.
    """
    chain: list[tuple[Path, dict[str, Any]]] = []
    path = profile_path(profile, params_dir=params_dir)
    seen: set[Path] = set()
    while True:
        if path.resolve() in seen:
            raise ParamError(f"profile {path} extends itself (cycle: {' -> '.join(str(p) for p, _ in chain)})")
        seen.add(path.resolve())
        data = read_profile_file(path)
        chain.append((path, data))
        parent = data.get(EXTENDS_KEY)
        if parent is None:
            break
        parent_path = Path(str(parent))
        if parent_path.suffix in {".yaml", ".yml"} and not parent_path.is_absolute():
            parent = path.parent / parent_path
        path = profile_path(parent, params_dir=path.parent)
    return chain[::-1]


def _unknown(keys: Sequence[str], known: Sequence[str], where: str) -> UnknownParamError:
    import difflib

    hints = []
    for k in keys:
        close = difflib.get_close_matches(k, list(known), n=1)
        hints.append(f"{k!r}" + (f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""))
    return UnknownParamError(f"unknown param(s) {', '.join(hints)} {where}; known: {', '.join(sorted(known))}")


def schema_for(keys: Sequence[str], defaults: Mapping[str, Any]) -> dict[str, Type]:
    """The types of ``keys``: from :data:`SCHEMA`, else (a key of a profile outside sefin's base, e.g. a test's)
    the type of its default value."""
    out = {}
    for k in keys:
        if k in SCHEMA:
            out[k] = SCHEMA[k]
            continue
        v = defaults.get(k)
        by_value = ((bool, BOOL), (int, Int()), (float, Float()), (str, TEXT), (list, ListOf()))
        out[k] = next((t for cls, t in by_value if isinstance(v, cls)), Type("any"))
    return out


def validate(params: Mapping[str, Any], *, schema: Mapping[str, Type] | None = None, where: str = "") -> dict[str, Any]:
    """Check every key of ``params`` against its type; return the params with canonical types.

    Raises
    ------
    UnknownParamError
        A key the schema does not know (with the close known keys).
    ParamError
        A value of the wrong type, naming the key, the value and what was expected.
    """
    schema = SCHEMA if schema is None else schema
    unknown = [k for k in params if k not in schema]
    if unknown:
        raise _unknown(unknown, list(schema), where or "")
    return {k: schema[k].check(k, v) for k, v in params.items()}


def writable(path: Path) -> bool:
    """True when sefin may write under ``path``: it is writable by this process, not on a read-only file system, not
    under Kaggle's read-only ``/kaggle/input``, and not marked read-only (no write bit at all, as ``chmod a-w`` leaves
    it; honoured even for root, who may otherwise write anywhere)."""
    path = Path(path)
    try:
        if not path.is_dir() or not os.access(path, os.W_OK):
            return False
        if path.resolve().is_relative_to(KAGGLE_INPUT):
            return False
        if path.stat().st_mode & 0o222 == 0:
            return False
        return not os.statvfs(path).f_flag & os.ST_RDONLY
    except OSError:
        return False


def output_base(root: Path) -> tuple[Path, str | None]:
    """The folder relative ``run_dir``/``report_dir`` resolve against, and why, when it is not ``root``.

    ``root`` (the repository) when it is writable; else the current working folder; else ``/kaggle/working``.

    Raises
    ------
    PermissionError
        When none of them is writable (give ``run_dir`` and ``report_dir``).
    """
    if writable(root):
        return Path(root), None
    for place in (Path.cwd(), KAGGLE_WORKING):
        if writable(place):
            return place, f"the repository {root} is read-only: runs and reports go under {place}"
    raise PermissionError(
        f"the repository {root} and the working folder {Path.cwd()} are read-only: give writable "
        "folders with -p run_dir DIR -p report_dir DIR"
    )


def find_kaggle_root(base: Path = KAGGLE_INPUT) -> Path:
    """The data root on Kaggle: ``/kaggle/input`` (every attached dataset lies beneath it)."""
    if not base.is_dir():
        raise FileNotFoundError(
            f"data_root is 'auto' but {base} does not exist: attach the corpora as Kaggle inputs, or set data_root "
            "to a folder holding them (python -m sefin_utils run -p data_root /path/to/corpora)"
        )
    return base


def resolve_data_root(value: Any, *, root: Path | None = None) -> str | None:
    """Resolve the ``data_root`` param: ``None`` (generated corpus), ``auto`` (Kaggle) or a path (relative to root)."""
    if value is None or value == "":
        return None
    if str(value) == "auto":
        return str(find_kaggle_root())
    p = Path(os.path.expanduser(str(value)))
    if not p.is_absolute():
        p = ((REPO_ROOT if root is None else Path(root)) / p).resolve()
    return str(p)


def load_profile(
    profile: str | os.PathLike = DEFAULT_PROFILE,
    *,
    overrides: Mapping[str, Any] | None = None,
    params_dir: Path | None = None,
    root: Path | None = None,
    say: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Resolve a profile into the flat, typed dict every stage reads.

    Parameters
    ----------
    profile : str or path
        Name in ``params_dir`` or a YAML file; its ``extends`` chain is applied from the root (``base.yaml``) up.
    overrides : dict, optional
        Values replacing the profile's (``-p key value``).
    params_dir, root : Path
        Where profiles live; the folder relative paths are resolved against (the repository).
    say : callable, optional
        Where a note goes when the outputs cannot go in the repository (default: printed to stderr).

    Returns
    -------
    dict
        The root profile's keys in its order (seed first) with the overlays and overrides applied and typed, plus
        ``profile``, absolute ``run_dir`` (default ``runs/<profile>``) and ``report_dir`` (``reports/<profile>``),
        both in the repository, or under the working folder when the repository is read-only (a Kaggle input);
        ``data_root`` resolved to an absolute path or None.

    Raises
    ------
    FileNotFoundError
        An unknown profile.
    UnknownParamError, ParamError
        A key that the root profile does not declare, or a value of the wrong type, in a file or an override.
    """
    chain = profile_chain(profile, params_dir=params_dir)
    root_path, root_data = chain[0]
    defaults = {k: v for k, v in root_data.items() if k != EXTENDS_KEY}
    known = [*defaults, *(k for k in DERIVED_KEYS if k not in defaults)]
    schema = schema_for(known, defaults)
    merged: dict[str, Any] = dict(defaults)
    for path, data in chain[1:]:
        layer = {k: v for k, v in data.items() if k != EXTENDS_KEY}
        merged.update(validate(layer, schema=schema, where=f"in {path} (every key is declared in {root_path.name})"))
    overrides = dict(overrides or {})
    merged.update(validate(overrides, schema=schema, where=f"given as overrides of profile {Path(profile).stem!r}"))
    P = validate(merged, schema=schema, where=f"in {root_path}")
    name = str(P.get("profile") or chain[-1][0].stem)
    P["profile"] = name
    root = REPO_ROOT if root is None else Path(root)
    given = [Path(os.path.expanduser(P[k])) for k in ("run_dir", "report_dir") if P.get(k)]
    base, note = (root, None) if len(given) == 2 and all(p.is_absolute() for p in given) else output_base(root)
    if note:
        (say or (lambda line: print(f"sefin: {line}", file=sys.stderr)))(note)
    for key, default in (("run_dir", f"runs/{name}"), ("report_dir", f"reports/{name}")):
        value = Path(os.path.expanduser(str(P.get(key) or default)))
        P[key] = str(value if value.is_absolute() else (base / value).resolve())
    P["data_root"] = resolve_data_root(P.get("data_root"), root=root)
    return P
