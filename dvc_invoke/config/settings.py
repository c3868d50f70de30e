"""The ``dvc_invoke`` config key: defaults, merged with what the project sets.

Projects set values through invoke's config hierarchy: ``ns.configure(
{"dvc_invoke": {...}})`` in their ``tasks.py``, an ``invoke.yaml``, the
runtime config file, or the environment (``INVOKE_DVC_INVOKE_RETRIES=3``).
Defaults live here rather than only in the collections' ``ns.configure``,
because invoke hands a task only the configuration of the collections on
its own path: a pipeline task at the root of a project's namespace never
sees what ``dvc_invoke.repro`` configured.

For the same reason invoke's own environment loading never sees these keys
(it maps ``INVOKE_*`` variables onto keys its config already has): the
variables are read here, named as invoke names them (invoke's
`~invoke.env.Environment`, over the defaults merged with the project's
config), and each value is read as its setting's type and validated like
one from ``invoke.yaml``; a bad one is a line naming the variable.
"""

from __future__ import annotations

import contextvars
import copy
import difflib
import math
import os
import re
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from dvc_invoke.errors import DvcInvokeError

DEFAULTS: dict[str, Any] = {
    # Named pipelines: {"NAME": {"dvcfile": ..., "force": ..., "pull": [...], ...}}
    "pipelines": {},
    # The dvc executable, run as a process; empty: `dvc` on PATH, else the one
    # installed beside this Python (a virtualenv that is not activated), its
    # commands run in dvc-invoke's own process when that is the DVC it imports.
    "dvc": "",
    # Echo each git/dvc command that does work (probes are never echoed).
    "echo": True,
    # git and dvc commands that reach a remote: retries of a transient failure
    # (a reset connection, a timeout, a 5xx), the first delay in seconds, doubled.
    "retries": 2,
    "retry_delay": 2.0,
    # When teammates' commits make a run's lock file stale, also push the
    # branch that keeps the run's commit (dvc-invoke/<pipeline>/<time>).
    "push_side_branch": False,
    # After a run that succeeded, compare its plots with the run's first commit
    # (`dvc plots diff`): those that changed go to Slack as PNGs (the `plots`
    # extra draws them) and DVC's HTML report of them is written beside the log.
    "plots": True,
    # Slack clients: seconds per request, retries per message (one budget for
    # connection errors, 5xx and 429), the longest Retry-After worth waiting.
    "slack": {"timeout": 5, "retries": 2, "max_retry_after": 5},
    # Time limits, in seconds, of the steps that run someone else's program and
    # can hang: `git commit` (its hooks), `git push` (a pre-push hook, the remote;
    # its dry run at the start too), `dvc push` (a remote that stalls; DVC's own
    # network timeouts apply meanwhile). 0 or null: no limit.
    "timeouts": {"commit": 600, "git_push": 600, "dvc_push": 0},
    # GPU hosts reached over SSH: {"NAME": {"ssh": "alias or user@host:port",
    # "path": "/srv/ml/project", "python": "python3"}}, and groups of them.
    "hosts": {},
    "host_groups": {},
    # The SSH client, as a command line (options such as -F CONFIG go here).
    "ssh": "ssh",
    # Run records, logs and plot folders under .dvc/tmp/dvc-invoke/ kept: the
    # newest `runs`, and none older than `days`, pruned at the end of each run
    # (`inv repro.prune` by hand); a run still running is never pruned. 0 or
    # null: no limit.
    "keep": {"runs": 200, "days": 30},
}

# invoke's prefix of the variables its config reads (`Config.env_prefix`, uppercased).
ENV_PREFIX = "INVOKE_"

HOST_OPTIONS = ("ssh", "path", "python")
# A host's or group's name; an ssh target (an ~/.ssh/config alias, or
# user@host, with :port); a checkout path (absolute, or under ~/).
_WORD = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
_NAME = re.compile(_WORD)
_TARGET = re.compile(rf"(?:{_WORD}@)?{_WORD}(?::[0-9]{{1,5}})?")
_PATH = re.compile(r"(?:/|~/)[^\x00-\x1f]*")


@dataclass(frozen=True)
class Host:
    """A GPU host: how ssh reaches it, where the project's checkout is, its Python."""

    name: str
    ssh: str
    path: str
    python: str = "python3"

    @property
    def target(self) -> str:
        """The ssh destination, without the port."""
        return self.ssh.rsplit(":", 1)[0] if ":" in self.ssh else self.ssh

    @property
    def port(self) -> str | None:
        return self.ssh.rsplit(":", 1)[1] if ":" in self.ssh else None


