"""The modern families (xLSTM, S6, RG-LRU: every name in zoo.families.MODERN_CELLS) in the tasks that
take a ``cell``: built from the name, trained a step, the state carried for truncated BPTT, padding
invariant, decoded greedily and by beam search, their units and gradients readable. (Streaming, the
frame classifier included, is tests/test_streaming.py's, for every family.)"""

import pytest
import torch

from datamodules.tokenizers import train_tokenizer
from tests.test_seq2seq import (
    batch_of,
    make,
    tokenizers,  # noqa: F401  (a fixture)
    toy_pairs,
)
from zoo.families import MODERN_CELLS
from zoo.gradients import lm_gradient_through_time
from zoo.tasks.classifier import SequenceClassifier
from zoo.tasks.language_model import CharLanguageModel
from zoo.viz import activations

FAMILIES = sorted(MODERN_CELLS)
VOCAB = ["<unk>"] + list("abcdefgh \n")
EXACT = dict(atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cell", FAMILIES)
def test_char_lm_trains_carries_state_and_exposes_units(cell):
    torch.manual_seed(0)
    model = CharLanguageModel(vocab=VOCAB, cell=cell, hidden_size=16, embedding_dim=8, num_layers=2, dropout=0.0)
    ids = torch.randint(1, len(VOCAB), (3, 20))
    logits, state = model(ids)
    assert logits.shape == (3, 20, len(VOCAB))
    torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids.flatten()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    model.eval()
    whole, _ = model(ids)
    continued, _ = model(ids[:, 10:], model(ids[:, :10])[1])  # the first window's state carried
    torch.testing.assert_close(continued, whole[:, 10:], **EXACT)
    acts = activations(model, "abc def\nghab " * 3)  # what `zoo visualize` draws
    assert acts[("hidden", 1)].shape == (39, 16)
    assert all(a.shape[0] == 39 for a in acts.values())
    norms = lm_gradient_through_time(model, ids)
    assert len(norms) == 2 and norms[0]["hidden"].shape == (3, 19) and torch.isfinite(norms[0]["hidden"]).all()
    assert float(norms[1]["hidden"][:, -1].min()) > 0  # the loss reaches the last step's state
    assert len(model.generate("ab", 10, temperature=0)) >= 2


@pytest.mark.parametrize("cell", FAMILIES)
def test_classifier_is_padding_invariant_in_both_directions(cell):
    torch.manual_seed(0)
    tokenizer = train_tokenizer(["a good film", "a bad film", "good and good"], vocab_size=50, min_frequency=1).to_str()
    model = SequenceClassifier(tokenizer, ["neg", "pos"], cell=cell, embedding_dim=8, hidden_size=6, bidirectional=True).eval()
    ids, lengths = torch.tensor([[1, 2, 3, 0, 0], [1, 2, 3, 4, 2]]), torch.tensor([3, 5])
    torch.testing.assert_close(model(ids, lengths)[0], model(ids[:1, :3], lengths[:1])[0], **EXACT)


@pytest.mark.parametrize("cell", FAMILIES)
def test_translator_decodes_greedily_and_by_beam_with_the_bridged_state(cell, tokenizers):  # noqa: F811
    model = make(tokenizers, cell=cell, attention="general")
    batch = batch_of(model, toy_pairs(3, seed=1))
    loss = model.training_step(batch, 0)
    assert torch.isfinite(loss)
    greedy = model.search(batch["src"], batch["src_lengths"], beam_size=1, max_len=8)
    beam = model.search(batch["src"], batch["src_lengths"], beam_size=3, max_len=8)
    assert greedy.tokens.shape[0] == beam.tokens.shape[0] == 3
    for b in range(3):  # a batched beam equals the sentence searched alone
        n = int(batch["src_lengths"][b])
        alone = model.search(batch["src"][b : b + 1, :n], batch["src_lengths"][b : b + 1], beam_size=3, max_len=8)
        assert abs(float(beam.scores[b]) - float(alone.scores[0])) < 1e-4
