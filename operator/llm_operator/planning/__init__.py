"""Planning what a spec needs before anything is scheduled: data tables and pure checks.

The tables are data files in `data/` (read by `load_data`) beside short validating
loaders: vLLM's flags (`vllm_flags`, made from vLLM's own parser), the GPUs (`gpus`),
the quantization methods, KV-cache types and dtypes (`quantization`, which also holds
the compatibility check) and the architecture of popular model families (`families`).
`engine_args` checks `engine.extraArgs` against vLLM's flags, `memory` computes the
memory plan the reconciler enforces, `report` prints it for `llm-operator plan`, and
`reference` renders the tables for the docs.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import yaml

DATA_DIR = pathlib.Path(__file__).with_name("data")


def load_data(name: str) -> Any:
    """A data file of `data/`, parsed as JSON or YAML by its extension (validated by the caller)."""
    text = (DATA_DIR / name).read_text(encoding="utf-8")
    return json.loads(text) if name.endswith(".json") else yaml.safe_load(text)