@dataclass(frozen=True)
class SlackOptions:
    timeout: float = 5.0
    retries: int = 2
    max_retry_after: float = 5.0


@dataclass(frozen=True)
class Timeouts:
    """Seconds each step may take before it is stopped; None: no limit."""

    commit: float | None = 600.0
    git_push: float | None = 600.0
    dvc_push: float | None = None


@dataclass(frozen=True)
class Keep:
    """Which ended runs' records, logs and plots are kept; None: no limit."""

    runs: int | None = 200
    days: float | None = 30.0


@dataclass(frozen=True)
class Settings:
    """The ``dvc_invoke`` config, validated: one typed value per key."""

    pipelines: dict[str, Any] = field(default_factory=dict)
    dvc: str = ""
    echo: bool = True
    retries: int = 2
    retry_delay: float = 2.0
    push_side_branch: bool = False
    plots: bool = True
    slack: SlackOptions = field(default_factory=SlackOptions)
    timeouts: Timeouts = field(default_factory=Timeouts)
    hosts: dict[str, Host] = field(default_factory=dict)
    host_groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    ssh: tuple[str, ...] = ("ssh",)
    keep: Keep = field(default_factory=Keep)

    @classmethod
    def from_mapping(
        cls,
        given: Mapping[str, Any],
        environ: Mapping[str, str] | None = None,
        prefix: str = ENV_PREFIX,
    ) -> Settings:
        """Defaults merged with ``given`` (invoke's ``merge_dicts``), then with the
        ``prefix`` variables of ``environ`` (`from_environment`); a bad value is one line."""
        if not environ:
            return cls._validated(given)
        # NOTE: where a variable set the value, its errors name the variable.
        found, sources = from_environment(given, environ, prefix)
        token = _SOURCES.set(sources)
        try:
            return cls._validated(found)
        finally:
            _SOURCES.reset(token)

    @classmethod
    def _validated(cls, given: Mapping[str, Any]) -> Settings:
        from invoke.config import merge_dicts

        given = _plain(given, "dvc_invoke")
        for key, default in DEFAULTS.items():
            if isinstance(default, dict) and key in given and given[key] is not None:
                _plain(given[key], f"dvc_invoke.{key}")
                if key in ("pipelines", "hosts", "host_groups"):
                    continue  # each entry is checked on its own
                for inner, value in dict(given[key]).items():
                    if isinstance(value, Mapping) and not isinstance(default.get(inner), dict):
                        raise _bad(f"dvc_invoke.{key}.{inner}", value, "a single value")
            elif key in given and isinstance(given[key], Mapping):
                raise _bad(f"dvc_invoke.{key}", given[key], "a single value")
        given = {k: v for k, v in given.items() if v is not None or k not in DEFAULTS}
        merged = merge_dicts(copy.deepcopy(DEFAULTS), given)
        _unknown(merged, DEFAULTS, "dvc_invoke")
        slack = _plain(merged["slack"], "dvc_invoke.slack")
        _unknown(slack, DEFAULTS["slack"], "dvc_invoke.slack")
        limits = _plain(merged["timeouts"], "dvc_invoke.timeouts")
        _unknown(limits, DEFAULTS["timeouts"], "dvc_invoke.timeouts")
        keep = _plain(merged["keep"], "dvc_invoke.keep")
        _unknown(keep, DEFAULTS["keep"], "dvc_invoke.keep")
        return cls(
            pipelines=_plain(merged["pipelines"], "dvc_invoke.pipelines"),
            dvc=_text(merged["dvc"], "dvc_invoke.dvc"),
            echo=_flag(merged["echo"], "dvc_invoke.echo"),
            retries=_count(merged["retries"], "dvc_invoke.retries"),
            retry_delay=_seconds(merged["retry_delay"], "dvc_invoke.retry_delay"),
            push_side_branch=_flag(merged["push_side_branch"], "dvc_invoke.push_side_branch"),
            plots=_flag(merged["plots"], "dvc_invoke.plots"),
            slack=SlackOptions(
                timeout=_seconds(slack["timeout"], "dvc_invoke.slack.timeout", positive=True),
                retries=_count(slack["retries"], "dvc_invoke.slack.retries"),
                max_retry_after=_seconds(
                    slack["max_retry_after"], "dvc_invoke.slack.max_retry_after"
                ),
            ),
            timeouts=Timeouts(
                **{k: _limit(limits[k], f"dvc_invoke.timeouts.{k}") for k in DEFAULTS["timeouts"]}
            ),
            keep=Keep(
                runs=_how_many(keep["runs"], "dvc_invoke.keep.runs"),
                days=_limit(keep["days"], "dvc_invoke.keep.days", "a number of days"),
            ),
            **_hosts(merged),
        )


