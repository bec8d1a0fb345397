"""A translator's batched beam search equals translating one sentence at a time: same tokens, scores
and attention, for several source lengths (so several max lengths and finishing steps in one batch),
beam widths and attention kinds, on a tiny random model."""

from __future__ import annotations

import pytest
import torch

from datamodules.tokenizers import train_translation_tokenizer
from zoo.tasks.seq2seq import Seq2Seq

WORDS = "ein mann eine frau fährt sieht fahrrad hund katze ball rot blau".split()


def sentences(n: int, seed: int) -> list[str]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 12, (n,), generator=g)
    return [" ".join(WORDS[int(i)] for i in torch.randint(len(WORDS), (int(k),), generator=g)) + "." for k in lengths]


@pytest.fixture(scope="module")
def tokenizer_json() -> str:
    return train_translation_tokenizer(sentences(200, 0), kind="word", vocab_size=100, min_frequency=1).to_str()


@pytest.mark.parametrize("attention,beam", [("general", 2), ("general", 5), ("additive", 3), ("none", 4)])
def test_batched_beam_search_equals_one_sentence_at_a_time(tokenizer_json: str, attention: str, beam: int) -> None:
    torch.manual_seed(beam)
    model = Seq2Seq(
        tokenizer_json,
        tokenizer_json,
        embedding_dim=16,
        hidden_size=12,
        attention=attention,
        max_len_a=1.0,
        max_len_b=2,
        length_penalty=1.0,
    ).eval()
    texts = sentences(12, seed=beam)
    batched = model.predict(texts, beam_size=beam, batch_size=12)
    alone = [model.predict([t], beam_size=beam)[0] for t in texts]
    assert len({len(r["source_tokens"]) for r in alone}) >= 4  # several lengths in the one batch
    assert not all(r["finished"] for r in alone)  # and some sentences stopped by their own max length
    for b, a in zip(batched, alone):
        assert b["target_tokens"] == a["target_tokens"]
        assert b["finished"] == a["finished"]
        assert b["score"] == pytest.approx(a["score"], abs=1e-4)
        if attention != "none":
            assert torch.allclose(b["attention"], a["attention"], atol=1e-5)
