"""search_r3.framework_options: other frameworks' loader keywords mapped onto from_pretrained."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from search_r3 import InvalidInputError
from search_r3.framework_options import check_keys, l2_normalize, loader_keys, loader_kwargs


def test_loader_keys_are_from_pretrained_and_constructor_keywords():
    keys = loader_keys()
    assert {"device", "dtype", "revision", "token", "local_files_only", "max_length", "batch_size"} <= keys
    assert not {"self", "kwargs", "model_name_or_path", "model", "tokenizer"} & keys


def test_model_kwargs_merge_with_explicit_arguments():
    given = {"device": "cpu", "torch_dtype": torch.bfloat16}
    load = loader_kwargs(given, device="cpu", batch_size=8, dtype=None)
    assert load == {"device": "cpu", "dtype": "bfloat16", "batch_size": 8}


@pytest.mark.parametrize(
    ("model_kwargs", "explicit", "match"),
    [
        ({"device": "cuda"}, {"device": "cpu"}, "device is given twice"),
        ({"dtype": "float32", "torch_dtype": "bfloat16"}, {}, "pass only dtype"),
        ({"trust_remote_code": True}, {}, "never runs code"),
        ({"cache_folder": "x"}, {}, "does not take cache_folder; accepted keys: .*device"),
    ],
)
def test_mistakes_are_one_clear_error(model_kwargs: dict, explicit: dict, match: str):
    with pytest.raises(InvalidInputError, match=match):
        loader_kwargs(model_kwargs, **explicit)


def test_trust_remote_code_false_is_accepted_and_dropped():
    assert loader_kwargs({"trust_remote_code": False, "revision": "main"}) == {"revision": "main"}


def test_check_keys_and_l2_normalize():
    check_keys("encode_kwargs", {"a": 1}, frozenset({"a", "b"}))
    with pytest.raises(InvalidInputError, match="encode_kwargs does not take c; accepted keys: a, b"):
        check_keys("encode_kwargs", {"c": 1}, frozenset({"a", "b"}))
    out = l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])
