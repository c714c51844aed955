"""``search-r3 serve``: an OpenAI-compatible embeddings and search server (FastAPI + uvicorn).

Needs the ``serve`` extra: ``pip install 'search-r3[serve]'``. See ``docs/guides/server.md``.

Example:
    ```python
    from search_r3 import ReasoningEmbeddings
    from search_r3.query_cache import QueryCache
    from search_r3.server import ServerConfig, build_service, make_server

    emb = ReasoningEmbeddings.from_pretrained("search-r3-smollm2-135m", device="cpu")
    config = ServerConfig(model_name="search-r3-smollm2-135m")
    service = build_service(emb, config, cache=QueryCache())
    make_server(service, config, port=8080).run()
    ```
"""

from search_r3.server.app import create_app
from search_r3.server.config import ServerConfig
from search_r3.server.errors import APIError
from search_r3.server.runner import GracefulServer, build_service, make_server
from search_r3.server.service import EmbeddingService

__all__ = [
    "APIError",
    "EmbeddingService",
    "GracefulServer",
    "ServerConfig",
    "build_service",
    "create_app",
    "make_server",
]
