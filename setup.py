"""Build of the one compiled module; everything else is declared in pyproject.toml.

`llm_serving.guardrails._fastscore` holds the inner loops of the prompt-injection
scorers. It is optional: without a C compiler the install goes on and the scorers
run their plain-Python versions, which give the same results (more slowly).
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [
            Extension(
                "llm_serving.guardrails._fastscore",
                ["serving/llm_serving/guardrails/_fastscore.pyx"],
                optional=True,
            )
        ],
        language_level=3,
    )
)
