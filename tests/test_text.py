"""datamodules/tokenizers.py, loaders.py, text.py and download.cached: tokenizer, truncation, cache,
collate, bucketing sampler (incl. how Lightning treats it under DDP)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler

from datamodules.download import cached
from datamodules.loaders import BucketBatchSampler, pad_collate, padding_fraction
from datamodules.text import EncodedTexts, stratified_split
from datamodules.tokenizers import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    UNK_ID,
    encode_texts,
    load_tokenizer,
    pack,
    train_tokenizer,
    truncate,
)

TEXTS = [
    "This movie was GREAT.<br /><br />I loved it!",
    "Terrible film<br/>boring plot, awful acting",
    "great acting and a great plot",
    "ﬁne, but the plot was boring",  # the ﬁ ligature: NFKC turns it into "fi"
]


# ---- tokenizer ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["word", "bpe"])
def test_tokenizer_specials_normalization_and_json(kind):
    tok = train_tokenizer(TEXTS, kind=kind, vocab_size=200, min_frequency=1)
    vocab = tok.get_vocab()
    assert [vocab[t] for t in ("<pad>", "<unk>", "<bos>", "<eos>")] == [PAD_ID, UNK_ID, BOS_ID, EOS_ID]
    assert tok.normalizer.normalize_str("GREAT<br /><br />ﬁne <i>x</i> a < b") == "great  fine  x  a < b"
    tokens = tok.encode("GREAT<br />plot", add_special_tokens=False).tokens
    assert "<" not in "".join(tokens) and "br" not in tokens
    again = load_tokenizer(json.loads(json.dumps(tok.to_str())))  # a JSON string, as in hparams/checkpoints
    assert again.encode("great boring plot").ids == tok.encode("great boring plot").ids
    # an unseen word is one <unk>; BPE, which builds words from characters, has one per unseen character
    assert encode_texts(tok, ["zzzqqq"]) == {"word": [[UNK_ID]], "bpe": [[UNK_ID] * 6]}[kind]


def test_tokenizer_limits():
    texts = ["a a a b b c"] * 1
    small = train_tokenizer(texts, vocab_size=5, min_frequency=1)  # 4 specials + 1 word
    assert small.get_vocab_size() == 5 and "a" in small.get_vocab()
    frequent = train_tokenizer(texts, vocab_size=100, min_frequency=2)  # c is seen once
    assert {"a", "b"} <= set(frequent.get_vocab()) and "c" not in frequent.get_vocab()
    with pytest.raises(ValueError, match="vocab_size"):
        train_tokenizer(texts, vocab_size=4)


def test_truncate_policies():
    ids = torch.arange(100)
    assert truncate(ids, None).equal(ids) and truncate(ids, 200).equal(ids)
    assert truncate(ids, 8, "head").tolist() == list(range(8))
    assert truncate(ids, 8, "tail").tolist() == list(range(92, 100))
    assert truncate(ids, 8, "head_tail").tolist() == [0, 1, 94, 95, 96, 97, 98, 99]
    with pytest.raises(ValueError, match="truncation"):
        truncate(ids, 8, "middle")


# ---- dataset, collate ----------------------------------------------------------------------------
def make_dataset(lengths, max_tokens=None):
    flat, offsets = pack([[i % 50 + 4] * n for i, n in enumerate(lengths)])
    return EncodedTexts(flat, offsets, torch.arange(len(lengths)) % 2, max_tokens=max_tokens)


def test_dataset_and_collate():
    ds = make_dataset([3, 1, 5], max_tokens=4)
    assert ds.lengths.tolist() == [3, 1, 4] and ds.full_lengths.tolist() == [3, 1, 5]
    batch = pad_collate([ds[0], ds[1], ds[2]])
    assert batch["ids"].shape == (3, 4) and batch["ids"].dtype == torch.long
    assert batch["lengths"].tolist() == [3, 1, 4] and batch["labels"].tolist() == [0, 1, 0]
    assert (batch["ids"][1, 1:] == PAD_ID).all() and (batch["ids"][0, :3] != PAD_ID).all()


def test_stratified_split():
    labels = [0] * 30 + [1] * 10
    keep, held = stratified_split(labels, 0.2, seed=1)
    assert sorted(keep + held) == list(range(40)) and not set(keep) & set(held)
    assert sum(labels[i] for i in held) == 2 and len(held) == 8
    assert stratified_split(labels, 0.2, seed=1) == (keep, held)
    assert stratified_split(labels, 0.2, seed=2)[1] != held


# ---- bucketing sampler ----------------------------------------------------------------------------
LENGTHS = [int(x) for x in torch.randint(1, 300, (1000,), generator=torch.Generator().manual_seed(0))]


def test_bucket_sampler_covers_everything_and_is_deterministic():
    s = BucketBatchSampler(None, 32, lengths=LENGTHS, seed=7)
    epoch0 = list(s)
    assert sorted(i for b in epoch0 for i in b) == list(range(1000)) and len(s) == len(epoch0) == 32
    assert list(BucketBatchSampler(None, 32, lengths=LENGTHS, seed=7)) == epoch0  # same seed, same batches
    s.set_epoch(1)
    assert list(s) != epoch0 and sorted(i for b in s for i in b) == list(range(1000))
    assert list(BucketBatchSampler(None, 32, True, lengths=LENGTHS)) == list(BucketBatchSampler(None, 32, True, lengths=LENGTHS))
    assert all(len(b) == 32 for b in BucketBatchSampler(None, 32, True, lengths=LENGTHS))
    # little padding compared with random batches
    random = [p.tolist() for p in torch.randperm(1000, generator=torch.Generator().manual_seed(0)).split(32)]
    assert padding_fraction(epoch0, LENGTHS) < 0.1 < padding_fraction(random, LENGTHS)
    evaluation = BucketBatchSampler(None, 64, lengths=LENGTHS, shuffle=False)
    assert sorted(i for b in evaluation for i in b) == list(range(1000))


@pytest.mark.parametrize("shuffle", [True, False])
def test_bucket_sampler_ddp_shards_are_disjoint(shuffle):
    ranks = [BucketBatchSampler(None, 16, lengths=LENGTHS, shuffle=shuffle, num_replicas=3, rank=r, seed=5) for r in range(3)]
    for s in ranks:
        s.set_epoch(2)
    shards = [[i for b in s for i in b] for s in ranks]
    for a in range(3):
        assert len(list(ranks[a])) == len(ranks[a])
        for b in range(a + 1, 3):
            assert not set(shards[a]) & set(shards[b])
    covered = set().union(*map(set, shards))
    if shuffle:  # even: every rank the same number of steps, at most R - 1 batches skipped
        assert len({len(s) for s in ranks}) == 1
        assert len(covered) >= 1000 - 2 * 16
    else:  # evaluation sees everything exactly once
        assert covered == set(range(1000))
    with pytest.raises(ValueError, match="too few"):
        BucketBatchSampler(None, 600, lengths=LENGTHS[:2], num_replicas=3, rank=0)


def test_lightning_injected_distributed_sampler_keeps_our_batches():
    """What Lightning 2.6 does under DDP with use_distributed_sampler=True: the dataloader is built inside
    its hook (arguments recorded), then rebuilt with sampler=DistributedSampler(...). Our batch sampler
    must survive that with the same batches, and follow set_epoch via batch_sampler.sampler."""
    from lightning.fabric.utilities.data import _replace_dunder_methods, _set_sampler_epoch
    from lightning.pytorch.trainer.states import RunningStage
    from lightning.pytorch.utilities.data import _update_dataloader

    ds = make_dataset(LENGTHS)
    with _replace_dunder_methods(DataLoader, "dataset"), _replace_dunder_methods(BatchSampler):
        loader = DataLoader(
            ds,
            batch_sampler=BucketBatchSampler(None, 32, False, lengths=ds.lengths, seed=3, num_replicas=2, rank=1),
            collate_fn=pad_collate,
        )
    ours = list(loader.batch_sampler)
    injected = _update_dataloader(
        loader, DistributedSampler(ds, num_replicas=2, rank=1, shuffle=True), mode=RunningStage.TRAINING
    )
    assert isinstance(injected.batch_sampler, BucketBatchSampler)
    assert (injected.batch_sampler.num_replicas, injected.batch_sampler.rank) == (2, 1)
    assert list(injected.batch_sampler) == ours
    _set_sampler_epoch(injected, 4)
    loader.batch_sampler.set_epoch(4)
    assert injected.batch_sampler.epoch == 4 and list(injected.batch_sampler) == list(loader.batch_sampler) != ours


def test_lightning_leaves_sampler_alone_without_ddp(tmp_path):
    """A real Trainer (1 process): the batch sampler reaching the loop is ours, epoch advanced by Lightning."""
    import lightning as L

    ds = make_dataset(LENGTHS[:200])
    seen = []

    class Probe(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def train_dataloader(self):
            return DataLoader(ds, batch_sampler=BucketBatchSampler(None, 50, lengths=ds.lengths, seed=1), collate_fn=pad_collate)

        def on_train_epoch_start(self):
            bs = self.trainer.train_dataloader.batch_sampler
            seen.append((type(bs).__name__, bs.epoch, [b for b in bs]))

        def training_step(self, batch, i):
            return (self.w * batch["ids"].float().mean()).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), 0.1)

    L.Trainer(
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    ).fit(Probe())
    assert [s[:2] for s in seen] == [("BucketBatchSampler", 0), ("BucketBatchSampler", 1)]
    assert seen[0][2] != seen[1][2]


# ---- cache ----------------------------------------------------------------------------------------
def test_cache_builds_once_and_keys_on_file_identity(tmp_path):
    src = tmp_path / "data.txt"
    src.write_text("one")
    calls = []

    def build():
        calls.append(1)
        return {"ids": torch.arange(3), "name": src.read_text(), "nested": {"x": [1, 2]}}

    first = cached("t", [src], {"a": 1}, build, tmp_path / "cache")
    second = cached("t", [src], {"a": 1}, build, tmp_path / "cache")
    assert len(calls) == 1 and second["ids"].equal(first["ids"]) and second["nested"] == {"x": [1, 2]}
    cached("t", [src], {"a": 2}, build, tmp_path / "cache")  # other settings: rebuilt
    assert len(calls) == 2
    src.write_text("two!")  # size + mtime change
    assert cached("t", [src], {"a": 1}, build, tmp_path / "cache")["name"] == "two!" and len(calls) == 3
    assert not list((tmp_path / "cache").glob(".*partial"))


def test_cache_failed_build_leaves_nothing_and_corrupt_entry_is_rebuilt(tmp_path):
    src = tmp_path / "data.txt"
    src.write_text("x")

    def broken():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        cached("t", [src], {}, broken, tmp_path / "c")
    assert list((tmp_path / "c").iterdir()) == []
    cached("t", [src], {}, lambda: {"v": torch.ones(2)}, tmp_path / "c")
    (entry,) = (tmp_path / "c").iterdir()
    entry.write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="unreadable cache entry"):
        assert cached("t", [src], {}, lambda: {"v": torch.zeros(2)}, tmp_path / "c")["v"].sum() == 0
    assert [p.name for p in (tmp_path / "c").iterdir()] == [entry.name]


DDP_SCRIPT = r"""
import json, sys
import lightning as L, torch
from datamodules.loaders import BucketBatchSampler, pad_collate
from datamodules.text import EncodedTexts
from datamodules.tokenizers import pack
from torch.utils.data import DataLoader

