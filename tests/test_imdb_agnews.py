"""IMDB and AG News datamodules on format-faithful fixtures made here, bad input, the real-data slices
in ../shared/data (skipped where absent), and the CLI end to end (skipped until zoo.cli exists)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

from datamodules.ag_news import AGNewsDataModule, clean
from datamodules.download import DataFormatError
from datamodules.imdb import IMDBDataModule
from datamodules.loaders import padding_fraction
from tests.fixtures import ag_rows, imdb_members, write_csv, write_folder, write_tar

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
IMDB_DEV = SHARED / "imdb" / "aclImdb_dev.tar.gz"
AG_SAMPLE = SHARED / "ag_news" / "sample.csv"


def imdb(root, tmp_path, **kw) -> IMDBDataModule:
    kw.setdefault("min_frequency", 1)
    kw.setdefault("val_fraction", 0.25)
    dm = IMDBDataModule(root=str(root), cache_dir=str(tmp_path / "cache"), batch_size=4, **kw)
    dm.setup()
    return dm


# ---- IMDB -----------------------------------------------------------------------------------------
def test_imdb_tarball_and_folder_agree(tmp_path):
    members = imdb_members()
    from_tar = imdb(write_tar(tmp_path / "aclImdb_v1.tar.gz", members), tmp_path)
    from_dir = imdb(write_folder(tmp_path / "x", members), tmp_path / "other")
    assert {k: len(v) for k, v in from_tar.datasets.items()} == {"train": 18, "val": 6, "test": 24}
    assert from_tar.label_names == ["neg", "pos"]
    assert from_tar.datasets["val"].labels.bincount().tolist() == [3, 3]  # stratified
    assert from_tar.datasets["test"].labels.tolist() == [0] * 12 + [1] * 12
    assert from_tar.tokenizer_json == from_dir.tokenizer_json  # "unsup", README, ... ignored alike
    for split in ("train", "val", "test"):
        assert from_tar.datasets[split].ids.equal(from_dir.datasets[split].ids)
    assert "unlabeled" not in from_tar.tokenizer_json and "<br" not in from_tar.tokenizer_json
    assert imdb(tmp_path / "x" / "aclImdb", tmp_path / "third").datasets["train"].ids.equal(from_dir.datasets["train"].ids)
    batch = next(iter(from_tar.train_dataloader()))
    assert set(batch) == {"ids", "lengths", "labels", "index", "source"} and batch["ids"].shape[0] == 4
    assert all("aclImdb/train/" in source for source in batch["source"])
    # predict: the test split in file order, each example named by its index, its file and its text
    predicted = list(from_dir.predict_dataloader())
    assert [i for b in predicted for i in b["index"].tolist()] == list(range(24))
    first = predicted[0]
    assert "aclImdb/test/neg/0_" in first["source"][0] and first["text"][0] == Path(first["source"][0]).read_text()


def test_imdb_cache_second_run_and_invalidation(tmp_path):
    archive = write_tar(tmp_path / "a.tar.gz", imdb_members())
    first = imdb(archive, tmp_path)
    entries = list((tmp_path / "cache").glob("imdb-*.pt"))
    assert len(entries) == 1
    second = IMDBDataModule(root=str(archive), cache_dir=str(tmp_path / "cache"), min_frequency=1, val_fraction=0.25)
    second.read = None  # a cache hit must not read the files again
    second.setup()
    assert second.datasets["train"].ids.equal(first.datasets["train"].ids)
    imdb(archive, tmp_path, vocab_size=10)  # another tokenizer setting: another entry
    assert len(list((tmp_path / "cache").glob("imdb-*.pt"))) == 2
    write_tar(archive, imdb_members(seed=1))  # the file changed: rebuilt
    assert not imdb(archive, tmp_path).datasets["train"].ids.equal(first.datasets["train"].ids)


def test_imdb_truncation_of_a_100000_word_review(tmp_path):
    members = imdb_members()
    members["aclImdb/train/pos/999_10.txt"] = ("I loved it. " + "great " * 100_000 + "The end, awful ending.").encode()
    dm = imdb(write_tar(tmp_path / "a.tar.gz", members), tmp_path, max_tokens=40, truncation="head_tail")
    full = torch.cat([dm.datasets[s].full_lengths for s in ("train", "val")])
    assert int(full.max()) > 100_000
    ds = dm.datasets["train"] if int(dm.datasets["train"].full_lengths.max()) > 100_000 else dm.datasets["val"]
    i = int(ds.full_lengths.argmax())
    item = ds[i]
    assert len(item["ids"]) == 40 and ds.lengths[i] == 40
    from datamodules.tokenizers import load_tokenizer

    words = load_tokenizer(dm.tokenizer_json).decode(item["ids"].tolist()).split()
    assert words[:5] == ["i", "loved", "it", ".", "great"] and words[-6:] == ["the", "end", ",", "awful", "ending", "."]


def test_imdb_bad_input(tmp_path):
    members = imdb_members()
    members["aclImdb/train/neg/5_1.txt"] = b"fine so far\nsecond line \xff\xfe broken"
    archive = write_tar(tmp_path / "bad.tar.gz", members)
    with pytest.raises(DataFormatError, match=r"bad\.tar\.gz:aclImdb/train/neg/5_1\.txt:2: invalid UTF-8"):
        imdb(archive, tmp_path)
    assert not list((tmp_path / "cache").glob("*"))  # nothing cached, not even half
    dm = imdb(archive, tmp_path, encoding_errors="replace")
    from datamodules.tokenizers import load_tokenizer

    assert any("\ufffd" in t for t in load_tokenizer(dm.tokenizer_json).get_vocab())  # bad bytes, replaced

    members = imdb_members()
    members["aclImdb/test/pos/3_9.txt"] = b"  \n"
    with pytest.raises(DataFormatError, match=r"aclImdb/test/pos/3_9\.txt: empty review"):
        imdb(write_tar(tmp_path / "empty.tar.gz", members), tmp_path)
    members["aclImdb/test/pos/3_9.txt"] = b"<br /><br />"
    with pytest.raises(DataFormatError, match=r"3_9\.txt: no tokens left"):
        imdb(write_tar(tmp_path / "markup.tar.gz", members), tmp_path)

    (tmp_path / "nothing").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no reviews"):
        imdb(tmp_path / "nothing", tmp_path)
    no_neg = {k: v for k, v in imdb_members().items() if "/test/neg/" not in k}
    with pytest.raises(FileNotFoundError, match=r"aclImdb/test/neg/"):
        imdb(write_tar(tmp_path / "noneg.tar.gz", no_neg), tmp_path)
    (tmp_path / "junk.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(DataFormatError, match="junk.tar.gz: not a readable tar archive"):
        imdb(tmp_path / "junk.tar.gz", tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        imdb(tmp_path / "missing", tmp_path)
    assert not list((tmp_path / "cache").glob("*.partial"))


# ---- AG News --------------------------------------------------------------------------------------
def ag(root, tmp_path, **kw) -> AGNewsDataModule:
    kw.setdefault("min_frequency", 1)
    dm = AGNewsDataModule(root=str(root), cache_dir=str(tmp_path / "cache"), batch_size=4, **kw)
    dm.setup()
    return dm


def test_ag_news_folder_single_csv_and_tarball(tmp_path):
    folder = tmp_path / "ag_news_csv"
    folder.mkdir()
    write_csv(folder / "train.csv", ag_rows(10))
    write_csv(folder / "test.csv", ag_rows(3, seed=1))
    (folder / "classes.txt").write_text("World\nSports\nBusiness\nSci/Tech\n")
    dm = ag(folder, tmp_path)
    assert dm.label_names == ["World", "Sports", "Business", "Sci/Tech"]
    assert {k: len(v) for k, v in dm.datasets.items()} == {"train": 36, "val": 4, "test": 12}
    assert dm.datasets["val"].labels.bincount().tolist() == [1, 1, 1, 1]
    assert "$" in dm.tokenizer_json and '"\\\\"' not in dm.tokenizer_json  # #36; decoded, backslash gone

    single = ag(write_csv(tmp_path / "slice.csv", ag_rows(10)), tmp_path, test_fraction=0.2)
    assert {k: len(v) for k, v in single.datasets.items()} == {"train": 28, "val": 4, "test": 8}
    assert single.datasets["test"].labels.bincount().tolist() == [2, 2, 2, 2]
    assert single.label_names == ["World", "Sports", "Business", "Sci/Tech"]  # no classes.txt: the defaults

    with tarfile.open(tmp_path / "ag_news_csv.tar.gz", "w:gz") as tar:
        tar.add(folder, arcname="ag_news_csv")
    from_tar = ag(tmp_path / "ag_news_csv.tar.gz", tmp_path / "t")
    assert from_tar.tokenizer_json == dm.tokenizer_json
    assert from_tar.datasets["test"].ids.equal(dm.datasets["test"].ids)


def test_ag_news_text_rule():
    assert clean("Oil hits #36;50 \\ a &lt;b&gt;record&lt;/b&gt; high") == "Oil hits $50 a <b>record</b> high"
    from datamodules.ag_news import join

    assert join(" Title ", "First\\line") == "Title\nFirst line"


@pytest.mark.parametrize(
    "row,error",
    [
        (["1", "only two"], r"bad\.csv:3: expected 3 columns"),
        (["1", "a", "b", "c"], r"bad\.csv:3: expected 3 columns"),
        (["5", "title", "text"], r"bad\.csv:3: class must be an integer in 1\.\.4, got '5'"),
        (["0", "title", "text"], r"bad\.csv:3: class must be"),
        (["World", "title", "text"], r"bad\.csv:3: class must be"),
        (["2", "", " "], r"bad\.csv:3: empty title and description"),
    ],
)
def test_ag_news_bad_rows_name_file_and_line(tmp_path, row, error):
    rows = ag_rows(2)
    rows.insert(2, row)
    with pytest.raises(DataFormatError, match=error):
        ag(write_csv(tmp_path / "bad.csv", rows), tmp_path)
    assert not list((tmp_path / "cache").glob("*.pt"))


def test_ag_news_bad_files(tmp_path):
    path = write_csv(tmp_path / "enc.csv", ag_rows(2))
    path.write_bytes(path.read_bytes() + b'"1","caf\xe9","latin-1 bytes"\n')
    with pytest.raises(DataFormatError, match=r"enc\.csv:9: invalid UTF-8"):
        ag(path, tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="lacks train.csv and test.csv"):
        ag(tmp_path / "empty", tmp_path)
    write_csv(tmp_path / "blank.csv", [])
    with pytest.raises(DataFormatError, match="blank.csv: no rows"):
        ag(tmp_path / "blank.csv", tmp_path)
    rows = ag_rows(3)
    path = write_csv(tmp_path / "withblank.csv", rows)
    path.write_text(path.read_text().replace("\n", "\n\n", 1))  # a blank line is skipped
    assert len(ag(path, tmp_path).datasets["test"]) == 4


# ---- real data (../shared/data) -------------------------------------------------------------------
@pytest.mark.realdata
@pytest.mark.skipif(not IMDB_DEV.is_file(), reason=f"{IMDB_DEV} not present")
def test_real_imdb_dev_tarball(tmp_path_factory, monkeypatch):
    # No clock: a time limit fails on a slower or busier CPU. Timings on an idle machine: docs/results.md.
    cache = tmp_path_factory.mktemp("imdb-cache")
    dm = IMDBDataModule(root=str(IMDB_DEV), cache_dir=str(cache), max_tokens=400)
    dm.setup()
    assert {k: len(v) for k, v in dm.datasets.items()} == {"train": 22500, "val": 2500, "test": 2000}
    assert dm.datasets["test"].labels.bincount().tolist() == [1000, 1000]
    assert dm.datasets["val"].labels.bincount().tolist() == [1250, 1250]
    vocab = len(__import__("json").loads(dm.tokenizer_json)["model"]["vocab"])
    assert vocab == 30_000

    def boom(*args, **kwargs):
        raise AssertionError("a cached IMDB was read and tokenized again")

    monkeypatch.setattr(IMDBDataModule, "_build", boom)
    again = IMDBDataModule(root=str(IMDB_DEV), cache_dir=str(cache), max_tokens=400)
    again.setup()
    assert again.datasets["test"].ids.equal(dm.datasets["test"].ids)
    ds = dm.datasets["train"]
    bucketed = list(dm.train_dataloader().batch_sampler)
    random_batches = [p.tolist() for p in torch.randperm(len(ds)).split(64)]
    assert padding_fraction(bucketed, ds.lengths) < 0.10 < padding_fraction(random_batches, ds.lengths)


@pytest.mark.realdata
@pytest.mark.skipif(not AG_SAMPLE.is_file(), reason=f"{AG_SAMPLE} not present")
def test_real_ag_news_sample(tmp_path):
    dm = ag(AG_SAMPLE, tmp_path, min_frequency=2)
    assert {k: len(v) for k, v in dm.datasets.items()} == {"train": 1440, "val": 160, "test": 400}
    assert dm.label_names == ["World", "Sports", "Business", "Sci/Tech"]
    assert dm.datasets["test"].labels.bincount().tolist() == [100] * 4
    assert "#36;" not in dm.tokenizer_json


# ---- CLI end to end -------------------------------------------------------------------------------
needs_cli = pytest.mark.skipif(importlib.util.find_spec("zoo.cli") is None, reason="zoo/cli.py not there yet")
needs_ag = pytest.mark.skipif(not AG_SAMPLE.is_file(), reason=f"{AG_SAMPLE} not present")


def zoo(tmp_path, *args):
    """``python -m zoo.cli ...`` run in tmp_path (the recipe's checkpoints/ and runs/ land there)."""
    env = {**__import__("os").environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "offline"}
    result = subprocess.run(
        [sys.executable, "-m", "zoo.cli", *args], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.mark.slow
@needs_cli
@pytest.mark.parametrize("recipe,own", [("agnews_gru.yaml", "test_fraction"), ("multi30k_attn.yaml", "source_lang")])
def test_variants_show_and_accept_every_parent_option(tmp_path, recipe, own):
    """AG News and Multi30k declare only their own arguments and the defaults they change; the rest
    pass through **kwargs, which the CLI follows: --print_config shows every parent option and
    --data.init_args.X overrides one."""
    out = zoo(
        tmp_path,
        "fit",
        "--config",
        str(REPO / "recipes" / recipe),
        "--data.init_args.bucket_batches",
        "7",
        "--data.init_args.num_workers",
        "1",
        "--print_config",
    ).stdout
    data = out[out.index("\ndata:") :]
    data = (data[: data.index("\noptimizer:")] if "\noptimizer:" in data else data) + "\n"
    for option in (
        own,
        "root",
        "tokenizer",
        "vocab_size",
        "min_frequency",
        "lowercase",
        "batch_size",
        "eval_batch_size",
        "bucket",
        "seed",
        "cache_dir",
    ):
        assert f"\n    {option}: " in data, (option, data)
    assert "\n    bucket_batches: 7\n" in data and "\n    num_workers: 1\n" in data


@pytest.mark.slow
@needs_cli
@needs_ag
def test_cli_fast_dev_run_agnews(tmp_path):
    zoo(
        tmp_path,
        "fit",
        "--config",
        str(REPO / "recipes" / "agnews_gru.yaml"),
        "--trainer.fast_dev_run",
        "true",
        "--trainer.enable_progress_bar",
        "false",
        "--data.init_args.root",
        str(AG_SAMPLE),
        "--data.init_args.cache_dir",
        str(tmp_path / "cache"),
    )


@pytest.mark.slow
@needs_cli
@needs_ag
def test_cli_fit_then_test_from_checkpoint(tmp_path):
    """A short real fit (loggers on: Lightning merges the model's and datamodule's hyperparameters), then
    ``zoo test`` from the checkpoint it wrote."""
    common = [
        "--config",
        str(REPO / "recipes" / "agnews_gru.yaml"),
        "--trainer.enable_progress_bar",
        "false",
        "--data.root",
        str(AG_SAMPLE),
        "--data.cache_dir",
        str(tmp_path / "cache"),
        "--model.hidden_size",
        "16",
        "--model.embedding_dim",
        "16",
    ]
    zoo(tmp_path, "fit", *common, "--trainer.max_steps", "3", "--trainer.limit_val_batches", "2")
    ckpt = tmp_path / "checkpoints" / "agnews_gru" / "last.ckpt"
    assert ckpt.is_file() and list((tmp_path / "runs" / "agnews_gru").rglob("hparams.yaml"))
    result = zoo(tmp_path, "test", *common, "--trainer.logger", "false", "--ckpt_path", str(ckpt))
    assert "test/acc" in result.stdout and "test/f1" in result.stdout
