"""Build of the compiled twins of the guardrail checks; everything else is in pyproject.toml.

Each check that has inner loops worth compiling has a Cython module beside its Python
module (`injection/_normalization.pyx` beside `normalization.py`, `_pii.pyx` beside
`pii.py`, ...), sharing the word tables of `_tables.pxd`. They are optional: without a
C compiler the install goes on and the checks run their plain-Python versions, which
give the same results (more slowly: the gateway benchmark's added latency at p50 about
doubles, which misses its goal of 1 ms).
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

_MODULES = (
    "llm_serving.guardrails._tables",
    "llm_serving.guardrails._pii",
    "llm_serving.guardrails._toxicity",
    "llm_serving.guardrails.injection._normalization",
    "llm_serving.guardrails.injection._detector",
    "llm_serving.guardrails.injection._similarity",
    "llm_serving.guardrails.injection._learned",
)

setup(
    ext_modules=cythonize(
        [
            Extension(name, ["serving/" + name.replace(".", "/") + ".pyx"], optional=True)
            for name in _MODULES
        ],
        language_level=3,
        include_path=["serving"],
    )
)
