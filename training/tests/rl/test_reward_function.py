"""The reward TRL calls, against an independent computation with the core's public API.

The margin reward is used for the comparison because it is continuous in the vectors: with a tiny
random model many documents score within 1e-6 of each other, so rank-based rewards can flip on
float noise between two equally correct computations.
"""

from __future__ import annotations

import pytest
import torch
from rl_helpers import rl_argv

from search_r3_train.rl.build import build_rl
from search_r3_train.rl.cli import parse_args
from search_r3_train.rl.rewards import MarginReward


@pytest.mark.parametrize("mode", ["penalty", "forced"])
def test_reward_matches_the_core_and_handles_missing_tokens(
    emitting_model_dir, rl_collection_dir, tmp_path, mode
):
    from search_r3 import ReasoningEmbeddings

    argv = rl_argv(emitting_model_dir, rl_collection_dir, tmp_path / "o")
    argv += ["--missing_token_mode", mode, "--missing_token_penalty", "-0.25", "--reward_name", "margin"]
    setup = build_rl(*parse_args(argv))
    reward, data, prompts = setup.reward, setup.data, setup.prompts
    qid, query = data.query_ids[2], data.queries[2]
    reasoning = prompts.encode_plain("It asks about wing lift and stall.\n")
    eos = prompts.tokenizer.eos_token_id
    # the 4th wrote the closing text and went on: it ends at the closing text with the token, as in inference
    wrote_closing = reasoning + prompts.closing_ids[:-1] + prompts.encode_plain("\nmore text")
    completions = [reasoning + prompts.closing_ids, reasoning + [eos], reasoning[:5], wrote_closing]

    rewards = reward(
        prompts=[query] * 4, completions=[""] * 4, completion_ids=completions, query_id=[qid] * 4
    )

    core = ReasoningEmbeddings.from_pretrained(emitting_model_dir, device="cpu")
    documents = torch.from_numpy(core.encode_documents(data.documents))
    prompt = core.prompts.reasoning_prompt_ids(query)
    sequences = [
        prompt + completions[0],
        prompt + reasoning + core.prompts.forced_ids,
        prompt + reasoning[:5] + core.prompts.forced_ids,
        prompt + reasoning + core.prompts.closing_ids,
    ]
    expected = [MarginReward()(documents @ q, data.qrels[qid]) for q in core.embed_prompt_ids(sequences)]

    assert rewards[0] == pytest.approx(expected[0], abs=1e-5)  # emitted: scored as the core embeds it
    assert rewards[3] == pytest.approx(expected[3], abs=1e-5)  # closing text: no penalty
    assert rewards[3] == pytest.approx(rewards[0], abs=1e-5)
    if mode == "penalty":
        assert rewards[1:3] == [-0.25, -0.25]
        assert reward.last.scored == [True, False, False, True]
    else:  # closed as inference closes a forced row (end-of-turn dropped), scored, penalty added
        assert rewards[1] == pytest.approx(expected[1] - 0.25, abs=1e-5)
        assert rewards[2] == pytest.approx(expected[2] - 0.25, abs=1e-5)
        assert reward.last.scored == [True, True, True, True]
    assert reward.last.emitted == [True, False, False, True]
    assert (reward.counters.rollouts, reward.counters.emitted) == (4, 2)
    assert reward.last.positives[0] == max(data.qrels[qid], key=data.qrels[qid].get)
    assert not set(reward.last.negatives[0]) & set(data.qrels[qid])  # negatives are non-relevant