def _hosts(merged: Mapping[str, Any]) -> dict[str, Any]:
    """The hosts, their groups and the ssh command line, validated."""
    import shlex

    hosts = {}
    for name, options in _plain(merged["hosts"], "dvc_invoke.hosts").items():
        key = f"dvc_invoke.hosts.{name}"
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise _bad(key, name, "named with letters, digits, '_', '.' and '-'")
        options = _plain(options, key)
        _unknown(options, dict.fromkeys(HOST_OPTIONS), key)
        for needed in ("ssh", "path"):
            if not options.get(needed):
                raise DvcInvokeError(f"config {key}.{needed} is missing: fix it in invoke.yaml")
        target = _text(options["ssh"], f"{key}.ssh")
        if not _TARGET.fullmatch(target):
            raise _bad(f"{key}.ssh", target, "an ssh alias or user@host:port")
        path = _text(options["path"], f"{key}.path").rstrip("/") or "/"
        if not _PATH.fullmatch(path):
            raise _bad(f"{key}.path", path, "an absolute path, or one under ~/")
        python = _text(options.get("python") or "python3", f"{key}.python")
        if not _PATH.fullmatch(python) and not _NAME.fullmatch(python):
            raise _bad(f"{key}.python", python, "a command name or a path")
        hosts[name] = Host(name, target, path, python)
    groups = {}
    for name, members in _plain(merged["host_groups"], "dvc_invoke.host_groups").items():
        key = f"dvc_invoke.host_groups.{name}"
        if not isinstance(name, str) or not _NAME.fullmatch(name) or name in hosts:
            raise _bad(key, name, "a name of letters, digits, '_', '.', '-' that no host has")
        if not isinstance(members, (list, tuple)) or not members:
            raise _bad(key, members, "a list of host names")
        for member in members:
            if member not in hosts:
                raise DvcInvokeError(
                    f"config {key} names {member!r}, which is not a host under dvc_invoke.hosts"
                    f" (hosts: {', '.join(hosts) or 'none'})"
                )
        groups[name] = tuple(members)
    ssh = _text(merged["ssh"], "dvc_invoke.ssh")
    try:
        # Each word is quoted on its way to the shell: `~` is expanded here.
        words = tuple(os.path.expanduser(word) for word in shlex.split(ssh))
    except ValueError:
        words = ()
    if not words:
        raise _bad("dvc_invoke.ssh", ssh, "an ssh command line, such as 'ssh -F ~/.ssh/work'")
    return {"hosts": hosts, "host_groups": groups, "ssh": words}


def settings(c: Any) -> Settings:
    """The validated ``dvc_invoke`` settings of context ``c``: its config, then the
    environment's ``INVOKE_DVC_INVOKE_*`` variables (the prefix ``c``'s config uses)."""
    prefix = getattr(c.config, "_env_prefix", None) or ENV_PREFIX
    return Settings.from_mapping(c.config.get("dvc_invoke") or {}, os.environ, prefix)


# What the environment set, while it is validated: a key -> (variable, its value).
_SOURCES: contextvars.ContextVar[Mapping[str, tuple[str, str]]] = contextvars.ContextVar(
    "_SOURCES", default=MappingProxyType({})
)

# How a variable says true or false: invoke's "0" and "" for false, and the words
# YAML and most tools take. Anything else is refused, as a quoted "no" is in invoke.yaml.
_TRUE = ("1", "true", "yes", "on", "y")
_FALSE = ("", "0", "false", "no", "off", "n")


