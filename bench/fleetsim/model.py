"""One simulated replica: its batch, its service times and its cold start, from the engine model.

A replica is one vLLM engine sized with the engine simulator's own capacity model
(`llm_serving.sim.engine.service_seconds`, the formula the simulator runs): it
serves `max_num_seqs` sequences at once, and a sequence stays in the batch for its
prefill plus one decode interval per further token at the pace of a full batch (a
replica under load runs a full batch, so this is the service time that matters
when the queue is not empty). Prompts are `prompt_tokens` long and the number of
output tokens is uniform in [`min_output_tokens`, `max_output_tokens`]. A new
replica becomes Ready after a cold start drawn uniformly from `cold_start`
(scheduling, image pull, weight loading, CUDA graph capture).
"""

from __future__ import annotations

import dataclasses
import functools

from llm_serving.sim import engine


@dataclasses.dataclass(frozen=True)
class ReplicaModel:
    """The capacity and start-up of one replica."""

    sim: engine.SimConfig = dataclasses.field(
        default_factory=lambda: engine.SimConfig(
            max_num_seqs=16, decode_tokens_per_s=40.0, decode_slowdown=0.05
        )
    )
    prompt_tokens: int = 512
    min_output_tokens: int = 32
    max_output_tokens: int = 480
    cold_start: tuple[float, float] = (60.0, 300.0)
    gpus: int = 1

    @property
    def slots(self) -> int:
        """Sequences one replica runs at once."""
        return self.sim.max_num_seqs

    @functools.cached_property
    def service_table(self) -> tuple[float, ...]:
        """Service time in seconds for each output length from min to max, at a full batch."""
        return tuple(
            engine.service_seconds(self.sim, self.prompt_tokens, tokens, self.slots)
            for tokens in range(self.min_output_tokens, self.max_output_tokens + 1)
        )

    @property
    def mean_service(self) -> float:
        """Mean service time (output lengths are uniform, so this is the table's mean)."""
        table = self.service_table
        return sum(table) / len(table)

    @property
    def capacity(self) -> float:
        """Requests per second one replica completes at a full batch."""
        return self.slots / self.mean_service
