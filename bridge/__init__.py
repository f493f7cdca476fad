"""rerank-bridge: a local ONNX reranking stage for Elasticsearch and OpenSearch.

Public API is listed in ``__all__``; everything else is private to its module.
"""

from __future__ import annotations

from bridge.config import FusionConfig, RerankConfig
from bridge.errors import (
    BridgeError,
    ConfigError,
    DownloadError,
    InputError,
    ModelError,
    ModelNotFoundError,
    ModelUnavailableError,
    NodeError,
    OfflineError,
    RerankTimeout,
    UnsupportedSearchError,
    UpstreamError,
)
from bridge.models import (
    ModelFiles,
    default_cache_dir,
    download_model,
    known_model_names,
    resolve_model,
)
from bridge.ranker import Ranker, RerankRequest
from bridge.scoring import load_scorer
from bridge.search import AsyncRerankingSearch, RerankingSearch

__version__ = "0.1.0"

__all__ = [
    "AsyncRerankingSearch",
    "BridgeError",
    "ConfigError",
    "DownloadError",
    "FusionConfig",
    "InputError",
    "ModelError",
    "ModelFiles",
    "ModelNotFoundError",
    "ModelUnavailableError",
    "NodeError",
    "OfflineError",
    "Ranker",
    "RerankConfig",
    "RerankRequest",
    "RerankTimeout",
    "RerankingSearch",
    "UnsupportedSearchError",
    "UpstreamError",
    "__version__",
    "default_cache_dir",
    "download_model",
    "known_model_names",
    "load_scorer",
    "resolve_model",
]
