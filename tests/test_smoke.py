import numpy as np


def test_documents_and_queries(tiny_model_dir):
    from search_r3 import ReasoningEmbeddings

    emb = ReasoningEmbeddings.from_pretrained(tiny_model_dir, device="cpu", max_reasoning_tokens=6)
    docs = emb.encode_documents(["Paris is the capital of France.", "Bananas are yellow."])
    assert docs.shape == (2, 64)
    np.testing.assert_allclose(np.linalg.norm(docs, axis=1), 1.0, rtol=1e-5)
    res = emb.encode_queries(["which city hosts the Louvre?", "fruit"], max_reasoning_tokens=6)
    assert res.embeddings.shape == (2, 64)
    assert len(res.reasoning) == 2
