"""YAML files a person edits (the policy, the channels' settings) read into strict pydantic models:
one loader, one way to say what is wrong (a UserError of one line naming the file, or a line per
key and problem)."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from relance.core.errors import UserError


class Strict(BaseModel):
    """A model of a hand-written file: unknown keys are errors (a typo is not silently ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


M = TypeVar("M", bound=BaseModel)


def error_lines(err: ValidationError) -> list[str]:
    """One line per problem: the key's path as written (stages[2].channels[0]) and the message."""
    lines = []
    for e in err.errors():
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"]).lstrip(".")
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"{loc}: {msg}" if loc else msg)
    return lines


def load_yaml_model(
    path: Path,
    model: type[M],
    *,
    name: str,
    missing: str,
    verb: str = "is",
    keys_hint: str = "",
    empty_ok: bool = False,
    error: type[UserError] = UserError,
) -> M:
    """Read `path` (YAML, a mapping) into `model`. Messages: f"{missing} {path} does not exist",
    f"{name} {path} {verb} not readable YAML: …", f"{name} {path} must be a mapping of keys{keys_hint}",
    f"{name} {path} {verb} not valid:" and a line per problem. An empty file is {} when empty_ok."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{missing} {path} {'does' if verb == 'is' else 'do'} not exist") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise error(f"{name} {path} {verb} not readable YAML: {e}") from None
    if data is None and empty_ok:
        data = {}
    if not isinstance(data, dict):
        raise error(f"{name} {path} must be a mapping of keys{keys_hint}")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise error(f"{name} {path} {verb} not valid:\n  " + "\n  ".join(error_lines(e))) from None
