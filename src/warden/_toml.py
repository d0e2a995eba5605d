"""Read one TOML document from a file, as every Warden configuration file is read.

Settings, `warden apply` files and the agent's configuration all come through here, so a
missing file or a syntax error reads the same everywhere: one line naming the file.
"""

from __future__ import annotations

import os
import tomllib
from typing import Any

from warden.errors import ConfigError

__all__ = ["load_toml"]


def load_toml(path: str | os.PathLike[str], what: str) -> dict[str, Any]:
    """Parse the file at `path`; `what` names it in errors ("config file", "agent config", ...).

    Raises ConfigError when the file cannot be read or is not valid TOML.
    """
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {str(path)!r}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {str(path)!r} is not valid TOML: {exc}") from None
