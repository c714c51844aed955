"""A LlamaIndex query engine on search-r3 reasoning embeddings and a local Qdrant, fully offline.

1. Index a few documents into a Qdrant folder (documents are embedded without reasoning).
2. Reopen the index from that folder, as a later process would.
3. Ask a question: the query is reasoned about and embedded once, the retriever returns the
   reasoning with every node, and the LLM answers from the retrieved context.

The LLM here is LlamaIndex's ``MockLLM`` (a real llama-index-core class that echoes its prompt),
so the example needs no network or API key; pass any LlamaIndex LLM (``Ollama``, ``OpenAI``...)
for real answers.

Usage:
    python query_engine.py [--store-path ./qdrant]
        runs offline on the shipped search-r3-smollm2-135m; --model ytgui/Search-R3.0-Small (or
        SEARCH_R3_MODEL=ytgui/Search-R3.0-Small) for the Hub model, or any search-r3 folder
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Sequence

from qdrant_client import QdrantClient

from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.base.response.schema import Response
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.embeddings.search_r3 import SearchR3Embedding
from llama_index.retrievers.search_r3 import SearchR3Retriever
from llama_index.vector_stores.qdrant import QdrantVectorStore

COLLECTION = "museums"

DOCUMENTS = [
    Document(id_="louvre", text="The Louvre, in Paris, is the world's most-visited art museum.",
             metadata={"source": "museums.md"}),
    Document(id_="prado", text="The Prado in Madrid holds one of the finest collections of European art.",
             metadata={"source": "museums.md"}),
    Document(id_="seine", text="The Seine flows through Paris before reaching the English Channel.",
             metadata={"source": "rivers.md"}),
    Document(id_="baguette", text="A baguette is a long, thin French loaf with a crisp crust.",
             metadata={"source": "food.md"}),
]  # fmt: skip


def build_index(embed_model: SearchR3Embedding, store_path: str) -> None:
    """Embed and store DOCUMENTS in a Qdrant collection on disk."""
    client = QdrantClient(path=store_path)
    try:
        storage = StorageContext.from_defaults(vector_store=QdrantVectorStore(COLLECTION, client=client))
        VectorStoreIndex.from_documents(DOCUMENTS, storage_context=storage, embed_model=embed_model)
    finally:
        client.close()  # local mode allows one client per folder


def ask(embed_model: SearchR3Embedding, store_path: str, question: str, k: int) -> Response:
    """Reopen the collection and answer ``question`` from the ``k`` best nodes."""
    client = QdrantClient(path=store_path)
    try:
        vector_store = QdrantVectorStore(COLLECTION, client=client)
        retriever = SearchR3Retriever.from_vector_store(vector_store, embed_model, similarity_top_k=k)
        engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM(max_tokens=None))
        return engine.query(question)
    finally:
        client.close()


def main(argv: Sequence[str] | None = None) -> Response:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model",
        default=os.environ.get("SEARCH_R3_MODEL", "search-r3-smollm2-135m"),
        help="search-r3 model: shipped name, folder or Hugging Face Hub id (default: $SEARCH_R3_MODEL, "
        "else the shipped search-r3-smollm2-135m, which works offline)",
    )
    parser.add_argument("--store-path", help="Qdrant folder (default: a temporary one)")
    parser.add_argument("--max-reasoning-tokens", type=int, default=64, help="reasoning budget per query")
    parser.add_argument("--question", default="Where can I see famous paintings in France?")
    parser.add_argument("-k", type=int, default=2, help="nodes to retrieve")
    args = parser.parse_args(argv)

    embed_model = SearchR3Embedding(args.model, max_reasoning_tokens=args.max_reasoning_tokens)
    with tempfile.TemporaryDirectory() as scratch:
        store_path = args.store_path or scratch
        build_index(embed_model, store_path)
        response = ask(embed_model, store_path, args.question, args.k)

    nodes = response.source_nodes
    print(f"Question:  {args.question}")
    print(f"Reasoning: {nodes[0].node.metadata['reasoning']!r}" if nodes else "")
    for item in nodes:
        print(f"  {item.score:.3f}  {item.node.ref_doc_id:<9} {item.node.get_content()}")
    print(f"Answer:    {response}")
    return response


if __name__ == "__main__":
    main()