lengths = [int(x) for x in torch.randint(1, 60, (300,), generator=torch.Generator().manual_seed(0))]
flat, offsets = pack([[5] * n for n in lengths])
ds = EncodedTexts(flat, offsets, torch.zeros(300, dtype=torch.long))

class Probe(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
    def train_dataloader(self):  # what TextClassificationDataModule does: world and rank from the trainer
        t = self.trainer
        return DataLoader(ds, batch_sampler=BucketBatchSampler(None, 16, lengths=ds.lengths, seed=3,
                          num_replicas=t.world_size, rank=t.global_rank), collate_fn=pad_collate)
    def on_train_epoch_start(self):
        bs = self.trainer.train_dataloader.batch_sampler
        self.seen = {"type": type(bs).__name__, "sampler": type(bs.sampler).__name__, "world": bs.num_replicas,
                     "epoch": bs.epoch, "batches": list(bs), "steps": 0}
    def training_step(self, batch, i):
        self.seen["steps"] += 1
        return (self.w * batch["ids"].float().mean()).sum()
    def on_train_epoch_end(self):
        with open(f"{sys.argv[1]}/rank{self.global_rank}-epoch{self.current_epoch}.json", "w") as f:
            json.dump(self.seen, f)
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), 0.1)

L.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=2, logger=False, enable_checkpointing=False,
          enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=sys.argv[2] == "1",
          default_root_dir=sys.argv[1]).fit(Probe())
