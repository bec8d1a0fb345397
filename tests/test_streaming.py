"""zoo/streaming.py: every task's stream, one input at a time with the state carried, equals the
whole-sequence forward (to 1e-5) for every cell family and both backends; bidirectional models are
refused with the reason."""

from __future__ import annotations

import pytest
import torch

from datamodules.tokenizers import BOS_ID, EOS_ID, train_tokenizer
from tests.test_seq2seq import make as make_translator
from tests.test_seq2seq import tokenizers  # noqa: F401  (a fixture)
from zoo.families import CELLS
from zoo.recurrent import BACKENDS
from zoo.tasks.classifier import SequenceClassifier
from zoo.tasks.frame_classifier import FrameClassifier
from zoo.tasks.language_model import CharLanguageModel

FAMILIES = sorted(CELLS)  # every cell family Recurrent runs
VOCAB = ["<unk>"] + list("abcdefgh \n")
EXACT = dict(atol=1e-5, rtol=1e-5)


def families_and_backends():
    return [(cell, backend) for cell in FAMILIES for backend in BACKENDS]


@pytest.mark.parametrize("cell,backend", families_and_backends())
def test_char_lm_scores_and_generates_like_the_whole_sequence(cell, backend):
    torch.manual_seed(0)
    model = CharLanguageModel(vocab=VOCAB, cell=cell, hidden_size=12, embedding_dim=6, num_layers=2, backend=backend).eval()
    text = "abc defgh\nhag bead"
    ids = torch.tensor([[VOCAB.index(c) for c in text]])
    whole = torch.log_softmax(model(ids)[0][0], -1)
    stream = model.stream()
    by_char = torch.cat([stream.step(c) for c in text])
    torch.testing.assert_close(by_char, whole, **EXACT)
    stream.reset()
    half = len(text) // 2
    chunked = torch.cat([stream.read(text[:half]), stream.read(text[half:])])  # chunks, the state carried
    torch.testing.assert_close(chunked, whole, **EXACT)
    # generating: greedy through the stream = greedy by re-reading the whole text each time
    generated = model.generate("ab", 8, temperature=0)
    for t in range(2, len(generated)):
        prefix = torch.tensor([[VOCAB.index(c) for c in generated[:t]]])
        logits = model(prefix)[0][0, -1]
        logits[0] = float("-inf")
        assert VOCAB[int(logits.argmax())] == generated[t]


def test_char_stream_batches_and_refuses_a_text_in_step():
    torch.manual_seed(0)
    model = CharLanguageModel(vocab=VOCAB, hidden_size=8, embedding_dim=4).eval()
    ids = torch.randint(1, len(VOCAB), (3, 5))
    stream = model.stream()
    steps = torch.stack([stream.step(ids[:, t]) for t in range(5)], 1)
    torch.testing.assert_close(steps, torch.log_softmax(model(ids)[0], -1), **EXACT)
    with pytest.raises(ValueError, match="step takes one character, got 3"):
        stream.step("abc")


@pytest.fixture(scope="module")
def tokenizer_json():
    texts = ["a great film", "an awful film", "great acting , loved it", "boring , awful acting"]
    return train_tokenizer(texts, vocab_size=60, min_frequency=1).to_str()


@pytest.mark.parametrize("pool", ["last", "mean", "max", "attention", "last+max+mean+attention"])
@pytest.mark.parametrize("cell,backend", families_and_backends())
def test_classifier_running_label_equals_each_prefix(tokenizer_json, cell, backend, pool):
    torch.manual_seed(0)
    model = SequenceClassifier(
        tokenizer_json,
        ["neg", "pos", "meh"],
        cell=cell,
        backend=backend,
        pool=pool,
        embedding_dim=8,
        hidden_size=6,
        num_layers=2,
        bidirectional=False,
    ).eval()
    ids = torch.randint(4, model.tokenizer.get_vocab_size(), (2, 9), generator=torch.Generator().manual_seed(1))
    stream = model.stream()
    running = torch.stack([stream.step(ids[:, t]) for t in range(ids.shape[1])], 1)
    prefixes = torch.stack([torch.softmax(model(ids[:, : t + 1]), -1) for t in range(ids.shape[1])], 1)
    torch.testing.assert_close(running, prefixes, **EXACT)


