"""One exception hierarchy for the whole package.

The proxy maps each class to an Elasticsearch-shaped JSON error (``error.type``, ``reason``) and an
HTTP status, so every class carries both.
"""

from __future__ import annotations


class BridgeError(Exception):
    """Base of every error rerank-bridge raises on purpose."""

    error_type = "rerank_bridge_exception"
    status = 500

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConfigError(BridgeError, ValueError):
    """A configuration or request value is invalid; ``field`` names it (dot path)."""

    error_type = "illegal_argument_exception"
    status = 400

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(f"[{field}] {reason}" if field else reason)
        self.field = field


class UnsupportedSearchError(ConfigError):
    """The search cannot be reranked honestly (non-score sort, scroll, search_after, PIT...)."""

    error_type = "rerank_unsupported_search_exception"


class InputError(BridgeError, ValueError):
    """Bad passages or texts handed to the scorer; ``index`` names the offending item."""

    error_type = "illegal_argument_exception"
    status = 400

    def __init__(self, reason: str, *, index: int | None = None) -> None:
        super().__init__(f"passage [{index}]: {reason}" if index is not None else reason)
        self.index = index


class ModelError(BridgeError):
    """The model could not be found, loaded or run."""

    error_type = "rerank_model_exception"
    status = 500


class ModelNotFoundError(ModelError):
    """Unknown model name, or a model directory that lacks files."""

    error_type = "rerank_model_not_found_exception"
    status = 404


class DownloadError(ModelError):
    """A model download failed (network, corrupt or unsafe archive)."""

    error_type = "rerank_model_download_exception"
    status = 502


class OfflineError(DownloadError):
    """A download was needed while offline mode forbids network access."""

    error_type = "rerank_model_offline_exception"
    status = 503


class ModelUnavailableError(ModelError):
    """The model failed to load before and its background retry is pending (no new attempt)."""

    error_type = "rerank_model_unavailable_exception"
    status = 503

    def __init__(self, reason: str, *, model: str) -> None:
        super().__init__(reason)
        self.model = model


class UpstreamError(BridgeError):
    """The search engine could not be reached or answered unusably."""

    error_type = "rerank_upstream_exception"
    status = 502


class UpstreamTimeout(UpstreamError):
    """The search engine did not answer in time."""

    error_type = "rerank_upstream_timeout_exception"
    status = 504


class RerankTimeout(BridgeError):
    """Reranking exceeded its ``timeout_ms`` budget (raised only with ``on_failure='error'``)."""

    error_type = "rerank_timeout_exception"
    status = 504


class NodeError(BridgeError):
    """A local Elasticsearch/OpenSearch node could not be fetched, started or stopped."""

    error_type = "rerank_node_exception"


class EvalError(BridgeError):
    """An evaluation could not run: missing index, empty qrels, unreadable dataset."""

    error_type = "rerank_eval_exception"
    status = 400


class TrainingError(BridgeError):
    """Training or distillation could not run: bad judgments, base checkpoint or options."""

    error_type = "rerank_training_exception"
    status = 400


__all__ = [
    "BridgeError",
    "ConfigError",
    "DownloadError",
    "EvalError",
    "InputError",
    "ModelError",
    "ModelNotFoundError",
    "ModelUnavailableError",
    "NodeError",
    "OfflineError",
    "RerankTimeout",
    "TrainingError",
    "UnsupportedSearchError",
    "UpstreamError",
    "UpstreamTimeout",
]
