"""The chart's values: every key documented in values.yaml and described in the schema.

values.yaml is the reference of the chart's settings: each key the schema knows has a
`# --` comment right above it, and each key of values.yaml is in the schema (whose
objects refuse unknown keys), so neither can drift from the other.
"""

from __future__ import annotations

import importlib.util
import json
from typing import Any

import yaml

from tests.unit.operator import conftest

CHART = conftest.ROOT / "charts" / "llm-operator"
SCHEMA = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
VALUES_TEXT = (CHART / "values.yaml").read_text(encoding="utf-8")


def schema_paths(node: dict[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    found = {}
    for key, sub in (node.get("properties") or {}).items():
        path = f"{prefix}{key}"
        found[path] = sub
        found.update(schema_paths(sub, path + "."))
    return found


def documented_paths() -> dict[str, bool]:
    """Each key path of values.yaml -> whether a `# --` comment block sits right above it."""
    found: dict[str, bool] = {}
    stack: list[tuple[int, str]] = []
    previous = ""
    in_comment_block = False
    for line in VALUES_TEXT.splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            in_comment_block = True
        elif stripped.startswith("#"):
            pass  # a continuation of the block above
        elif stripped and not stripped.startswith("-") and ":" in stripped:
            indent = len(line) - len(line.lstrip())
            key = stripped.split(":", 1)[0].strip()
            while stack and stack[-1][0] >= indent:
                stack.pop()
            path = ".".join([k for _, k in stack] + [key])
            found[path] = in_comment_block and previous.startswith("#")
            stack.append((indent, key))
            in_comment_block = False
        else:
            in_comment_block = False
        previous = stripped
    return found


def test_every_schema_property_has_a_description() -> None:
    missing = [path for path, sub in schema_paths(SCHEMA).items() if not sub.get("description")]
    assert missing == []


def test_every_value_is_documented_and_known_to_the_schema() -> None:
    schema = schema_paths(SCHEMA)
    documented = documented_paths()
    free_form = [p for p, sub in schema.items() if "properties" not in sub]
    unknown = [
        p
        for p in documented
        if p not in schema and not any(p.startswith(f + ".") for f in free_form)
    ]
    assert unknown == []
    # A key is documented by its own comment; a section (a key with keys of the schema
    # below it) by the comments of its keys.
    sections = {p.rpartition(".")[0] for p in documented if p in schema and "." in p}
    undocumented = [
        p for p in schema if p in documented and not documented[p] and p not in sections
    ]
    assert undocumented == []
    # Every top-level value of the schema is in values.yaml (the defaults are explicit).
    values = yaml.safe_load(VALUES_TEXT)
    assert sorted(set(SCHEMA["properties"]) - {"global"}) == sorted(values)


def test_generated_files_are_current() -> None:
    spec = importlib.util.spec_from_file_location(
        "chart_files", conftest.ROOT / "hack" / "chart_files.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.render() == (CHART / "values.schema.json").read_text(encoding="utf-8"), (
        "values.schema.json is stale: run `make crds` and commit the result"
    )
    adapter = (CHART / "files" / "prometheus-adapter-rules.yaml").read_text(encoding="utf-8")
    assert module.adapter_rules() == adapter, (
        "files/prometheus-adapter-rules.yaml is stale: run `make crds` and commit the result"
    )
