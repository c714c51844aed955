"""Retrieval-augmented generation with search-r3 and LangChain, fully offline.

retriever (reasoning query embedding + local Qdrant) -> prompt -> chat model -> answer.

The chat model here is LangChain's ``FakeListChatModel`` (a real langchain-core class that replies
with canned text), so the example runs without a network or an API key; swap in any chat model
(``ChatOllama``, ``ChatOpenAI``, ...) for real answers.

Usage:
    python rag_chain.py [--max-reasoning-tokens 64]
        runs offline on the shipped search-r3-smollm2-135m; --model ytgui/Search-R3.0-Small (or
        SEARCH_R3_MODEL=ytgui/Search-R3.0-Small) for the Hub model, or any search-r3 folder
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableParallel, RunnablePassthrough

from langchain_search_r3 import SearchR3Embeddings, SearchR3Retriever

DOCUMENTS = [
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
        page_content="The Seine flows through Paris before reaching the English Channel at Le Havre.",
        metadata={"source": "rivers.md"},
    ),
    Document(
        id="baguette",
        page_content="A baguette is a long, thin French loaf with a crisp crust.",
        metadata={"source": "food.md"},
    ),
]

PROMPT = ChatPromptTemplate.from_messages(
    [
        ("system", "Answer the question using only the context below. Cite sources.\n\n{context}"),
        ("human", "{question}"),
    ]
)


def format_docs(docs: Sequence[Document]) -> str:
    """The retrieved documents as prompt context, one block per document with its source."""
    return "\n\n".join(f"[{d.metadata.get('source', d.id)}] {d.page_content}" for d in docs)


def build_chain(retriever: BaseRetriever, llm: BaseChatModel) -> Runnable:
    """question -> {"question", "documents", "answer"}: retrieval once, then prompt and chat model."""
    answer = {"context": lambda x: format_docs(x["documents"]), "question": lambda x: x["question"]}
    return RunnableParallel(question=RunnablePassthrough(), documents=retriever).assign(
        answer=answer | PROMPT | llm | StrOutputParser()
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model",
        default=os.environ.get("SEARCH_R3_MODEL", "search-r3-smollm2-135m"),
        help="search-r3 model: shipped name, folder or Hugging Face Hub id (default: $SEARCH_R3_MODEL, "
        "else the shipped search-r3-smollm2-135m, which works offline)",
    )
    parser.add_argument("--max-reasoning-tokens", type=int, default=64, help="reasoning budget per query")
    parser.add_argument("--question", default="Where can I see famous paintings in France?")
    parser.add_argument("-k", type=int, default=2, help="documents to retrieve")
    args = parser.parse_args(argv)

    embeddings = SearchR3Embeddings(model=args.model, max_reasoning_tokens=args.max_reasoning_tokens)
    retriever = SearchR3Retriever.from_documents(DOCUMENTS, embeddings, k=args.k)  # local :memory: Qdrant
    llm = FakeListChatModel(responses=["The Louvre in Paris [museums.md]."])
    result = build_chain(retriever, llm).invoke(args.question)

    print(f"Question:  {result['question']}")
    print(f"Reasoning: {result['documents'][0].metadata['reasoning']!r}" if result["documents"] else "")
    for doc in result["documents"]:
        print(f"  {doc.metadata['score']:.3f}  {doc.id:<9} {doc.page_content}")
    print(f"Answer:    {result['answer']}")
    retriever.store.close()
    return result


if __name__ == "__main__":
    main()
