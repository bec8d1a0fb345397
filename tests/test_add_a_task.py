"""docs/architecture.md's "How to add a task", followed to the letter: a toy task written as one new file
in the zoo/tasks package plus one registry entry, and nothing else touched, trains (fast_dev_run),
predicts, is scored and exports -- or, where it declares no graphs, refuses in one clear line."""

from __future__ import annotations

import sys
import textwrap

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

import zoo.tasks
from zoo.hub import registry

# The task's own file, as the guide says to write it: equations in the docstring, the data it is built
# from, build(), forward, the Lightning steps, predict/predict_step, and what export needs.
TOY_TASK = textwrap.dedent('''
    """`ParityReader`: many-to-one -- a string of 0s and 1s in, whether it holds an odd number of 1s out.

        h_t = GRU(E x_t, h_{t-1});   p(odd | x) = softmax(W h_T)
    """

    from __future__ import annotations

    from typing import Any, Dict, List, Optional

    import torch
    import torch.nn.functional as F
    from torch import Tensor, nn

    from zoo.graphs import Graph, batch_axes
    from zoo.recurrent import Recurrent
    from zoo.sequences import evaluating, top_state
    from zoo.tasks.base import TaskModule


    class ParityReader(TaskModule):
        data_hparams = {"symbols": "symbols"}
        required_data = ("symbols",)
        must_match = ("symbols",)

        def __init__(self, symbols: Optional[List[str]] = None, hidden_size: int = 8, lr: float = 1e-2) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.build_if_ready()

        def build(self) -> None:
            hp = self.hparams
            self.embed = nn.Embedding(len(hp.symbols), 4)
            self.rnn = Recurrent(4, hp.hidden_size, "gru")
            self.head = nn.Linear(hp.hidden_size, 2)

        def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
            return self.head(top_state(self.rnn(self.embed(ids), lengths=lengths).state, 1))

        def training_step(self, batch: Dict[str, Tensor], batch_idx: int) -> Tensor:
            loss = F.cross_entropy(self(batch["ids"], batch["lengths"]), batch["label"])
            self.log("train/loss", loss)
            return loss

        def validation_step(self, batch: Dict[str, Tensor], batch_idx: int) -> None:
            self.log("val/acc", (self(batch["ids"], batch["lengths"]).argmax(-1) == batch["label"]).float().mean())

        def test_step(self, batch: Dict[str, Tensor], batch_idx: int) -> None:
            self.log("test/acc", (self(batch["ids"], batch["lengths"]).argmax(-1) == batch["label"]).float().mean())

        def predict(self, inputs: Any, batch_size: int = 64) -> List[Dict[str, Any]]:
            self.check_built()
            texts = [inputs] if isinstance(inputs, str) else list(inputs)
            rows = [[self.hparams.symbols.index(c) for c in text] for text in texts]
            lengths = torch.tensor([len(r) for r in rows])
            ids = torch.zeros(len(rows), int(lengths.max()), dtype=torch.long)
            for k, r in enumerate(rows):
                ids[k, : len(r)] = torch.tensor(r)
            with evaluating(self):
                odd = torch.softmax(self(ids, lengths), -1)[:, 1]
            return [{"text": t, "odd": bool(p > 0.5), "probability": float(p)} for t, p in zip(texts, odd)]

        def predict_step(self, batch: Dict[str, Tensor], batch_idx: int = 0) -> List[Dict[str, Any]]:
            with evaluating(self):
                odd = torch.softmax(self(batch["ids"], batch["lengths"]), -1)[:, 1]
            return [{"index": int(i), "odd": bool(p > 0.5), "probability": float(p)} for i, p in zip(batch["index"], odd)]

        def export_graphs(self, batch: int = 2, length: int = 5) -> List[Graph]:
            inputs = {"ids": torch.randint(0, 2, (batch, length)), "lengths": torch.arange(length, length - batch, -1).clamp(min=1)}
            return [Graph("parity", ParityGraph(self), inputs, ["probs"], batch_axes(inputs, {}, {"ids": (1, "time")}))]


    class ParityGraph(nn.Module):
        def __init__(self, model: ParityReader) -> None:
            super().__init__()
            self.model = model

        def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
            return torch.softmax(self.model(ids, lengths), -1)
''')


