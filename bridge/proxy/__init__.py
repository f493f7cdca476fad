"""The rerank proxy: a drop-in Elasticsearch/OpenSearch endpoint that reranks searches.

Needs the `proxy` extra (`pip install 'rerank-bridge[proxy]'`). Run it with `rerank-bridge serve`,
or embed it: ``create_app(load_settings("proxy.yaml"))`` is a plain ASGI app.
"""

from __future__ import annotations

from bridge.proxy.app import create_app
from bridge.proxy.settings import ProxySettings, load_settings, settings_from_mapping

__all__ = ["ProxySettings", "create_app", "load_settings", "settings_from_mapping"]
