"""ImageCaptioner, its metrics and its data: shapes of every path, the losses of the paper, the feature
cache, bad input, the CLI, and a real-image run on the Flickr8k sample in ../shared/data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules.captions import caption_collate
from datamodules.coco_captions import COCOCaptionsDataModule, FlickrCaptionsDataModule, read_karpathy_json
from datamodules.download import MissingDataError
from datamodules.images import CorruptImageError, load_image
from datamodules.shapes_captions import ShapesCaptions, caption_word_objects, shapes_caption, shapes_scene
from tests.conftest import LEARNING_SEED, learned
from zoo.attention import doubly_stochastic_penalty, reinforce_loss
from zoo.metrics import bleu_scores, caption_metrics, cider_d, normalize_caption
from zoo.tasks.captioner import ImageCaptioner
from zoo.viz import attention_figure

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
ENCODER = "test_resnet"  # timm's tiny test network: 0.37 M parameters, stride 32


@pytest.fixture(autouse=True)
def zoo_home(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "zoo_home"))


def tiny_shapes(**kw) -> ShapesCaptions:
    args = dict(n_train=48, n_val=16, n_test=16, image_size=64, layout=2, batch_size=16)
    args.update(kw)
    return ShapesCaptions(**args)


def tiny_model(attention: str, tokenizer_json=None, **kw) -> ImageCaptioner:
    torch.manual_seed(0)
    args = dict(
        encoder=ENCODER,
        pretrained=False,
        attention=attention,
        feature_dim=16,
        embedding_dim=8,
        hidden_size=16,
        attention_dim=8,
        dropout=0.0,
        beam_size=2,
        log_images=0,
        tokenizer_json=tokenizer_json,
    )
    args.update(kw)
    return ImageCaptioner(**args)


@pytest.fixture(scope="module")
def shapes_batch():
    dm = tiny_shapes()
    dm.setup()
    items = [dm.datasets["val"][i] for i in range(4)]
    return dm, caption_collate(items)


# ---- the model ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "attention,decoder,coordinates",
    [
        ("none", "sat", False),
        ("soft", "sat", False),
        ("hard", "sat", True),
        ("soft", "luong", True),
        ("hard", "luong", False),
    ],
)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_shapes_of_every_path(shapes_batch, attention, decoder, coordinates, cell) -> None:
    dm, batch = shapes_batch
    model = tiny_model(attention, dm.tokenizer_json, cell=cell, decoder=decoder, coordinates=coordinates)
    B, T = batch["ids"].shape
    V = model.vocab_size
    model.train()
    out = model(batch)
    assert out["logits"].shape == (B, T - 1, V)
    L = 4  # 64 px / stride 32 = 2 x 2
    if attention != "none":
        assert out["alphas"].shape == (B, T - 1, L)
        assert torch.allclose(out["alphas"].sum(-1), torch.ones(B, T - 1), atol=1e-5)
    if attention == "hard":
        assert out["log_p_s"].shape == (B, T - 1) and out["use_soft"].shape == (B,)
    losses = model.losses(batch, out)
    assert torch.isfinite(losses["loss"])
    losses["loss"].backward()
    assert model.embed.weight.grad is not None
    assert all(p.grad is None for p in model.encoder.parameters())  # frozen
    # decoding: greedy and beam, with one attention row per word
    for beam in (1, 3):
        results = model.caption_batch(batch, beam_size=beam, max_len=6)
        assert len(results) == B
        for r in results:
            assert len(r["words"]) <= 6
            if attention == "none":
                assert r["attention"] is None
            else:
                assert r["attention"].shape == (len(r["words"]), L)
    # the cached-features path gives the same logits as the image path
    model.eval()
    feats = dict(batch, features=model.encoder(batch["images"])[0])
    del feats["images"]
    torch.manual_seed(1)
    a = model(batch)["logits"]
    torch.manual_seed(1)
    b = model(feats)["logits"]
    assert torch.allclose(a, b, atol=1e-5)


def test_beam_one_equals_greedy_in_the_model(shapes_batch) -> None:
    dm, batch = shapes_batch
    model = tiny_model("soft", dm.tokenizer_json).eval()
    memory = model.memory(batch)
    greedy = model._decode_memory(memory, beam_size=1, max_len=8)
    from zoo.decoding import beam_search

    state = model.initial_state(memory)
    keys = model.attend.project(memory)
    banned = torch.tensor([0, 1, 2])

    def step(tokens, state):
        logits, new, alpha, _ = model.attend_step(model.embed(tokens), state, memory, keys, "soft")
        return torch.log_softmax(logits, -1).index_fill(-1, banned, float("-inf")), new, {"attention": alpha}

    with torch.no_grad():
        beam = beam_search(step, state, memory.shape[0], 2, 3, 8, beam_size=1)
    assert torch.equal(greedy.tokens, beam.tokens)
    assert torch.allclose(greedy.extras["attention"], beam.extras["attention"])


def test_grid_coordinates() -> None:
    from zoo.encoders import grid_coordinates

    xy = grid_coordinates(4, torch.zeros(1))
    assert xy.tolist() == [[[-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]]]  # row-major, (x, y)


def test_doubly_stochastic_term_by_hand() -> None:
    # two steps over three locations; the second sequence has one real step only
    alphas = torch.tensor([[[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]], [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])
    mask = torch.tensor([[True, True], [True, False]])
    # seq 0: coverage (0.7, 0.8, 0.5) -> 0.09 + 0.04 + 0.25 = 0.38; seq 1: (1, 0, 0) -> 0 + 1 + 1 = 2
    assert torch.allclose(doubly_stochastic_penalty(alphas, mask), torch.tensor([0.38, 2.0]))


def test_doubly_stochastic_enters_the_loss(shapes_batch) -> None:
    dm, batch = shapes_batch
    on = tiny_model("soft", dm.tokenizer_json, doubly_stochastic=1.0)
    off = tiny_model("soft", dm.tokenizer_json, doubly_stochastic=0.0)
    off.load_state_dict(on.state_dict())
    out = on(batch)
    loss_on, loss_off = on.losses(batch, out), off.losses(batch, out)
    assert "doubly_stochastic" not in loss_off
    assert torch.allclose(loss_on["loss"] - loss_off["loss"], loss_on["doubly_stochastic"])
    targets = batch["ids"][:, 1:]
    expected = doubly_stochastic_penalty(out["alphas"], targets != 0).mean() / ((targets != 0).sum() / targets.shape[0])
    assert torch.allclose(loss_on["doubly_stochastic"], expected)


def test_reinforce_gradient_sign_on_a_toy_case() -> None:
    # One attention distribution over two locations; location 0 was sampled.
    logits = torch.zeros(2, requires_grad=True)
    log_alpha = torch.log_softmax(logits, 0)
    # A caption better than the baseline: descending the loss must make location 0 more likely.
    reinforce_loss(torch.tensor([-1.0]), log_alpha[0:1], baseline=-3.0).backward()
    assert logits.grad[0] < 0 < logits.grad[1]
    # Worse than the baseline: less likely.
    logits.grad = None
    log_alpha = torch.log_softmax(logits, 0)
    reinforce_loss(torch.tensor([-5.0]), log_alpha[0:1], baseline=-3.0).backward()
    assert logits.grad[0] > 0 > logits.grad[1]
    # Masked sequences (that used the expectation) give no gradient; the reward is a constant.
    logits.grad = None
    reward = torch.tensor([-1.0], requires_grad=True)
    reinforce_loss(reward, torch.log_softmax(logits, 0)[0:1], -3.0, weight=torch.tensor([0.0])).backward()
    assert torch.all(logits.grad == 0) and reward.grad is None


def test_hard_attention_reward_is_per_word(shapes_batch) -> None:
    """Captions of different lengths that the decoder predicts equally well (the same log-likelihood per
    word) must get the same REINFORCE advantage: a per-caption sum would reward short captions and
    push attention away from the objects of long ones."""
    dm, batch = shapes_batch
    lengths = (batch["ids"][:, 1:] != 0).sum(1)
    assert len(set(lengths.tolist())) > 1, "the fixture needs captions of different lengths"
    model = tiny_model("hard", dm.tokenizer_json).train()
    B, T = batch["ids"][:, 1:].shape
    log_p_s = torch.zeros(B, T, requires_grad=True)
    out = {
        "logits": torch.zeros(B, T, model.vocab_size),  # uniform: log V nats for every word
        "alphas": torch.full((B, T, 4), 0.25),
        "log_p_s": log_p_s,
        "use_soft": torch.zeros(B, dtype=torch.bool),
    }
    model.losses(batch, out)["reinforce"].backward()
    assert log_p_s.grad.abs().max() < 1e-6


@pytest.mark.learning
def test_hard_attention_learns_where_to_look() -> None:
    """A toy where one location holds the answer: REINFORCE steps move attention onto it."""
    from zoo.attention import Attention, hard_attention

    torch.manual_seed(LEARNING_SEED)
    att = Attention(4, 3, "additive", 8)
    head = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam([*att.parameters(), *head.parameters()], lr=0.05)
    baseline = None
    for _ in range(150):
        B = 64
        label = torch.randint(0, 2, (B,))
        memory = torch.randn(B, 5, 3) * 0.1
        memory[:, 2, 0] = label.float() * 2 - 1  # only location 2 knows the label
        memory[:, 2, 1] = 1.0  # and it is recognisable
        query = torch.ones(B, 4)
        _, alpha = att(query, memory)
        z, _, log_p = hard_attention(alpha, memory)
        log_lik = -torch.nn.functional.cross_entropy(head(z), label, reduction="none")
        mean = float(log_lik.detach().mean())
        baseline = mean if baseline is None else 0.9 * baseline + 0.1 * mean
        loss = -log_lik.mean() + reinforce_loss(log_lik, log_p, baseline)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    on_answer = learned("captioner: REINFORCE attention on the answer's location", float(alpha[:, 2].detach().mean()))
    assert on_answer > 0.8  # seeds 0-4 x kernels {default, avx2, avx512}, AMD EPYC: 0.9996-1.0


# ---- metrics ------------------------------------------------------------------------------------------
def test_cider_d_by_hand() -> None:
    # Two images, one reference each; the first caption is perfect, the second shares nothing.
    # idf of an n-gram found in one image's references: log(2) - log(1) = log 2; every weight is
    # tf * log 2, so a perfect match has cosine 1 for n = 1..4 (length penalty 1) -> 10 * 1 = 10.
    score, per_image = cider_d(["a b c d e", "x y"], [["a b c d e"], ["p q r"]])
    assert per_image[0] == pytest.approx(10.0)
    assert per_image[1] == 0.0
    assert score == pytest.approx(5.0)
    # An n-gram found in the references of every image has idf 0: "a" carries no weight.
    score, per_image = cider_d(["a x"], [["a x"]])
    assert score == 0.0  # with one image log(1) = 0: every idf is 0


def test_cider_d_matches_pycocoevalcap() -> None:
    cider_module = pytest.importorskip("pycocoevalcap.cider.cider", reason="pycocoevalcap not installed")
    rng = np.random.default_rng(0)
    words = "a the dog cat man woman runs sits on in grass red ball street two with".split()
    refs = [[" ".join(rng.choice(words, rng.integers(3, 11))) for _ in range(rng.integers(1, 6))] for _ in range(60)]
    hyps = [" ".join(rng.choice(words, rng.integers(1, 11))) for _ in range(60)]
    hyps[0] = refs[0][0]
    ours = cider_d(hyps, refs)
    theirs = cider_module.Cider().compute_score({i: r for i, r in enumerate(refs)}, {i: [h] for i, h in enumerate(hyps)})
    assert ours[0] == pytest.approx(theirs[0], abs=1e-9)
    assert np.allclose(ours[1], theirs[1], atol=1e-9)


def test_bleu_uses_all_references() -> None:
    one = bleu_scores(["a red circle"], [["a red circle"]])
    assert one["bleu1"] == pytest.approx(1.0)
    multi = bleu_scores(["a blue square"], [["a red circle", "a blue square"]])
    assert multi["bleu1"] == pytest.approx(1.0)
    m = caption_metrics(["A dog, running."], [["a dog running"]])
    assert m["bleu1"] == pytest.approx(1.0) and set(m) == {"bleu1", "bleu2", "bleu3", "bleu4", "cider"}
    assert normalize_caption("  A  Dog's  ball.") == "a dog s ball"


# ---- ShapesCaptions -------------------------------------------------------------------------------------
def test_shapes_are_deterministic_and_captions_name_the_boxes() -> None:
    a, b = shapes_scene(3, 7), shapes_scene(3, 7)
    assert a == b and shapes_scene(4, 7) != a
    for index in range(50):
        objects = shapes_scene(0, index)
        assert 1 <= len(objects) <= 3
        words, owners = shapes_caption(objects)
        assert caption_word_objects(words) == owners
        for w, o in zip(words, owners):
            if o >= 0:
                assert w in (objects[o].colour, objects[o].kind)
        for obj in objects:  # the box holds its layout cell's centre
            cell = 128 / 4
            cx, cy = (obj.col + 0.5) * cell, (obj.row + 0.5) * cell
            assert obj.box[0] <= cx <= obj.box[2] and obj.box[1] <= cy <= obj.box[3]
    assert shapes_caption([o for o in shapes_scene(0, 1)])[0][0] == "a"


def test_shapes_batches_carry_boxes_and_word_objects(shapes_batch) -> None:
    dm, batch = shapes_batch
    assert batch["images"].shape == (4, 3, 64, 64)
    assert batch["boxes"].shape[0] == 4 and batch["boxes"].shape[2] == 4
    assert batch["word_objects"].shape == batch["ids"].shape
    tok = __import__("tokenizers").Tokenizer.from_str(dm.tokenizer_json)
    for b in range(4):
        n = int(batch["lengths"][b])
        words = [tok.id_to_token(int(i)) for i in batch["ids"][b, 1 : n - 1]]
        assert " ".join(words) == batch["references"][b][0]
        assert batch["word_objects"][b, 1 : n - 1].tolist() == caption_word_objects(words)
    assert dm.preview("val", 0).shape == (64, 64, 3)


# ---- the feature cache ----------------------------------------------------------------------------------
def test_feature_cache_is_built_once_and_keyed_by_the_encoder(tmp_path) -> None:
    dm = tiny_shapes(feature_cache_dir=str(tmp_path / "features"))
    dm.setup()
    model = tiny_model("soft", dm.tokenizer_json)
    calls = []

    def encode(images):
        calls.append(len(images))
        return model.encoder(images)[0]

    from zoo.encoders import weights_key

    key = weights_key(model.encoder, ENCODER)
    paths = dm.attach_features(encode, key, log=lambda *_: None)
    assert sum(calls) == 48 + 16 + 16
    item = dm.datasets["train"][0]
    assert "features" in item and "image" not in item and item["features"].shape == (4, model.encoder.out_channels)
    expected = model.encoder(dm.datasets["train"].image_tensor(dm.datasets["train"].index[0][0])[None])[0][0]
    assert torch.allclose(item["features"], expected, atol=2e-2 * float(expected.abs().max()))  # float16
    # a second datamodule (a later run) reads the cache: the encoder never runs
    dm2 = tiny_shapes(feature_cache_dir=str(tmp_path / "features"))
    dm2.setup()
    calls.clear()
    assert dm2.attach_features(encode, key, log=lambda *_: None) == paths
    assert calls == []
    # other weights or another transform: another key
    other = tiny_model("soft", dm.tokenizer_json)
    torch.nn.init.normal_(next(other.encoder.parameters()))
    assert weights_key(other.encoder, ENCODER) != key
    dm3 = tiny_shapes(feature_cache_dir=str(tmp_path / "features"), noise=5.0)
    dm3.setup()
    assert dm3.feature_cache_path("train", key) != paths["train"]


# ---- bad input --------------------------------------------------------------------------------------------
def write_jpeg(path: Path, mode: str = "RGB", size=(40, 30)) -> Path:
    Image.new(mode, size, 128 if mode in ("L", "CMYK") else (200, 30, 30)).save(path, "JPEG")
    return path


def test_bad_images(tmp_path) -> None:
    good = write_jpeg(tmp_path / "good.jpg")
    data = good.read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.jpg").write_bytes(b"not an image at all")
    for name in ("truncated.jpg", "garbage.jpg"):
        with pytest.raises(CorruptImageError, match=name):
            load_image(tmp_path / name)
    for mode in ("L", "CMYK"):
        image = load_image(write_jpeg(tmp_path / f"{mode}.jpg", mode))
        assert image.mode == "RGB" and image.size == (40, 30)
    Image.new("RGBA", (10, 10)).save(tmp_path / "alpha.png")
    Image.fromarray((np.arange(100).reshape(10, 10) * 600).astype(np.uint16)).save(tmp_path / "deep.png")
    assert load_image(tmp_path / "alpha.png").mode == "RGB"
    assert np.asarray(load_image(tmp_path / "deep.png")).max() == 255


def karpathy_fixture(root: Path, images: dict) -> Path:
    import json

    rows = []
    for n, (name, (split, captions)) in enumerate(images.items()):
        rows.append(
            {"filename": name, "split": split, "imgid": n, "sentences": [{"raw": c, "tokens": c.split()} for c in captions]}
        )
    (root / "dataset_flickr8k.json").write_text(json.dumps({"images": rows, "dataset": "flickr8k"}))
    return root


def test_missing_images_empty_captions_and_corrupt_files(tmp_path) -> None:
    (tmp_path / "images").mkdir()
    for n in range(4):
        write_jpeg(tmp_path / "images" / f"{n}.jpg")
    (tmp_path / "images" / "bad.jpg").write_bytes(b"\xff\xd8\xff garbage")
    karpathy_fixture(
        tmp_path,
        {
            "0.jpg": ("train", ["a red thing .", "", "a thing"]),
            "1.jpg": ("train", ["a blue thing"]),
            "absent.jpg": ("train", ["a ghost"]),
            "2.jpg": ("val", ["   "]),  # only empty captions: the image is skipped
            "3.jpg": ("val", ["a green thing"]),
            "bad.jpg": ("test", ["a broken thing"]),
        },
    )
    dm = FlickrCaptionsDataModule(root=str(tmp_path), encoder=ENCODER, image_size=32, min_frequency=1, batch_size=2)
    with pytest.warns(UserWarning, match="skipped 1 of 3 images"):
        dm.setup()
    assert dm.skipped["train"]["missing_images"] == 1 and dm.skipped["train"]["empty_captions"] == 1
    assert dm.skipped["val"]["images_without_captions"] == 1
    assert [len(dm.records[s]) for s in ("train", "val", "test")] == [2, 1, 1]
    with pytest.raises(CorruptImageError, match="bad.jpg.*bad_images='skip'"):
        next(iter(dm.test_dataloader()))
    skip = FlickrCaptionsDataModule(root=str(tmp_path), encoder=ENCODER, image_size=32, min_frequency=1, bad_images="skip")
    with pytest.warns(UserWarning):
        skip.setup()
        assert next(iter(skip.test_dataloader())) == {}
    strict = FlickrCaptionsDataModule(root=str(tmp_path), encoder=ENCODER, missing_images="error")
    with pytest.raises(MissingDataError, match="absent.jpg"):
        strict.setup()


def test_missing_coco_says_what_where_and_how(tmp_path) -> None:
    dm = COCOCaptionsDataModule(root=str(tmp_path / "coco"), karpathy_hub=None, encoder=ENCODER)
    with pytest.raises(MissingDataError) as info:
        dm.prepare_data()
    message = str(info.value)
    for expected in (
        "train2014",
        "val2014",
        "dataset_coco.json",
        "http://images.cocodataset.org/zips/train2014.zip",
        "13 GB",
        "6.2 GB",
        str(tmp_path / "coco"),
        "caption_attn_shapes.yaml",
    ):
        assert expected in message


def test_karpathy_json_reader(tmp_path) -> None:
    import json

    (tmp_path / "dataset_coco.json").write_text(
        json.dumps(
            {
                "images": [
                    {
                        "filepath": "val2014",
                        "filename": "x.jpg",
                        "split": "restval",
                        "cocoid": 7,
                        "sentences": [{"raw": "A cat.", "tokens": ["a", "cat"]}],
                    },
                    {
                        "filepath": "val2014",
                        "filename": "y.jpg",
                        "split": "test",
                        "cocoid": 8,
                        "sentences": [{"tokens": ["a", "dog"]}],
                    },
                ]
            }
        )
    )
    splits = read_karpathy_json(tmp_path / "dataset_coco.json", tmp_path)
    assert splits["train"][0].image == str(tmp_path / "val2014" / "x.jpg") and splits["train"][0].captions == ["A cat."]
    assert splits["test"][0].captions == ["a dog"] and splits["test"][0].image_id == "8"
    (tmp_path / "bad.json").write_text(json.dumps({"images": [{"filename": "z.jpg", "split": "train"}]}))
    with pytest.raises(ValueError, match="bad.json: entry 0 lacks the key 'sentences'"):
        read_karpathy_json(tmp_path / "bad.json", tmp_path)


def test_hub_mirror_split_comes_from_the_path_inside_the_dataset(tmp_path, monkeypatch) -> None:
    """Regression: the split was read from the whole path (``"/train" in str(file)``), so a cache under
    a folder named ``train...`` labelled every file ``train``."""
    import json
    import sys
    import types

    from datamodules import coco_captions

    assert coco_captions.parquet_split(Path("data/test-00000-of-00001.parquet")) == "test"
    assert coco_captions.parquet_split(Path("validation/0000.parquet")) == "validation"
    assert coco_captions.parquet_split(Path("data/0000.parquet")) is None
    snapshot = tmp_path / "train" / "training_cache" / "snapshot"  # every split's path contains "/train"
    (snapshot / "data").mkdir(parents=True)
    for split in ("train", "restval", "validation", "test"):
        rows = [{"filepath": "val2014", "filename": f"{split}.jpg", "cocoid": 1, "sentences": [{"raw": f"a {split}"}]}]
        (snapshot / "data" / f"{split}-00000-of-00001.parquet").write_text(json.dumps(rows))
    # pyarrow is optional (not installed here): a stand-in reads the rows this test wrote as JSON.
    parquet = types.SimpleNamespace(read_table=lambda f: types.SimpleNamespace(to_pylist=lambda: json.loads(Path(f).read_text())))
    monkeypatch.setitem(sys.modules, "pyarrow", types.SimpleNamespace(parquet=parquet))
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", parquet)
    monkeypatch.setattr("huggingface_hub.snapshot_download", lambda *a, **k: str(snapshot))
    splits = coco_captions.read_karpathy_hub("someone/coco-karpathy", tmp_path)
    assert {s: sorted(Path(r.image).name for r in records) for s, records in splits.items()} == {
        "train": ["restval.jpg", "train.jpg"],
        "val": ["validation.jpg"],
        "test": ["test.jpg"],
    }


# ---- figures, checkpoints, CLI -----------------------------------------------------------------------------
def test_attention_figure_png(tmp_path) -> None:
    """The figure's size is its spec (the input and 3 word panels of 2.4 x 2.6 inches at 100 dpi); the
    input's colour is shown as is, a word's panel is lit where it looked (full colour there, 0.2 of it
    where the weight is 0) and the most attended cell is outlined in red."""
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    image[...] = (200, 100, 50)
    attention = torch.eye(4)[[0, 3, 1]]  # a 2 x 2 grid: each word looks at one cell
    attention_figure(image, ["a", "red", "circle"], attention, tmp_path / "fig.png")
    figure = np.asarray(Image.open(tmp_path / "fig.png").convert("RGB")).astype(int)
    assert figure.shape == (260, 4 * 240, 3)

    def shown(colour, tolerance: int = 3) -> int:
        return int((np.abs(figure - np.array(colour)).max(-1) <= tolerance).sum())

    # 960 x 260 pixels: each colour covers thousands (the outline, 1.2 points wide and anti-aliased, ~2,000)
    assert shown((200, 100, 50)) > 5000 and shown((40, 20, 10)) > 5000 and shown((255, 0, 0), 30) > 500


def run_cli(args, env_extra=None, timeout=240):
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", **(env_extra or {}))
    return subprocess.run(
        [sys.executable, "-m", "zoo.cli", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow
def test_cli_fast_dev_run_on_shapes(tmp_path) -> None:
    result = run_cli(
        [
            "fit",
            "--config",
            "recipes/caption_attn_shapes.yaml",
            "--trainer.fast_dev_run",
            "true",
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
            "--data.n_train",
            "64",
            "--data.n_val",
            "16",
            "--data.n_test",
            "16",
        ],
        {"ZOO_HOME": str(tmp_path / "home")},
    )
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.realdata
def test_real_flickr8k_images_fit_and_caption(tmp_path) -> None:
    """The 12 real Flickr8k JPEGs of ../shared/data: fit a few steps, then caption an image from the
    checkpoint with `zoo caption` (figure included)."""
    source = SHARED / "flickr8k"
    if not (source / "images").is_dir():
        pytest.skip(f"real data not available: {source / 'images'} is absent")
    import lightning as L

    names = sorted(p.name for p in (source / "images").glob("*.jpg"))
    root = tmp_path / "flickr8k"
    (root / "images").mkdir(parents=True)
    for name in names:
        (root / "images" / name).symlink_to(source / "images" / name)
    # Only 12 of the 8,092 images are present: the token file is the original one, and split lists
    # made for them (8 train, 2 dev, 2 test) keep every split non-empty.
    (root / "Flickr8k.token.txt").symlink_to(source / "Flickr8k.token.txt")
    for split, part in (("train", names[:8]), ("dev", names[8:10]), ("test", names[10:])):
        (root / f"Flickr_8k.{split}Images.txt").write_text("\n".join(part) + "\n")
    dm = FlickrCaptionsDataModule(root=str(root), encoder=ENCODER, image_size=96, min_frequency=1, batch_size=8)
    model = tiny_model("soft", None, log_images=1, beam_size=2)
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=3,
        logger=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
        limit_val_batches=1,
    )
    trainer.fit(model, dm)
    assert len(dm.records["train"]) == 8 and all(Path(r.image).is_file() for r in dm.records["train"])
    assert "val/bleu4" in trainer.callback_metrics and "val/cider" in trainer.callback_metrics
    ckpt = tmp_path / "model.ckpt"
    trainer.save_checkpoint(ckpt)
    from zoo.tasks.base import load_task

    loaded = load_task(ckpt, ImageCaptioner)
    path = source / "images" / names[0]
    (result,) = loaded.predict([path], beam_size=2)
    assert result["image"] == str(path) and result["caption"] == " ".join(result["words"])
    assert result["attention"].shape[0] == len(result["words"])
    picture = loaded.display_image(path)
    assert picture.shape == (96, 96, 3) and picture.dtype == np.uint8
    attention_figure(picture, result["words"], result["attention"], tmp_path / "figure.png")
    assert (tmp_path / "figure.png").is_file()
    # a missing file is an error naming it
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        loaded.predict([tmp_path / "nope.jpg"])
