"""llm-operator: reconciles LLMDeployment resources into vLLM serving on Kubernetes."""

__version__ = "0.1.0"
