"""A training step on a synthetic batch, timed: what ``mucon demo`` plans its minutes from and what
``benchmarks/bench_train.py`` measures, so that the plan and the benchmark time the same step."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import torch

from mucon.config import RunConfig
from mucon.methods import Method, method_class
from mucon.precision import resolve_precision


@dataclasses.dataclass(frozen=True)
class StepTiming:
    precision: str
    compiled: bool
    first_step_seconds: float  # holds the compile of a compiled network
    seconds_per_step: float

    def minutes(self, steps: int) -> float:
        """The minutes of ``steps`` steps, the first one's compile included."""
        return (self.first_step_seconds + max(0, steps - 1) * self.seconds_per_step) / 60


def synthetic_training_step(config: RunConfig, device: torch.device,
                            precision: str | None = None) -> tuple[Method, Callable[[], None], str, bool]:
    """The method of ``config`` (its network compiled where ``trainer.compile`` says), one optimiser step
    on a synthetic batch of the method's data request as training runs it (the forward under autocast at the
    resolved precision, backward outside), that precision, and whether the network compiled."""
    from mucon.data.synthetic import synthetic_batch
    from mucon.training import compile_network

    precision, _ = resolve_precision(precision or config.trainer.precision, device.type)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16-mixed")
    method = method_class(config.method_name)(config).to(device).train()
    optimizer = torch.optim.Adam(method.parameters(), lr=config.optimizer.lr)
    batch = synthetic_batch(method.data_request, config.data.batch_size, n_classes=10, device=device)
    compiled = compile_network(method, config)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss, _ = method.compute_loss(batch)
        loss.backward()
        optimizer.step()

    return method, step, precision, compiled


def time_training_step(config: RunConfig, steps: int = 2, device: torch.device | str = "cpu",
                       precision: str | None = None) -> StepTiming:
    """The first step's seconds and the mean of the next ``steps``."""
    device = torch.device(device)
    _, step, precision, compiled = synthetic_training_step(config, device, precision)
    first = _seconds(step, device)
    return StepTiming(precision, compiled, first, sum(_seconds(step, device) for _ in range(steps)) / steps)


def _seconds(step: Callable[[], None], device: torch.device) -> float:
    start = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start
