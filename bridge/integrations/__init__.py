"""Optional integrations with LLM application frameworks.

Each submodule needs its own extra and is never imported by ``bridge`` itself, so the core install
works without them:

- ``bridge.integrations.langchain`` (``pip install 'rerank-bridge[langchain]'``): ``BridgeRerank``
  (a drop-in for LangChain's ``FlashrankRerank``), ``BridgeEmbeddings``, ``RerankingRetriever``.
- ``bridge.integrations.llamaindex`` (``pip install 'rerank-bridge[llamaindex]'``): ``BridgeRerank``
  (a LlamaIndex node postprocessor).
"""

from __future__ import annotations

__all__: list[str] = []
