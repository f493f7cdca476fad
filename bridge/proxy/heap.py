"""The served process's heap once start-up is over: collected once, then frozen.

By the time the proxy answers its first request, the interpreter holds everything start-up made
and will keep until exit: modules, the app and its routes, settings, tokenizers and model
wrappers. Every full garbage collection walks all of it again, on the event loop's thread, for
nothing. ``settle`` collects what start-up left over, then ``gc.freeze()`` moves the rest out of
the collector's generations (it is still freed normally by reference counting). Measured with
benchmarks/heap_freeze.py (benchmarks/README.md): 8 % less proxy CPU per relayed request at
1 client; the collector's thresholds stay the interpreter's own, as a young generation of
10,000 (instead of 700) objects did not help (more CPU per request at 16 clients, in one run).

Only `rerank-bridge serve` does this (``settle_after_startup`` wraps the app's lifespan in
bridge.proxy.app.create_app_from_env), not apps built in a test process.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator, Callable
from typing import Any


def settle() -> None:
    """Collect what start-up left over, freeze the rest."""
    gc.collect()
    gc.freeze()


def settle_after_startup(app: Any) -> Any:
    """``app`` (Starlette) with ``settle`` run once its lifespan's start-up is done."""
    inner: Callable[[Any], contextlib.AbstractAsyncContextManager[Any]] = (
        app.router.lifespan_context
    )

    @contextlib.asynccontextmanager
    async def lifespan(served: Any) -> AsyncIterator[Any]:
        async with inner(served) as state:
            settle()
            yield state

    app.router.lifespan_context = lifespan
    return app


__all__ = ["settle", "settle_after_startup"]