class ParityData(L.LightningDataModule):
    """Random strings of 0s and 1s of lengths 1..8, labelled by their parity (the test's own data)."""

    symbols = ["0", "1"]

    def batches(self, seed: int):
        gen = torch.Generator().manual_seed(seed)
        rows = []
        for index in range(32):
            length = int(torch.randint(1, 9, (1,), generator=gen))
            ids = torch.randint(0, 2, (8,), generator=gen) * (torch.arange(8) < length)
            rows.append({"ids": ids, "lengths": torch.tensor(length), "label": ids.sum() % 2, "index": torch.tensor(index)})
        return DataLoader(rows, batch_size=8)

    def train_dataloader(self):
        return self.batches(0)

    def val_dataloader(self):
        return self.batches(1)

    def test_dataloader(self):
        return self.batches(2)


@pytest.fixture
def toy_task(tmp_path, monkeypatch):
    """Step 1: the task's file in the zoo/tasks package (here a folder added to it, so the checkout is
    untouched); step 2: its registry entry. Nothing else."""
    (tmp_path / "parity_reader.py").write_text(TOY_TASK, encoding="utf-8")
    monkeypatch.setattr(zoo.tasks, "__path__", [*zoo.tasks.__path__, str(tmp_path)])
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry.register_model(
        "parity_toy",
        task="zoo.tasks.parity_reader.ParityReader",
        init_args={"hidden_size": 8},
        description="a GRU reading a bit string: is its number of 1s odd?",
    )
    yield
    sys.modules.pop("zoo.tasks.parity_reader", None)


def test_a_task_added_as_the_guide_says_trains_predicts_scores_and_refuses_export_clearly(toy_task, tmp_path):
    from zoo.export import ExportError, export
    from zoo.scoring import score
    from zoo.tasks.base import TaskModule, create_model

    torch.manual_seed(0)
    model = create_model("parity_toy")  # through the registry entry, resolved like every zoo task
    assert type(model).__module__ == "zoo.tasks.parity_reader" and not model.built  # built from the data at setup
    data = ParityData()
    L.Trainer(fast_dev_run=True, logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu").fit(
        model, datamodule=data
    )
    assert model.built and model.hparams.symbols == ["0", "1"]

    [odd, even] = model.predict(["0111", "0110"])
    assert set(odd) == {"text", "odd", "probability"} and odd["text"] == "0111" and 0 < even["probability"] < 1

    scores = score(model, data)  # TaskModule.score: the task's own test step on the datamodule's test split
    assert set(scores) == {"test_acc"} and 0 <= scores["test_acc"] <= 1
    with pytest.raises(ValueError, match="a ParityReader names no scorer: score it on a datamodule"):
        score(model)

    class Unexported(type(model)):  # a task that declares no graphs is refused in one line, saying so
        export_graphs = TaskModule.export_graphs

    with pytest.raises(ExportError, match=r"^Unexported is not exportable: the task declares no inference graphs"):
        export(Unexported(symbols=["0", "1"]), tmp_path / "none")


@pytest.mark.slow
def test_the_added_task_exports_its_declared_graph(toy_task, tmp_path):
    from zoo.export import export, graphs
    from zoo.tasks.base import create_model

    torch.manual_seed(0)
    model = create_model("parity_toy", symbols=["0", "1"]).eval()
    written = export(model, tmp_path / "graphs", formats=("pt2",))
    assert [p.name for p in written["pt2"]] == ["parity.pt2"]
    program = torch.export.load(str(tmp_path / "graphs" / "parity.pt2")).module()
    [graph] = graphs(model, batch=3, length=7)  # other batch and length: both axes stayed dynamic
    with torch.no_grad():
        torch.testing.assert_close(program(**graph.inputs), graph.module(**graph.inputs), atol=1e-5, rtol=1e-5)
