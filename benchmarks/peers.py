"""The main job's exported front against the mobile peers, on the same data and the same host.

    .venv/bin/python benchmarks/peers.py [--spec runs/fashion_mnist_host.yaml] [--epochs 8]
        [--front 'runs/fashion_mnist_host/export/**/*.tflite'] [--peers mnv2-0.35,mnv2-1.0,...]

1. Trains Keras's MobileNetV2 (alpha 0.35 and 1.0) and MobileNetV3-Small (alpha 0.75 and 1.0),
   from scratch, ``--epochs`` each (the same budget for all), at ``--resolution`` px on the spec's
   training split (its validation split and the test images unseen), with the spec's
   preprocessing; each is exported to TFLite fp32 (``runs/peers/<peer>.tflite``).
2. Times every peer file and every fp32 file of the front side by side in one process, in
   interleaved rounds (``nas.export.time_round_robin``: each model's fastest round median), so
   that machine noise hits all files alike: LiteRT, fp32, ``--threads`` threads, this host.
3. Scores every file itself (LiteRT) on the 10k test images, each fed as its contract says (the
   front's ``<file>.json``; the peers: the spec's preprocessing at ``--resolution`` px).

Prints one row per file, and for each peer the front's files that dominate it (top-1 at least
as high, measured latency at most as high, in this run). Run the main job first (``nas search
runs/fashion_mnist_host.yaml``): its exported files are the front.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import time
from pathlib import Path

import numpy as np

import nas  # noqa: F401  (quiet TensorFlow before it loads)
from nas.data import load_dataset
from nas.export import open_runner, time_round_robin, to_tflite
from nas.export._export import _inputs
from nas.export._keras import tf_modules
from nas.spec import load_spec

#: the BatchNorm layers' moving-average momentum, PyTorch's default: with Keras's 0.999 (made
#: for ImageNet-length training) every peer scored 10% after 8 epochs, its moving statistics
#: still those of the early weights
BN_MOMENTUM = 0.9

#: name -> (Keras application, alpha)
PEERS = {
    "mnv2-0.35": ("MobileNetV2", 0.35),
    "mnv2-1.0": ("MobileNetV2", 1.0),
    "mnv3s-0.75": ("MobileNetV3Small", 0.75),
    "mnv3s-1.0": ("MobileNetV3Small", 1.0),
}


def build_peer(name: str, resolution: int, channels: int, classes: int):
    """An untrained Keras peer for ``channels``-channel ``resolution`` px inputs (already
    normalized), logits out."""
    _, keras = tf_modules()
    app, alpha = PEERS[name]
    shape = (resolution, resolution, channels)
    common = {"alpha": alpha, "weights": None, "classes": classes, "classifier_activation": None}
    if app == "MobileNetV3Small":
        model = keras.applications.MobileNetV3Small(
            input_shape=shape, include_preprocessing=False, **common
        )
    else:
        model = keras.applications.MobileNetV2(input_shape=shape, **common)
    for layer in model.layers:  # (BN_MOMENTUM)
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = BN_MOMENTUM
    return model


def train_peer(name: str, x: np.ndarray, y: np.ndarray, args: argparse.Namespace, classes: int):
    """``name`` trained on NHWC ``x``: Adam with cosine decay, ``args.epochs`` epochs; the
    model and the seconds it took."""
    _, keras = tf_modules()
    keras.utils.set_random_seed(args.seed)
    model = build_peer(name, args.resolution, x.shape[-1], classes)
    steps = args.epochs * int(np.ceil(len(x) / args.batch))
    model.compile(
        optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(args.lr, steps)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    start = time.perf_counter()
    model.fit(x, y, batch_size=args.batch, epochs=args.epochs, shuffle=True, verbose=2)
    return model, time.perf_counter() - start


def front_files(pattern: str) -> list[Path]:
    """The fp32 TFLite files matched by ``pattern``, by their contract JSON."""
    files = []
    for path in sorted(glob.glob(pattern, recursive=True)):
        doc = Path(path + ".json")
        if doc.exists() and json.loads(doc.read_text()).get("precision") == "fp32":
            files.append(Path(path))
    if not files:
        raise SystemExit(
            f"--front {pattern!r}: no fp32 .tflite file with its contract JSON (run the main "
            "job first: nas search runs/fashion_mnist_host.yaml)"
        )
    return files


def score(path: Path, dataset, x: np.ndarray) -> float:
    """Top-1 of the file itself on the dataset's test images ``x`` (preprocessed, NCHW)."""
    runner = open_runner(path)
    logits = np.concatenate([runner(x[i : i + 500]) for i in range(0, len(x), 500)])
    return float((logits.argmax(1) == dataset.test.labels.numpy()).mean())


