"""What the wrapper, the proxy and the integrations need from a model: the ``Scorer`` protocol."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
ScorerKind = Literal["cross", "bi"]


@runtime_checkable
class Scorer(Protocol):
    """What the wrapper, the proxy and the integrations need from a model.

    Synchronous only: the doors that must not block (the async wrapper, the proxy, the async
    integration methods) run these methods on their own worker threads.
    """

    @property
    def kind(self) -> ScorerKind: ...

    @property
    def model_name(self) -> str: ...

    @property
    def max_length(self) -> int: ...

    def score(self, query: str, passages: Sequence[str]) -> list[float]: ...

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]: ...

    def embed(self, texts: Sequence[str]) -> FloatArray: ...
