"""YAML output shared by `render` and `crds`: block style, multi-line strings as literals."""

from __future__ import annotations

from typing import Any

import yaml


class Dumper(yaml.SafeDumper):
    """Safe dumper that writes strings with newlines as `|` blocks."""


def _str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


Dumper.add_representer(str, _str_representer)


def dumps(objects: list[dict[str, Any]]) -> str:
    """Multi-document YAML."""
    text: str = yaml.dump_all(objects, Dumper=Dumper, sort_keys=False, width=100)
    return text
