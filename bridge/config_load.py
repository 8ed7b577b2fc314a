"""TOML values → typed settings fields: ${VAR} interpolation, durations, type checks, key paths."""

from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import os
import re
import types
import typing
from typing import Any, Mapping

_BAD = object()  # conversion failed; the problem is already recorded

# `${VAR}` reads the environment, `${VAR:-default}` falls back, `$${` is a literal `${`.
_ENV_RE = re.compile(r"\$(\$)?\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_DURATION_PART_RE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)\s*", re.IGNORECASE)
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# First components that make `sqlite:///var/lib/…` look meant as absolute (FHS top-level dirs).
_ROOT_DIRS = {"var", "opt", "srv", "home", "tmp", "etc", "usr", "data", "mnt", "run", "root"}
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def interpolate(value: Any, path: str, env: Mapping[str, str], problems: list[str]) -> Any:
    """Replace ${VAR} in every string; a missing variable is a problem naming the key and the
    variable (never the values of other variables, which may be secrets)."""
    if isinstance(value, str):
        def replace(match: re.Match) -> str:
            escaped, name, default = match.groups()
            if escaped:
                return match.group(0)[1:]
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.append(f"{path}: environment variable {name} is not set")
            return ""
        return _ENV_RE.sub(replace, value)
    if isinstance(value, Mapping):
        return {k: interpolate(v, join(path, k), env, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, f"{path}[{i}]", env, problems) for i, v in enumerate(value)]
    return value


def parse_duration(value: Any) -> float:
    """"72h", "1h30m", "10m", "500ms", "2.5s", or a plain number of seconds → float seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError('expected a duration such as "72h", "10m", "500ms" or seconds')
    text = value.strip()
    try:
        return parse_duration(float(text))
    except ValueError:
        pass
    pos, total = 0, 0.0
    while pos < len(text):
        match = _DURATION_PART_RE.match(text, pos)
        if not match:
            raise ValueError(f'"{value}" is not a duration (use e.g. "72h", "10m", "500ms")')
        total += float(match.group(1)) * _UNIT_S[match.group(2).lower()]
        pos = match.end()
    return total


def toml_key(field: dataclasses.Field) -> str:
    """Float-seconds fields drop their `_s` suffix in TOML: max_age_s ↔ max_age."""
    return field.name[:-2] if field.name.endswith("_s") else field.name


def unknown_key(path: str, key: str, known) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{join(path, key)}: unknown key{hint}"


def build(cls, table: Any, path: str, problems: list[str]):
    """One TOML table → one settings dataclass; None when a required key is missing."""
    if not isinstance(table, Mapping):
        problems.append(f"{path}: expected a table ([{path}])")
        return None
    fields = {toml_key(f): f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        field = fields.get(key)
        if field is None:
            problems.append(unknown_key(path, key, fields))
            continue
        converted = convert(hints[field.name], value, join(path, key), problems)
        if converted is not _BAD:
            kwargs[field.name] = converted
    complete = True
    for key, field in fields.items():
        required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        if required and key not in table:
            problems.append(f"{join(path, key)}: required key is missing")
            complete = False
        elif required and field.name not in kwargs:
            complete = False
    if not complete:
        return None
    from bridge import config_checks

    item = cls(**kwargs)
    config_checks.check_item(item, path, problems)
    return item


def build_array(cls, value: Any, path: str, problems: list[str]) -> tuple:
    if isinstance(value, Mapping):
        value = [value]  # `[ami]` written for a single server instead of `[[ami]]`
    if not isinstance(value, list):
        problems.append(f"{path}: expected an array of tables ([[{path}]])")
        return ()
    built = (build(cls, item, f"{path}[{i}]", problems) for i, item in enumerate(value))
    return tuple(b for b in built if b is not None)


def convert(hint: Any, value: Any, path: str, problems: list[str]) -> Any:
    """Check and coerce one value to its field type; env-var strings coerce to int/bool/float."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return convert(inner[0], value, path, problems)
    if dataclasses.is_dataclass(hint):
        built = build(hint, value, path, problems)
        return _BAD if built is None else built
    if origin is tuple:
        return _convert_list(value, path, problems)
    if origin in (collections.abc.Mapping, dict):
        return _convert_map(value, path, problems)
    try:
        return _SCALARS[hint](value)
    except (ValueError, TypeError) as exc:
        problems.append(f"{path}: {exc}")
        return _BAD


def _to_str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def _to_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    raise TypeError("expected an integer")


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise TypeError("expected true or false")


_SCALARS = {str: _to_str, int: _to_int, bool: _to_bool, float: parse_duration}


def _convert_list(value: Any, path: str, problems: list[str]) -> Any:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(f"{path}: expected a list of strings")
        return _BAD
    return tuple(value)


def _convert_map(value: Any, path: str, problems: list[str]) -> Any:
    if not isinstance(value, Mapping):
        problems.append(f"{path}: expected a table of strings")
        return _BAD
    bad = [k for k, v in value.items() if not isinstance(v, str)]
    for key in bad:
        problems.append(f"{join(path, key)}: expected a string")
    return _BAD if bad else dict(value)


def resolve_sqlite(database, base_dir: str, problems: list[str]):
    """`sqlite:///outbox.db` (three slashes: a relative path) → the absolute path under
    `base_dir`, so the outbox never depends on the directory a command was started from.
    A relative path starting like an absolute one (`sqlite:///var/lib/…`: a slash forgotten) is
    refused. In-memory and `file:` URI databases are left alone; an unparsable URL too."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(database.url)
    except ArgumentError:
        return database
    path = url.database or ""
    if (url.get_backend_name() != "sqlite" or not path or path == ":memory:"
            or path.startswith("file:") or os.path.isabs(path)):
        return database
    absolute = url.set(database=os.path.normpath(os.path.join(base_dir, path)))
    first = path.replace("\\", "/").split("/", 1)[0]
    if "/" in path and first in _ROOT_DIRS:
        problems.append(f"database.url: sqlite:///{path} is a path relative to {base_dir} (three "
                        f"slashes), i.e. {absolute.database}; for /{path} write "
                        f"sqlite:////{path} (four slashes)")
    return dataclasses.replace(database, url=absolute.render_as_string(hide_password=False))


def config_warnings(config, data: Mapping) -> list[str]:
    from bridge import config_checks

    return config_checks.warnings(config, data)


def check_config(config, data: Mapping, problems: list[str]) -> None:
    """Semantic checks after typing (regexes, URLs, addresses, cross references)."""
    from bridge import config_checks

    config_checks.check(config, data, problems)
