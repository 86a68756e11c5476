"""The ``nas`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

__all__ = ["main"]

logger = logging.getLogger("nas")


def _cmd_spaces(args: argparse.Namespace) -> int:
    from search_spaces import get_space, list_spaces

    for name in list_spaces():
        space = get_space(name)
        print(f"{name}: largest {space.largest()}  smallest {space.smallest()}")
    return 0


def _cmd_train_supernet(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from nas.jobs import load_job
    from nas.spec import load_spec
    from nas.supernet import SupernetTrainer

    spec = load_spec(args.spec)
    dataset, space = load_job(spec)
    torch.manual_seed(spec.seed)
    bar = tqdm(unit="step", dynamic_ncols=True, disable=args.quiet)

    def progress(n: int, info: dict) -> None:
        bar.update(n)
        bar.set_postfix(phase=spec.supernet.phases[info["phase"]].name, loss=f"{info['loss']:.3f}", lr=f"{info['lr']:.4f}")

    trainer = SupernetTrainer(spec, space, dataset, work_dir=spec.run_dir(), track=not args.no_mlflow, progress=progress)
    bar.total = trainer.total_epochs * trainer.steps_per_epoch
    bar.n = trainer.epoch * trainer.steps_per_epoch
    result = trainer.run()
    bar.close()
    summary = {"checkpoint": str(result.checkpoint), "train_seconds": round(result.seconds, 1), "epochs": result.epochs,
               "final": result.history[-1] if result.history else {}, "mlflow_run_id": result.mlflow_run_id}  # fmt: skip
    print(json.dumps(summary) if args.json else f"supernet written to {result.checkpoint} ({result.seconds / 60:.1f} min of training)")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    import torch

    from nas.jobs import load_job, load_supernet
    from nas.spec import load_spec
    from nas.supernet import SubnetEvaluator

    spec = load_spec(args.spec)
    torch.set_num_threads(args.threads)
    dataset, space = load_job(spec)
    config = space.resolve(args.subnet)
    supernet, _ = load_supernet(spec, space, args.checkpoint)
    evaluator = SubnetEvaluator(space, supernet, dataset, bn_calibration_images=spec.supernet.bn_calibration_images, seed=spec.seed)
    start = time.perf_counter()
    result = evaluator.evaluate(config, args.split)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['config']}: top-1 {result['accuracy'] * 100:.2f}% on {result['n_images']} {args.split} images "
              f"(BN recalibrated on {spec.supernet.bn_calibration_images} training images, {time.perf_counter() - start:.1f}s)")  # fmt: skip
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nas", description="Neural-architecture search for mobile vision models.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("spaces", help="list the registered search spaces")
    p.set_defaults(func=_cmd_spaces)

    p = sub.add_parser("train-supernet", help="train a supernet by progressive shrinking (resumable)",
                       description="Train the spec's supernet. Re-running an interrupted job resumes "
                                   "after its last finished epoch (state in runs/<name>/).")  # fmt: skip
    p.add_argument("spec", help="run spec YAML (see runs/)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train_supernet)

    p = sub.add_parser("eval", help="score one subnet of the trained supernet (BN recalibrated)")
    p.add_argument("spec", help="run spec YAML")
    p.add_argument("--subnet", default="largest", help="largest, smallest or a config string (default: largest)")
    p.add_argument("--split", default="val", choices=["val", "test"], help="val (search) or test (final figures)")
    p.add_argument("--checkpoint", help="supernet file (default: the spec's supernet.checkpoint)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--json", action="store_true", help='print {"config", "accuracy", "split", "n_images"}')
    p.set_defaults(func=_cmd_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)  # fmt: skip
    import nas  # noqa: F401  (the torchvision/ofa import trap)
    from nas.errors import NASError

    try:
        return args.func(args)
    except NASError as e:
        print(f"nas: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nas: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
