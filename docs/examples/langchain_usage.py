"""search-r3 in LangChain: an Embeddings object, a retriever with reasoning, a RAG chain.

Run:  python docs/examples/langchain_usage.py
      Offline by default, on the shipped search-r3-smollm2-135m.
      SEARCH_R3_MODEL=ytgui/Search-R3.0-Small: the Hub model (or a search-r3 folder).
Needs:  pip install -e integrations/langchain langchain-qdrant
"""

import os

from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableParallel, RunnablePassthrough
from langchain_qdrant import QdrantVectorStore
from qdrant_client import QdrantClient, models

from langchain_search_r3 import SearchR3Embeddings, SearchR3Retriever

MODEL = os.environ.get("SEARCH_R3_MODEL", "search-r3-smollm2-135m")  # shipped: runs offline
QUESTION = "Where can I see famous paintings in France?"

documents = [
    Document(
        id="louvre",
        page_content="The Louvre, in Paris, is the world's most-visited art museum.",
        metadata={"source": "museums.md"},
    ),
    Document(
        id="prado",
        page_content="The Prado in Madrid holds one of the finest collections of European art.",
        metadata={"source": "museums.md"},
    ),
    Document(
        id="seine",
        page_content="The Seine flows through Paris before reaching the English Channel.",
        metadata={"source": "rivers.md"},
    ),
]

# 1. An Embeddings object: embed_query reasons first, embed_documents does not.
#    HuggingFaceEmbeddings' keywords work too: model_name=..., model_kwargs={"device": "cpu"}.
embeddings = SearchR3Embeddings(model=MODEL, max_reasoning_tokens=64)
reasoned = embeddings.encode_query(QUESTION)  # one generation: the vector and its reasoning text
query_vector = reasoned.embeddings[0]  # what embed_query(QUESTION) returns
print("reasoning:", reasoned.reasoning[0])

# 2. The retriever: searches search-r3's Qdrant store (":memory:" here; path=... or url=... to keep
#    it), reasons about each query once, and returns the reasoning with every Document.
#    mode="dense" ranks by cosine (as the vector store below does); without it the store ranks by
#    dense + BM25 over the query and its reasoning (hybrid, the default; see the Qdrant guide).
retriever = SearchR3Retriever.from_documents(documents, embeddings, k=2, mode="dense")
hits = retriever.invoke(QUESTION)
for doc in hits:
    print(f"{doc.metadata['score']:.3f}  {doc.id:<7} {doc.page_content}")
museums_only = retriever.invoke(QUESTION, k=3, filter={"source": "museums.md"})  # per-call overrides
# Several queries: batch (and abatch) reason about all of them in one batched generation.
batched = retriever.batch([QUESTION, "Which river flows through Paris?"])

# 3. Any LangChain vector store takes the same Embeddings. For langchain-qdrant, create the collection
#    from the model's dimension so it never embeds a probe text to learn the size.
client = QdrantClient(":memory:")
client.create_collection(
    "langchain_docs",
    vectors_config=models.VectorParams(size=embeddings.embedding_dimension, distance=models.Distance.COSINE),
)
vector_store = QdrantVectorStore(
    client, "langchain_docs", embedding=embeddings, validate_collection_config=False
)
vector_store.add_texts([d.page_content for d in documents], metadatas=[d.metadata for d in documents])
print(vector_store.similarity_search_with_score(QUESTION, k=1))

# 4. Retrieval-augmented generation: retriever -> prompt -> chat model. FakeListChatModel answers
#    offline with canned text; use ChatOllama, ChatOpenAI, ... for real answers.
prompt = ChatPromptTemplate.from_messages(
    [("system", "Answer from this context only:\n\n{context}"), ("human", "{question}")]
)
llm = FakeListChatModel(responses=["The Louvre, in Paris [museums.md]."])
chain = RunnableParallel(question=RunnablePassthrough(), documents=retriever).assign(
    answer={
        "context": lambda x: "\n\n".join(
            f"[{d.metadata['source']}] {d.page_content}" for d in x["documents"]
        ),
        "question": lambda x: x["question"],
    }
    | prompt
    | llm
    | StrOutputParser()
)
result = chain.invoke(QUESTION)
print(result["answer"], [d.id for d in result["documents"]])
retriever.store.close()
