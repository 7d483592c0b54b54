"""Fixtures for simulator tests: a loop-exception guard, carrier simulators on
127.0.0.1 port 0 with fast receipts, and test ESMEs (style guide §8.4)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio

from simulators.carrier import CarrierSimulator, Faults
from simulators.profiles import load_profile
from tests.simulators.esme import Esme

# Receipts in tests: median 10 ms, p99 50 ms (korea-messaging §6's 3 s / 60 s
# would make every test wait; the distribution has its own test).
FAST_RECEIPTS: dict[str, Any] = {"receipt_median_s": 0.01, "receipt_p99_s": 0.05}


@pytest_asyncio.fixture
async def loop_guard() -> AsyncIterator[list[dict[str, Any]]]:
    """Fail the test if anything reached the event loop's exception handler
    (an exception in a protocol callback, a never-retrieved task exception)."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        yield errors
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    if errors:
        pytest.fail(f"unexpected exceptions in asynchronous code: {errors!r}")


@pytest_asyncio.fixture
async def make_carrier(
    loop_guard: list[dict[str, Any]],
) -> AsyncIterator[Callable[..., Awaitable[CarrierSimulator]]]:
    """Factory: ``await make_carrier("kt", faults=Faults(...), seed=1, **profile
    overrides)`` → a started simulator on 127.0.0.1:0 with fast receipts,
    stopped at teardown."""
    sims: list[CarrierSimulator] = []

    async def make(
        profile: str = "skt", *, faults: Faults | None = None, seed: int = 0, **overrides: Any
    ) -> CarrierSimulator:
        sim = CarrierSimulator(
            load_profile(profile, **{**FAST_RECEIPTS, **overrides}),
            seed=seed,
            faults=faults or Faults(),
            port=0,
        )
        await sim.start()
        sims.append(sim)
        return sim

    yield make
    for sim in sims:
        await sim.stop(grace_s=0.5)


@pytest_asyncio.fixture
async def carrier(make_carrier: Callable[..., Awaitable[CarrierSimulator]]) -> CarrierSimulator:
    """A started skt simulator with fast receipts."""
    return await make_carrier("skt")


@pytest_asyncio.fixture
async def connect_esme(
    loop_guard: list[dict[str, Any]],
) -> AsyncIterator[Callable[..., Awaitable[Esme]]]:
    """Factory: ``await connect_esme(port, **Esme options)`` → a connected
    (unbound) test ESME, closed at teardown."""
    esmes: list[Esme] = []

    async def connect(
        port: int, *, window: int = 1000, response_timeout_s: float = 5.0, **kw: Any
    ) -> Esme:
        esme = await Esme(**kw).connect(port, window=window, response_timeout_s=response_timeout_s)
        esmes.append(esme)
        return esme

    yield connect
    for esme in esmes:
        await esme.close()
