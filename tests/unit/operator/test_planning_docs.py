"""The planner's documentation: generated tables in sync, the prose page naming what it should."""

from __future__ import annotations

from llm_operator.planning import reference
from tests.unit.operator import conftest

DOCS = conftest.ROOT / "docs"


def test_committed_planning_tables_match_the_data() -> None:
    page = DOCS / "planning-tables.md"
    assert page.read_text(encoding="utf-8") == reference.markdown(), (
        "docs/planning-tables.md is stale: run `make docs` and commit the result"
    )


def test_quantization_page_links_the_tables_and_readme_links_the_page() -> None:
    text = (DOCS / "quantization.md").read_text(encoding="utf-8")
    assert "(planning-tables.md)" in text
    for topic in ("InsufficientGPUMemory", "make vllm-catalog", "pipelineParallelSize", "plan -f"):
        assert topic in text
    readme = (conftest.ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/quantization.md)" in readme
