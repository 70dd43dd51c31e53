"""Golden files: what `render` prints for every example, pinned. `make golden` rewrites them."""

from __future__ import annotations

import io
import os
import pathlib

from llm_operator import render
from llm_operator.builders import common
from tests.unit.operator import conftest

GOLDEN = conftest.ROOT / "tests" / "golden"


def _render(path: pathlib.Path) -> str:
    documents = render.load_documents(path.read_text(encoding="utf-8"), str(path))
    objects = render.render_objects(
        documents,
        path.name,
        common.Options(),
        namespace="default",
        owner_uid="11111111-2222-3333-4444-555555555555",
    )
    out = io.StringIO()
    render.dump(objects, out)
    return out.getvalue()


def test_render_matches_golden(example: pathlib.Path) -> None:
    golden = GOLDEN / example.name
    text = _render(example)
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert golden.exists(), f"missing {golden}: run `make golden`"
    assert text == golden.read_text(encoding="utf-8"), (
        f"{example.name} renders differently from {golden}; if intended, run `make golden`"
    )


def test_every_golden_has_an_example() -> None:
    examples = {p.name for p in conftest.EXAMPLES}
    assert {p.name for p in GOLDEN.glob("*.yaml")} <= examples