def train_peers(dataset, args: argparse.Namespace) -> list[dict]:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    channels = dataset.preprocessing.channels
    train = dataset.train
    if args.train_images:
        train = train.subset(args.train_images, seed=args.seed)
    x = _inputs(dataset, train, (channels, args.resolution, args.resolution)).transpose(0, 2, 3, 1)
    rows = []
    for name in args.peers.split(","):
        if name not in PEERS:
            raise SystemExit(f"--peers: {name!r} is not one of {', '.join(PEERS)}")
        print(f"training {name}: {args.epochs} epochs on {len(x)} images", flush=True)
        model, seconds = train_peer(name, x, train.labels.numpy(), args, len(dataset.class_names))
        path = out / f"{name}.tflite"
        path.write_bytes(to_tflite(model, "fp32"))
        rows.append({"name": name, "path": path, "resolution": args.resolution, "train_s": seconds})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spec", default="runs/fashion_mnist_host.yaml")
    parser.add_argument("--front", help="glob of the front's files (default: the spec's exports)")
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument(
        "--train-images", type=int, help="train on this many images only (a quick check)"
    )
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=400, help="timed invocations per file")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--out", default="runs/peers", help="where the peers' files go")
    args = parser.parse_args()
    spec = load_spec(args.spec)
    front = front_files(args.front or str(spec.run_dir() / "export" / "**" / "*.tflite"))
    dataset = load_dataset(spec.dataset)
    peers = train_peers(dataset, args)
    rows = list(peers)
    for path in front:
        contract = json.loads(Path(str(path) + ".json").read_text())
        rows.append({
            "name": contract["config"], "path": path,
            "resolution": contract["preprocessing"]["height"], "train_s": None,
        })  # fmt: skip
    print(f"timing {len(rows)} files side by side ({args.rounds} rounds)", flush=True)
    timings = time_round_robin(
        [str(r["path"]) for r in rows], threads=args.threads, runs=args.runs, rounds=args.rounds
    )
    channels = dataset.preprocessing.channels
    tests: dict[int, np.ndarray] = {}  # resolution -> the test images, preprocessed once
    for row, timing in zip(rows, timings, strict=True):
        px = row["resolution"]
        if px not in tests:
            tests[px] = _inputs(dataset, dataset.test, (channels, px, px))
        row.update(
            ms=timing.mean,
            spread=timing.std,
            kib=os.path.getsize(row["path"]) / 1024,
            top1=score(row["path"], dataset, tests[px]),
        )
    report(rows, len(peers), args)


def report(rows: list[dict], n_peers: int, args: argparse.Namespace) -> None:
    print(
        f"\nLiteRT fp32, {args.threads} thread(s), this host, measured side by side "
        f"(fastest of {args.rounds} round medians); top-1 of each file on the 10k test images"
    )
    print(f"{'file':<44} {'px':>3} {'top-1':>7} {'ms':>7} {'spread':>7} {'KiB':>7}")
    for r in rows:
        print(
            f"{r['name'][:44]:<44} {r['resolution']:>3} {100 * r['top1']:>6.2f}% "
            f"{r['ms']:>7.3f} {r['spread']:>7.3f} {r['kib']:>7.0f}"
        )
    front = rows[n_peers:]
    for peer in rows[:n_peers]:
        beaters = [f for f in front if f["top1"] >= peer["top1"] and f["ms"] <= peer["ms"]]
        said = ", ".join(f["name"] for f in beaters) if beaters else "none"
        print(f"{peer['name']} ({peer['train_s']:.0f} s training) dominated by: {said}")
    Path(args.out, "peers.json").write_text(
        json.dumps([{**r, "path": str(r["path"])} for r in rows], indent=1)
    )


if __name__ == "__main__":
    main()
