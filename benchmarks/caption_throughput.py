"""How long a captioning recipe takes on this machine, before anyone downloads COCO.

Builds the recipe's ``ImageCaptioner`` (random weights: speed does not depend on them) and times, on
random inputs of the recipe's shapes:

1. the frozen encoder over images (``images/s``): the one-time cost of the feature cache;
2. a training step of the decoder on cached feature grids (``steps/s``): what every epoch costs;
3. beam-search captioning of feature grids (``images/s``): what each validation costs.

and turns them into hours for the data set's sizes (default: COCO 2014, Karpathy split: 113,287 train
images with 5 captions each = one item per (image, caption), 5,000 val, 5,000 test).

    python benchmarks/caption_throughput.py --config recipes/caption_attn.yaml            # GPU if there is one
    python benchmarks/caption_throughput.py --config recipes/caption_attn.yaml --device cpu --steps 5

The captions are random token ids of ``--caption-len`` tokens (COCO's captions average about 11.6 words,
plus <bos>/<eos>) over a vocabulary of the recipe's ``vocab_size``: the timing is the model's, not the
text's. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from zoo.tasks.captioner import ImageCaptioner  # noqa: E402


def word_tokenizer_json(vocab_size: int) -> str:
    """A word-level tokenizer with the captioner's special tokens first and ``w4 .. w{V-1}`` after."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<pad>": 0, "<unk>": 1, "<bos>": 2, "<eos>": 3, **{f"w{i}": i for i in range(4, vocab_size)}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return tokenizer.to_str()


def timed(fn, repeats: int, device: torch.device) -> float:
    """Seconds per call of ``fn`` (after two warm-up calls)."""
    for _ in range(2):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--config", default="recipes/caption_attn.yaml", help="a captioning recipe (its model and data init_args are used)"
    )
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--steps", type=int, default=30, help="timed training steps (and encoder / decoding batches)")
    parser.add_argument("--caption-len", type=int, default=14, help="tokens per training caption, <bos>/<eos> included")
    parser.add_argument("--train-items", type=int, default=113_287 * 5, help="(image, caption) pairs per epoch")
    parser.add_argument("--cache-images", type=int, default=123_287, help="images whose features are cached once")
    parser.add_argument("--eval-images", type=int, default=5_000, help="images captioned per validation")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast (GPU)")
    args = parser.parse_args(argv)

    recipe = yaml.safe_load(Path(args.config).read_text())
    model_args = dict(recipe["model"]["init_args"])
    data_args = dict(recipe["data"]["init_args"])
    model_args.update(
        pretrained=False, weights_path=None, tokenizer_json=word_tokenizer_json(int(data_args.get("vocab_size", 10_000)))
    )
    device = torch.device(
        "cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device)
    )
    torch.manual_seed(0)
    model = ImageCaptioner(**model_args).to(device)
    model.hparams.max_len = int(data_args.get("max_caption_len", 20)) + 1
    batch_size = int(data_args.get("batch_size", 64))
    size = int(data_args.get("image_size") or 224)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp)

    images = torch.randn(batch_size, 3, size, size, device=device)
    with torch.no_grad(), amp:
        grid = model.encoder.eval()(images)[0]
    features = grid.float().detach()

    def encode():
        with torch.no_grad(), amp:
            model.encoder(images)

    encoder_s = timed(encode, max(2, args.steps // 3), device)

    ids = torch.randint(4, model.vocab_size, (batch_size, args.caption_len), device=device)
    ids[:, 0], ids[:, -1] = 2, 3
    batch = {"features": features, "ids": ids, "lengths": torch.full((batch_size,), args.caption_len, device=device)}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()

    def train_step():
        with amp:
            loss = model.losses(batch, model(batch))["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step_s = timed(train_step, args.steps, device)

    model.eval()
    beam = int(model_args.get("beam_size", 3))

    def decode():
        with torch.no_grad(), amp:
            model._decode_memory(model.memory({"features": features}), beam_size=beam)

    decode_s = timed(decode, max(2, args.steps // 3), device)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    steps_per_epoch = -(-args.train_items // batch_size)
    result = {
        "config": args.config,
        "device": name,
        "amp_bf16": args.amp,
        "batch_size": batch_size,
        "image_size": size,
        "feature_grid": list(grid.shape[1:]),
        "caption_len": args.caption_len,
        "encoder_images_per_s": round(batch_size / encoder_s, 1),
        "train_steps_per_s": round(1 / step_s, 2),
        "decode_images_per_s": round(batch_size / decode_s, 1),
        "beam_size": beam,
        "estimate_hours": {
            "feature_cache_once": round(args.cache_images * encoder_s / batch_size / 3600, 3),
            "epoch": round(steps_per_epoch * step_s / 3600, 3),
            "validation": round(args.eval_images * decode_s / batch_size / 3600, 3),
        },
        "steps_per_epoch": steps_per_epoch,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
