"""The config file `kiwiwhale login` writes: `$XDG_CONFIG_HOME/kiwiwhale/config.json` (`~/.config/kiwiwhale/`),
readable by its owner only. `KIWIWHALE_BASE_URL` and `KIWIWHALE_API_KEY` override it."""

from __future__ import annotations

import json
import os
from pathlib import Path


def config_path() -> Path:
    root = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(root) / "kiwiwhale" / "config.json"


def config_load() -> dict[str, str]:
    try:
        data = json.loads(config_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {name: value for name, value in data.items() if isinstance(value, str)} if isinstance(data, dict) else {}


def config_save(*, base_url: str, api_key: str) -> Path:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Created 0600 before the key is written: the key is a bearer secret.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump({"base_url": base_url, "api_key": api_key}, handle, indent=2)
    os.chmod(path, 0o600)
    return path
