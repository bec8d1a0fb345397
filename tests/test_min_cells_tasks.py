"""minGRU and minLSTM in the tasks and the hidden-unit tools: built from ``cell: mingru | minlstm``,
trained end to end by ``zoo fit`` (char LM, classifier), their units and gradients readable."""

import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO, shared_data
from zoo.gradients import gradient_through_time, lm_gradient_through_time
from zoo.recurrent import Recurrent
from zoo.tasks.classifier import SequenceClassifier
from zoo.tasks.language_model import CharLanguageModel
from zoo.viz import activations

VOCAB = ["<unk>"] + list("abcdefgh \n")


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_char_lm_trains_carries_state_and_exposes_units(cell):
    torch.manual_seed(0)
    model = CharLanguageModel(vocab=VOCAB, cell=cell, hidden_size=12, embedding_dim=8, num_layers=2)
    ids = torch.randint(1, len(VOCAB), (3, 20))
    logits, state = model(ids)
    assert logits.shape == (3, 20, len(VOCAB)) and state.shape == (2, 3, 12)
    torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids.flatten()).backward()
    assert all(p.grad is not None for p in model.parameters())
    continued, _ = model(ids[:, 10:], model(ids[:, :10])[1])  # the state of the first window carried
    torch.testing.assert_close(continued, logits[:, 10:], atol=1e-5, rtol=0)
    acts = activations(model, "abc def\nghab " * 3)  # the tool `zoo visualize` uses
    expected = {"hidden", "candidate", *(("update",) if cell == "mingru" else ("forget", "input"))}
    assert {kind for kind, _ in acts} == expected and acts[("hidden", 1)].shape == (39, 12)
    assert model.rnn.backend == "native"  # activations() switched to the cells backend and back
    norms = lm_gradient_through_time(model, ids)
    assert len(norms) == 2 and norms[0]["hidden"].shape == (3, 19)


def test_gradient_through_time_of_the_step_equals_autograd_through_the_scan():
    torch.manual_seed(0)
    rnn = Recurrent(3, 5, "mingru").double()
    x = torch.randn(2, 7, 3, dtype=torch.float64)
    measured = gradient_through_time(rnn, x, lambda out: out[:, -1].square().sum())[0]["hidden"]
    outputs = rnn(x).output  # the scan: d loss / d h_t through every later step, by autograd
    hidden = outputs.detach().requires_grad_()
    # h_T's loss through the scan from h_t: rerun the scan from each h_t as the carried state
    for t in range(6):
        h_t = hidden[:, t].clone().requires_grad_()
        rest = rnn(x[:, t + 1 :], state=h_t.unsqueeze(0)).output
        (grad,) = torch.autograd.grad(rest[:, -1].square().sum(), h_t)
        torch.testing.assert_close(measured[:, t], grad.norm(dim=-1))


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_classifier_with_padding(cell):
    from datamodules.tokenizers import train_tokenizer

    torch.manual_seed(0)
    tokenizer = train_tokenizer(["a good film", "a bad film", "good and good"], vocab_size=50, min_frequency=1).to_str()
    model = SequenceClassifier(tokenizer, ["neg", "pos"], cell=cell, embedding_dim=8, hidden_size=6, bidirectional=True).eval()
    ids, lengths = torch.tensor([[1, 2, 3, 0, 0], [1, 2, 3, 4, 2]]), torch.tensor([3, 5])
    logits = model(ids, lengths)
    torch.testing.assert_close(logits[0], model(ids[:1, :3], lengths[:1])[0], atol=1e-5, rtol=0)


def run_zoo(tmp_path, *args):
    env = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "offline"}
    return subprocess.run(
        [sys.executable, "-m", "zoo.cli", *args, "--trainer.enable_progress_bar", "false"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


@pytest.mark.slow
def test_zoo_fit_char_lm_with_mingru(tiny_corpus, tmp_path):
    run = run_zoo(
        tmp_path,
        "fit",
        "--config",
        str(REPO / "recipes" / "char_lm.yaml"),
        "--model.init_args.cell",
        "mingru",
        "--data.init_args.corpus",
        str(tiny_corpus),
        "--model.init_args.hidden_size",
        "16",
        "--data.init_args.batch_size",
        "4",
        "--data.init_args.seq_len",
        "16",
        "--trainer.fast_dev_run",
        "true",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "sample (end of training" in run.stdout
    bad = run_zoo(
        tmp_path,
        "fit",
        "--config",
        str(REPO / "recipes" / "char_lm.yaml"),
        "--model.init_args.cell",
        "mingur",
        "--data.init_args.corpus",
        str(tiny_corpus),
        "--trainer.fast_dev_run",
        "true",
    )
    assert bad.returncode == 2 and "'mingru', 'minlstm'" in bad.stderr, bad.stderr[-2000:]


@pytest.mark.slow
def test_zoo_fit_classifier_with_minlstm(tmp_path):
    sample = shared_data("ag_news", "sample.csv")
    run = run_zoo(
        tmp_path,
        "fit",
        "--config",
        str(REPO / "recipes" / "agnews_gru.yaml"),
        "--model.init_args.cell",
        "minlstm",
        "--trainer.fast_dev_run",
        "true",
        "--data.init_args.root",
        str(sample),
        "--data.init_args.cache_dir",
        str(tmp_path / "cache"),
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
