"""Planning what a spec needs before anything is scheduled: data tables and pure checks.

The tables are data beside short validating loaders: vLLM's flags (`vllm_flags`, made
from vLLM's own parser), the GPUs (`gpus`), the quantization methods and KV-cache
types (`quantization`) and the architecture of popular model families (`families`).
`engine_args` checks `engine.extraArgs` against vLLM's flags, `compat` checks a
method against a GPU, and `memory` computes the memory plan `llm-operator plan`
prints and the reconciler enforces.
"""
