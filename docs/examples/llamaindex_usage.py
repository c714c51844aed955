"""search-r3 in LlamaIndex: an embedding model, a Qdrant-backed index, a retriever with reasoning.

Run:  python docs/examples/llamaindex_usage.py
      Offline by default, on the shipped search-r3-smollm2-135m.
      SEARCH_R3_MODEL=ytgui/Search-R3.0-Small: the Hub model (or a search-r3 folder).
Needs:  pip install -e integrations/llama-index llama-index-vector-stores-qdrant
"""

import asyncio
import os
import tempfile

from qdrant_client import QdrantClient

from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.llms import MockLLM
from llama_index.embeddings.search_r3 import SearchR3Embedding
from llama_index.retrievers.search_r3 import SearchR3Retriever
from llama_index.vector_stores.qdrant import QdrantVectorStore

MODEL = os.environ.get("SEARCH_R3_MODEL", "search-r3-smollm2-135m")  # shipped: runs offline
QUESTION = "Where can I see famous paintings in France?"

# Query embeddings reason first; node (text) embeddings take one forward pass per batch.
# Always pass the embedding model: LlamaIndex's global default is OpenAI.
embed_model = SearchR3Embedding(model=MODEL, max_reasoning_tokens=64)

documents = [
    Document(text="The Louvre, in Paris, is the world's most-visited art museum.", metadata={"topic": "art"}),
    Document(
        text="The Prado in Madrid holds one of the finest collections of European art.",
        metadata={"topic": "art"},
    ),
    Document(
        text="The Seine flows through Paris before reaching the English Channel.",
        metadata={"topic": "geography"},
    ),
]

# An index over a Qdrant collection (a local folder here; QdrantClient(url=...) for a server).
folder = tempfile.mkdtemp()
client = QdrantClient(path=folder)
vector_store = QdrantVectorStore(collection_name="museums", client=client)
index = VectorStoreIndex.from_documents(
    documents,
    storage_context=StorageContext.from_defaults(vector_store=vector_store),
    embed_model=embed_model,
)

# The retriever embeds each query once and adds the reasoning to every node's metadata.
retriever = SearchR3Retriever(index, similarity_top_k=2)
nodes = retriever.retrieve(QUESTION)
print("reasoning:", nodes[0].node.metadata["reasoning"])
for hit in nodes:
    print(f"{hit.score:.3f}  {hit.node.get_content()}")

# A query engine on top; MockLLM keeps this offline (use any LlamaIndex LLM for real answers).
query_engine = index.as_query_engine(llm=MockLLM(max_tokens=16), similarity_top_k=2)
response = query_engine.query(QUESTION)
print("sources:", [n.node.get_content()[:30] for n in response.source_nodes])

# Async works on this local store too (it is searched in a worker thread: Qdrant's local mode has
# no async client), and several queries reason in one batched generation.
async_nodes = asyncio.run(retriever.aretrieve(QUESTION))
query_vectors = embed_model.get_query_embedding_batch([QUESTION, "Which river crosses Paris?"])

# Later, reopen the existing collection without re-embedding anything.
client.close()
client = QdrantClient(path=folder)
reopened = SearchR3Retriever.from_vector_store(
    QdrantVectorStore(collection_name="museums", client=client), embed_model, similarity_top_k=1
)
print("reopened:", reopened.retrieve(QUESTION)[0].node.get_content())
client.close()
