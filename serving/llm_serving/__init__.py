"""llm-serving: the guardrail gateway sidecar and the vLLM-compatible engine simulator."""

__version__ = "0.1.0"
