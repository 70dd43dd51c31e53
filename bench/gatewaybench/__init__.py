"""The gateway benchmark's parts (`bench/gateway.py` is its entry point)."""
