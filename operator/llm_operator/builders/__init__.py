"""Pure builders: an LLMDeployment spec in, the desired child objects out."""