def test_classifier_reads_text_and_refuses_bidirectional(tokenizer_json):
    torch.manual_seed(0)
    model = SequenceClassifier(tokenizer_json, ["neg", "pos"], embedding_dim=8, hidden_size=6, bidirectional=False, pool="mean")
    probs = model.stream().read("a great film")
    assert probs.shape == (3, 2)
    torch.testing.assert_close(
        probs[-1], torch.softmax(model(torch.tensor([model.tokenizer.encode("a great film").ids])), -1)[0], **EXACT
    )
    bi = SequenceClassifier(tokenizer_json, ["neg", "pos"], embedding_dim=8, hidden_size=6, bidirectional=True)
    with pytest.raises(
        ValueError, match="bidirectional and cannot stream: its backward direction reads each sequence from its last step"
    ):
        bi.stream()


def frame_model(**overrides) -> FrameClassifier:
    torch.manual_seed(0)
    args = dict(label_names=["red", "green", "blue"], encoder="zoo_frame_cnn", hidden_size=8, num_layers=2)
    return FrameClassifier(**{**args, **overrides}).eval()


@pytest.mark.parametrize("cell,backend", families_and_backends())
def test_frame_stream_equals_the_whole_clip(cell, backend):
    model = frame_model(cell=cell, backend=backend)
    clip = torch.randint(0, 256, (2, 6, 3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    stream = model.stream()
    online = torch.stack([stream.step(clip[:, t]) for t in range(clip.shape[1])], 1)
    torch.testing.assert_close(online, torch.softmax(model(clip), -1), **EXACT)


@pytest.mark.parametrize("overrides", [dict(target="clip"), dict(recurrent=False), dict(recurrent=False, target="clip")])
def test_frame_stream_clip_targets_and_the_baseline(overrides):
    model = frame_model(**overrides)
    clip = torch.randint(0, 256, (1, 5, 3, 32, 32), generator=torch.Generator().manual_seed(2), dtype=torch.uint8)
    stream = model.stream()
    online = torch.stack([stream.step(clip[:, t]) for t in range(clip.shape[1])], 1)
    if model.hparams.target == "clip":  # after frame t: the clip label of frames 1..t
        expected = torch.stack([torch.softmax(model(clip[:, : t + 1]), -1) for t in range(clip.shape[1])], 1)
    else:
        expected = torch.softmax(model(clip), -1)
    torch.testing.assert_close(online, expected, **EXACT)


def test_predict_online_equals_predict_and_bidirectional_is_refused():
    model = frame_model()
    clips = [
        torch.randint(0, 256, (n, 32, 32, 3), generator=torch.Generator().manual_seed(n), dtype=torch.uint8).numpy()
        for n in (4, 7)
    ]
    offline, online = model.predict(clips), model.predict_online(clips)
    assert [r["labels"] for r in online] == [r["labels"] for r in offline]
    for a, b in zip(online, offline):
        torch.testing.assert_close(a["probs"], b["probs"], **EXACT)
    with pytest.raises(ValueError, match="frame classifier is bidirectional and cannot stream"):
        frame_model(bidirectional=True).stream()


@pytest.mark.parametrize("attention", ["none", "additive", "general"])
@pytest.mark.parametrize("cell,backend", families_and_backends())
def test_translator_greedy_through_the_stream_equals_predict(tokenizers, cell, backend, attention):  # noqa: F811
    model = make_translator(tokenizers, cell=cell, backend=backend, attention=attention, decoder_layers=2)
    sentence = "ein mann sieht eine katze."
    expected = model.predict(sentence, beam_size=1, max_len=12)[0]
    stream = model.stream(sentence)
    tokens, previous, score = [], BOS_ID, 0.0
    while len(tokens) < 12:
        log_probs = stream.step(previous)
        best, previous = log_probs.max(-1)
        score += float(best)
        tokens.append(int(previous))
        if tokens[-1] == EOS_ID:
            break
    assert model.pieces("target", tokens) == expected["target_tokens"]
    assert score == pytest.approx(expected["score"], abs=1e-5)
    if attention != "none":
        torch.testing.assert_close(stream.attention[0, : len(expected["source_tokens"])], expected["attention"][-1], **EXACT)
