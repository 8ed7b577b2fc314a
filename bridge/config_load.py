"""TOML → typed settings (bridge.config): load_config/parse_config, ${VAR} interpolation, durations,
type checks with key paths; the semantic checks are config_checks.py."""

from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import os
import re
import tomllib
import types
import typing
from typing import Any, Callable, Collection, Mapping

from bridge import config_checks
from bridge.config import (AmiConfig, CallsConfig, Config, DatabaseConfig, HaConfig, LoggingConfig, MetricsConfig,
                           SoapConfig, SubscriberConfig)
from bridge.errors import ConfigError

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
    except (ArgumentError, ValueError):  # e.g. a non-numeric port: config checks name the key
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
    return config_checks.warnings(config, data)


def check_config(config, data: Mapping, problems: list[str]) -> None:
    """Semantic checks after typing (regexes, URLs, addresses, cross references)."""
    config_checks.check(config, data, problems)


# --- the whole file --------------------------------------------------------------------------
# The TOML key of a field is its name, except float-seconds fields, whose TOML key drops the
# `_s` unit suffix and takes a duration ("72h", "10m", "500ms", or a number of seconds):
# `max_age = "72h"` → SubscriberConfig.max_age_s = 259200.0.

_SECTIONS = {  # TOML top-level key → (Config field, dataclass, is an array of tables)
    "database": ("database", DatabaseConfig, False),
    "ami": ("ami", AmiConfig, True),
    "soap": ("soap", SoapConfig, False),
    "subscriber": ("subscribers", SubscriberConfig, True),
    "logging": ("logging", LoggingConfig, False),
    "metrics": ("metrics", MetricsConfig, False),
    "calls": ("calls", CallsConfig, False),
    "ha": ("ha", HaConfig, False),
}


SubscriberCheck = Callable[[SubscriberConfig, str], Any]   # → an object with .errors, .warnings


def load_config(path, env: Mapping[str, str] | None = None, *, only: Collection[str] | None = None,
                omit: Collection[str] = (), check_subscriber: SubscriberCheck | None = None) -> Config:
    """Read, interpolate and validate a TOML file; ConfigError lists every problem at once.

    `only` keeps just those top-level sections (the others, and the checks across sections, are
    skipped), so `db upgrade` needs the database URL's variables and not AMI_SECRET; `omit`
    drops `section.key`s (the WSDL does not depend on `soap.users`). A relative SQLite path is
    taken relative to the file's directory, never to the working directory. `check_subscriber`
    (bridge.calls.reach.analyse, from the CLI) adds its errors and warnings per subscriber.
    """
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    # `from None`: the message already says all the cause would, on a second line.
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}", [f"{path}: {exc}"]) from None
    return parse_config(data, source=str(path), env=env, only=only, omit=omit,
                        base_dir=os.path.dirname(os.path.abspath(path)), check_subscriber=check_subscriber)


def parse_config(data: Mapping, source: str = "<config>", env: Mapping[str, str] | None = None, *,
                 only: Collection[str] | None = None, omit: Collection[str] = (),
                 base_dir: str | None = None, check_subscriber: SubscriberCheck | None = None) -> Config:
    """Build a Config from already-parsed TOML; ConfigError lists every problem by key path.
    A relative SQLite path is resolved against `base_dir` (default: the working directory)."""

    problems: list[str] = []
    if only is not None:
        data = {k: v for k, v in data.items() if k in only}
    for dotted in omit:
        section, _, key = dotted.partition(".")
        if isinstance(data.get(section), Mapping) and key in data[section]:
            data = {**data, section: {k: v for k, v in data[section].items() if k != key}}
    data = interpolate(data, "", os.environ if env is None else env, problems)
    kwargs: dict = {}
    for key, value in data.items():
        if key not in _SECTIONS:
            problems.append(unknown_key("", key, _SECTIONS))
            continue
        field_name, cls, is_array = _SECTIONS[key]
        if is_array:
            kwargs[field_name] = build_array(cls, value, key, problems)
        else:
            built = build(cls, value, key, problems)
            if built is not None:
                kwargs[field_name] = built
    if "database" in kwargs or "database" not in data:
        kwargs["database"] = resolve_sqlite(kwargs.get("database", DatabaseConfig()),
                                            base_dir or os.getcwd(), problems)
    config = Config(**kwargs)
    if only is None:
        check_config(config, data, problems)
        warnings = config_warnings(config, data)
        tables = data.get("subscriber")
        tables = [tables] if isinstance(tables, Mapping) else tables
        # Only when every table built: otherwise the indexes would name the wrong subscriber.
        if check_subscriber is not None and isinstance(tables, list) and len(tables) == len(config.subscribers):
            for i, subscriber in enumerate(config.subscribers):
                found = check_subscriber(subscriber, f"subscriber[{i}]")
                problems.extend(found.errors)
                warnings.extend(found.warnings)
        config = dataclasses.replace(config, warnings=tuple(warnings))
    # A value whose variable is unset was replaced by "": its follow-up complaints are noise.
    unset = {p.split(": ", 1)[0] for p in problems if ": environment variable " in p}
    problems = [p for p in problems
                if ": environment variable " in p or p.split(": ", 1)[0] not in unset]
    if problems:
        raise ConfigError(f"{source}: invalid configuration:\n  " + "\n  ".join(problems), problems)
    return config