def from_environment(
    given: Mapping[str, Any], environ: Mapping[str, str], prefix: str = ENV_PREFIX
) -> tuple[dict[str, Any], dict[str, tuple[str, str]]]:
    """``given`` with the values the ``prefix`` variables of ``environ`` set over it,
    and which key each variable set: ``{"dvc_invoke.retries": ("INVOKE_DVC_INVOKE_RETRIES",
    "3")}``.

    A variable is named as invoke names one (`invoke.env.Environment`): the
    key's path upper-cased and joined by ``_``, after the prefix; it sets a key
    the defaults or ``given`` have (a configured pipeline's or host's too). Its
    text is read as the key's value is: a number, true or false (``1``/``0``,
    ``true``/``false``, ``yes``/``no``), a list as words split by commas or
    spaces, text as it is."""
    from invoke.config import merge_dicts
    from invoke.env import Environment

    if not any(name.startswith(prefix + "DVC_INVOKE_") for name in environ):
        return dict(given), {}
    known = merge_dicts(copy.deepcopy(DEFAULTS), copy.deepcopy(dict(given)))
    # NOTE: invoke's own names for the keys (`Environment.load` reads os.environ
    # itself and casts as invoke does, which a bad number turns into a traceback).
    loader = Environment(config={"dvc_invoke": known}, prefix=prefix)  # type: ignore[arg-type]
    names: dict[str, list[str]] = loader._crawl(key_path=[], env_vars={})
    found = [
        (path, environ[prefix + name]) for name, path in names.items() if prefix + name in environ
    ]
    merged = copy.deepcopy(dict(given))
    sources = {}
    for path, raw in found:
        key = ".".join(path)
        variable = prefix + "_".join(path).upper()
        sources[key] = (variable, raw)
        old: Any = known
        for part in path[1:]:
            old = old[part]
        where = merged
        for part in path[1:-1]:
            inner = where.get(part)
            where[part] = dict(inner) if isinstance(inner, Mapping) else {}
            where = where[part]
        value = where[path[-1]] = _read(old, raw)
        if isinstance(old, bool) and not isinstance(value, bool):
            # Said here for every flag: a pipeline's or host's is checked elsewhere.
            raise DvcInvokeError(
                f"{variable}={raw} sets {key}, which must be true or false"
                " (1 or 0, true or false, yes or no): fix or unset the variable"
            )
    return merged, sources


def _read(old: Any, raw: str) -> Any:
    """A variable's text as a value of the type of ``old``, the key's value now;
    text that is none (``many`` for a number) is left as it is, for the
    setting's own check to refuse."""
    if isinstance(old, bool):
        word = raw.strip().lower()
        return True if word in _TRUE else False if word in _FALSE else raw
    if isinstance(old, (list, tuple)):
        return [word for word in re.split(r"[,\s]+", raw) if word]
    if old is None or isinstance(old, (int, float)):
        text = raw.strip()
        if old is None and text.lower() in ("", "null", "none"):
            return None
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                continue
        return raw
    return raw


def _bad(key: str, value: Any, expected: str) -> DvcInvokeError:
    source = _SOURCES.get().get(key)
    if source is not None:
        variable, raw = source
        return DvcInvokeError(
            f"{variable}={raw} sets {key}, which must be {expected}: fix or unset the variable"
        )
    return DvcInvokeError(
        f"config {key} must be {expected}, not {value!r}: fix it in invoke.yaml or tasks.py"
    )


def _plain(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _bad(key, value, "a mapping")
    return dict(value)


def _unknown(given: Mapping[str, Any], known: Mapping[str, Any], key: str) -> None:
    for name in given:
        if name not in known:
            close = difflib.get_close_matches(str(name), list(known), n=1)
            hint = f" (did you mean {key}.{close[0]}?)" if close else ""
            raise DvcInvokeError(
                f"config {key}.{name} is not a setting{hint}; known: {', '.join(known)}"
            )


def _text(value: Any, key: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _bad(key, value, "a string")
    return value


def _flag(value: Any, key: str) -> bool:
    # NOTE: a quoted "no" is a non-empty string, true to Python: only real booleans.
    if not isinstance(value, bool):
        raise _bad(key, value, "true or false")
    return value


def _count(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise _bad(key, value, "a whole number from 0 to 100")
    return value


def _seconds(
    value: Any, key: str, *, positive: bool = False, unit: str = "a number of seconds"
) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise _bad(key, value, unit + (" above 0" if positive else ""))
    return float(value)


def _limit(value: Any, key: str, unit: str = "a number of seconds") -> float | None:
    """A limit: a number (seconds, days), or no limit (0 or null)."""
    if value is None:
        return None
    return _seconds(value, key, unit=unit) or None


def _how_many(value: Any, key: str) -> int | None:
    """A count of things kept: a whole number, or no limit (0 or null)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _bad(key, value, "a whole number (0 or null: no limit)")
    return value or None


def dvc_command(c: Any) -> str:
    """How to call dvc, as a shell word."""
    import shlex

    configured = settings(c).dvc
    if configured:
        return shlex.quote(str(configured))
    if shutil.which("dvc"):
        return "dvc"
    beside = os.path.join(os.path.dirname(sys.executable), "dvc")
    if os.access(beside, os.X_OK):
        return shlex.quote(beside)
    return "dvc"


def is_dry(c: Any) -> bool:
    return bool(c.config.run.dry)