"""


@pytest.mark.slow
@pytest.mark.parametrize("use_distributed_sampler", [True, False])
def test_real_cpu_ddp_two_processes(tmp_path, use_distributed_sampler):
    """2-process CPU DDP: each rank gets its own disjoint shard of bucketed batches, the same number of
    steps, a new order each epoch, whether Lightning injects its DistributedSampler or not."""
    import subprocess
    import sys

    script = tmp_path / "ddp_probe.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path), "1" if use_distributed_sampler else "0"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = {(r, e): json.loads((tmp_path / f"rank{r}-epoch{e}.json").read_text()) for r in (0, 1) for e in (0, 1)}
    for (rank, epoch), s in seen.items():
        assert (s["type"], s["world"], s["epoch"]) == ("BucketBatchSampler", 2, epoch)
        assert s["sampler"] == ("DistributedSampler" if use_distributed_sampler else "_Epoch")
        assert s["steps"] == len(s["batches"])
        lengths = [int(x) for x in torch.randint(1, 60, (300,), generator=torch.Generator().manual_seed(0))]
        expected = BucketBatchSampler(None, 16, lengths=lengths, seed=3, num_replicas=2, rank=rank)
        expected.set_epoch(epoch)
        assert s["batches"] == list(expected)
    for epoch in (0, 1):
        a, b = seen[(0, epoch)]["batches"], seen[(1, epoch)]["batches"]
        assert len(a) == len(b) and not {i for x in a for i in x} & {i for x in b for i in x}
    assert seen[(0, 0)]["batches"] != seen[(0, 1)]["batches"]
