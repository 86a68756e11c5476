"""The ``nas`` command line."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from nas.paths import resolve

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
        bar.set_postfix(
            phase=spec.supernet.phases[info["phase"]].name,
            loss=f"{info['loss']:.3f}",
            lr=f"{info['lr']:.4f}",
            refresh=False,  # update() has just drawn the line
        )

    trainer = SupernetTrainer(
        spec, space, dataset, work_dir=spec.run_dir(), track=not args.no_mlflow, progress=progress
    )
    bar.total = trainer.total_epochs * trainer.steps_per_epoch
    bar.n = trainer.epoch * trainer.steps_per_epoch
    result = trainer.run()
    bar.close()
    summary = {
        "checkpoint": str(result.checkpoint),
        "train_seconds": round(result.seconds, 1),
        "epochs": result.epochs,
        "final": result.history[-1] if result.history else {},
        "mlflow_run_id": result.mlflow_run_id,
    }
    print(
        json.dumps(summary)
        if args.json
        else f"supernet written to {result.checkpoint} ({result.seconds / 60:.1f} min of training)"
    )
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    import torch

    from nas.jobs import subnet_evaluator
    from nas.spec import load_spec

    spec = load_spec(args.spec)
    torch.set_num_threads(args.threads)
    space, evaluator = subnet_evaluator(spec, args.checkpoint)
    config = space.resolve(args.subnet)
    start = time.perf_counter()
    result = evaluator.evaluate(config, args.split)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['config']}: top-1 {result['accuracy'] * 100:.2f}% on {result['n_images']} "
            f"{args.split} images "
            f"(BN recalibrated on {spec.supernet.bn_calibration_images} training images, "
            f"{time.perf_counter() - start:.1f}s)"
        )
    return 0


def _cmd_search(args: argparse.Namespace) -> int:

    from tqdm import tqdm

    from nas.search import SearchJob
    from nas.spec import load_spec

    spec = load_spec(args.spec)
    overrides = {
        k: v for k, v in (("trials", args.trials), ("workers", args.workers)) if v is not None
    }
    if overrides:
        spec = dataclasses.replace(spec, search=dataclasses.replace(spec.search, **overrides))
    bars: list[Any] = []  # drawn at the first report: a refused spec prints its error alone

    def progress(info: dict) -> None:
        if not bars:
            bars.append(
                tqdm(total=spec.search.trials, unit="trial", dynamic_ncols=True, disable=args.quiet)
            )
        bar = bars[0]
        bar.n = info["done"]
        # one redraw per report: set_postfix would draw the line a second time
        bar.set_postfix(pareto=info["pareto_size"], hv=f"{info['hypervolume']:.4g}", refresh=False)
        if bar.n >= bar.total:
            bar.close()  # draws the final state; the export's log lines then go below it
        else:
            bar.refresh()
        logger.debug(
            "trial %s done (%d/%d): Pareto front %d, hypervolume %.4g",
            info.get("trial"),
            info["done"],
            bar.total,
            info["pareto_size"],
            info["hypervolume"],
        )

    job = SearchJob(spec, track=not args.no_mlflow, progress=progress)
    result = job.run(export=not args.no_export)
    for bar in bars:
        bar.close()
    if args.json:
        print(json.dumps(result.summary()))
        return 0
    target = job.device_names[0]
    print(
        f"{result.n_complete} trials complete; hypervolume {result.hypervolume:.4g}; "
        f"Pareto front on {target} ({len(result.pareto)} subnets):"
    )
    for row in result.pareto:
        lat = ", ".join(f"{d} {ms:.3f} ms" for d, ms in row["latency_ms"].items())
        size = "" if row.get("size_kb") is None else f"  {row['size_kb']:7.1f} KiB"
        print(f"  top-1 {row['accuracy'] * 100:6.2f}%  {lat}{size}  {row['config']}")
    if result.parent_run_id:
        print(f"MLflow: experiment {result.experiment!r}, parent run {result.parent_run_id}")
    for reg in result.registered.values():
        aliases = ", ".join(f"{a}=v{v}" for a, v in sorted(reg["aliases"].items()))
        print(f"registered {reg['model']}: {reg['versions']} version(s); {aliases}")
    if result.registered:
        print(f"pick one: nas pick --experiment {result.experiment} --device DEVICE")
    return 0


def _cmd_netadapt(args: argparse.Namespace) -> int:
    from nas.prune import NetAdaptJob
    from nas.spec import load_spec

    spec = load_spec(args.spec)
    if spec.netadapt is not None and args.budget_ms is not None:
        na = dataclasses.replace(spec.netadapt, budget_ms=args.budget_ms, budget_ratio=None)
        spec = dataclasses.replace(spec, netadapt=na)

    def progress(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    job = NetAdaptJob(spec, track=not args.no_mlflow, progress=progress)
    result = job.run()
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"{result['start']} ({result['start_latency_ms']:.3f} ms predicted, "
        f"{result['start_measured_ms']:.3f} measured, val {result['start_val_accuracy']:.4f})"
    )
    print(
        f"-> {result['config']} after {result['iterations']} iteration(s): "
        f"{result['latency_ms']:.3f} ms predicted on {result['device']} "
        f"(budget {result['target_latency_ms']:.3f}), val {result['val_accuracy']:.4f}"
    )
    for f in result.get("exported", []):
        measured = f["latency_measured_ms"]
        print(
            f"  {f['format']}: test {f['test_accuracy'] * 100:.2f}%, "
            f"{'' if measured is None else f'{measured:.3f} ms measured, '}{f['path']}"
        )
    if result["run_id"]:
        print(f"MLflow: experiment {spec.name!r}, run {result['run_id']}")
    return 0


def _cmd_pick(args: argparse.Namespace) -> int:
    from nas.errors import NASError
    from nas.tracking.registry import candidates, choose, download, registered_name

    try:
        found = candidates(args.experiment, args.device, args.format)
    except LookupError as e:
        raise NASError(str(e)) from None
    name = registered_name(args.experiment, args.device)
    if not found:
        raise NASError(
            f"{name} has no registered version"
            + (f" in format {args.format!r}" if args.format else "")
        )
    best, shown = choose(found, args.max_latency_ms, args.min_accuracy, args.max_size_kb)
    out = sys.stderr if args.json else sys.stdout
    limits = []
    if args.max_latency_ms is not None:
        limits.append(f"latency <= {args.max_latency_ms:g} ms")
    if args.min_accuracy is not None:
        limits.append(f"test top-1 >= {args.min_accuracy * 100:g}%")
    if args.max_size_kb is not None:
        limits.append(f"size <= {args.max_size_kb:g} KiB")
    print(
        f"{name}: {len(found)} candidate(s)" + (f"; limits: {', '.join(limits)}" if limits else ""),
        file=out,
    )
    print(_candidate_table(found, best), file=out)
    if best is None:
        print(
            "nothing fits the limits; the closest:\n" + _candidate_table(shown, None),
            file=sys.stderr,
        )
        return 1
    path, contract = download(best, Path(args.out))
    pre = contract["preprocessing"]
    if args.json:
        print(
            json.dumps(
                {
                    "path": str(path),
                    "format": best.format,
                    "accuracy": best.test_accuracy,
                    "val_accuracy": best.val_accuracy,
                    "latency_ms": best.latency_ms,
                    "latency_source": f"predicted by the {args.device} table",
                    "measured_host_ms": best.measured_ms,
                    "measured_on": best.measured_on,
                    "measured_busy": best.measured_busy or None,
                    "model_uri": best.model_uri,
                    "config": best.config,
                    "preprocessing": {
                        k: pre[k]
                        for k in ("height", "width", "channels", "layout", "scale", "mean", "std")
                    },
                    "class_names": pre["class_names"],
                }
            )
        )
    else:
        print(
            f"picked v{best.version} {best.config} ({best.format}): test top-1 "
            f"{best.test_accuracy * 100:.2f}%, {best.latency_ms:.3f} ms predicted on {args.device}"
        )
        if best.measured_ms is not None:
            print(
                f"measured {best.measured_ms:.3f} ms on {best.measured_on or 'the exporting host'}"
                + (f" (flagged: {best.measured_busy})" if best.measured_busy else "")
            )
        print(
            f"feed it: {pre['layout']} {pre['height']}x{pre['width']}x{pre['channels']}, "
            f"(pixel * {pre['scale']:.6g} - {pre['mean']}) / {pre['std']}; contract: "
            f"{path}.json"
        )
        print(path)
    return 0


def _candidate_table(rows: list[Any], best: Any) -> str:
    lines = [
        f"  {'':1s} {'ver':>4s}  {'val top-1':>9s}  {'test top-1':>10s}  {'predicted':>10s}  "
        f"{'host':>9s}  {'KiB':>7s}  {'format':12s}  config  [aliases]"
    ]
    for c in rows:
        lat = f"{c.latency_ms:7.3f} ms" if c.latency_ms is not None else "       n/a"
        host = f"{c.measured_ms:6.3f} ms" if c.measured_ms is not None else "      n/a"
        host += "!" if c.measured_busy else " "
        mark = "*" if best is not None and c.version == best.version else " "
        aliases = f"  [{', '.join(c.aliases)}]" if c.aliases else ""
        lines.append(
            f"  {mark} {c.version:>4s}  {c.val_accuracy * 100:8.2f}%  "
            f"{c.test_accuracy * 100:9.2f}%  {lat}  {host} {c.size_bytes / 1024:7.1f}  "
            f"{c.format:12s}  {c.config}{aliases}"
        )
    if any(c.measured_busy for c in rows):
        lines.append(
            "  ! host latency measured on a busy machine (tag latency_measured_busy says why)"
        )
    return "\n".join(lines)


def _cmd_train_predictor(args: argparse.Namespace) -> int:
    from pathlib import Path

    import optuna

    from nas.search import SearchJob, open_study, save_predictor, train_predictor
    from nas.spec import load_spec

    spec = load_spec(args.spec)
    job = SearchJob(spec, track=False)
    trials = open_study(spec).get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    unique = {t.user_attrs["config"]: t.user_attrs["accuracy"] for t in trials}
    configs = [job.space.parse(c) for c in unique]
    model, report = train_predictor(job.space, configs, list(unique.values()), seed=spec.seed)
    out = Path(args.out) if args.out else spec.run_dir() / "acc_predictor.pth"
    save_predictor(model, out)
    summary = {**dataclasses.asdict(report), "path": str(out)}
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"trained on {report.n_train} subnets of study {spec.name!r}; held-out "
            f"{report.n_test}: "
            f"RMSE {report.rmse:.4f} (mean baseline {report.baseline_rmse:.4f}), Kendall tau "
            f"{report.kendall_tau:.3f}; saved to {out}"
        )
    return 0


def _cmd_dashboard(args: argparse.Namespace) -> int:
    import optuna_dashboard

    from nas.errors import SpecError
    from nas.search import check_storage, open_storage, storage_label
    from nas.spec import load_spec

    spec = load_spec(args.spec)
    check_storage(spec)
    if not spec.search.storage and not (spec.run_dir() / "study.journal").is_file():
        raise SpecError(f"{args.spec}: no study yet ({storage_label(spec)}); run nas search first")
    print(
        f"optuna-dashboard for {storage_label(spec)} on http://{args.host}:{args.port}/ "
        "(Ctrl-C stops it)",
        file=sys.stderr,
    )
    optuna_dashboard.run_server(open_storage(spec), host=args.host, port=args.port)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    import torch

    from nas.errors import SpecError
    from nas.export import export_subnet
    from nas.jobs import distillation, subnet_evaluator
    from nas.latency import build_latency, reference_for
    from nas.registry import EXPORT_FORMATS
    from nas.spec import load_spec
    from nas.supernet import finetune

    for name in args.format.split(","):  # before any work
        if name not in EXPORT_FORMATS:
            raise SpecError(f"--format {name!r} is not one of {EXPORT_FORMATS.names()}")
    source = Path(args.source)
    if source.suffix in (".yaml", ".yml") or source.is_file():
        spec, config_str = load_spec(source), args.subnet
    else:
        from nas.tracking.registry import trial_of_run

        spec, config_str = trial_of_run(args.source)
    torch.set_num_threads(args.threads)
    space, evaluator = subnet_evaluator(spec)
    config = space.resolve(config_str)
    latency = (
        build_latency(spec.resolve_path(spec.devices[0].lut), space, dtype=spec.devices[0].dtype)
        if spec.devices
        else None
    )
    distill = distillation(spec, "export", evaluator) if args.finetune_epochs else None
    subnet = finetune(
        evaluator.subnet(config),
        evaluator.dataset,
        space.input_shape(config)[1],
        args.finetune_epochs,
        distill=distill,
    )
    files = export_subnet(
        space,
        config,
        subnet,
        evaluator.dataset,
        Path(args.out),
        formats=args.format.split(","),
        latency_model=latency,
        threads=args.threads,
        qat_epochs=args.qat_epochs,
        reference=reference_for(latency),
    )
    if args.json:
        print(json.dumps([f.summary() for f in files]))
        return 0 if all(f.parity_ok for f in files) else 1
    print(f"{config}:")
    for f in files:
        lat = (
            f"{f.latency_measured_ms:.3f} ms measured"
            if f.latency_measured_ms is not None
            else "latency n/a"
        )
        if f.latency_predicted_ms is not None:
            lat += f", {f.latency_predicted_ms:.3f} ms predicted"
        status = "ok" if f.parity_ok else f"FAILED: {f.reason}"
        size = f"{f.size_bytes / 1024:8.1f} KiB"
        if f.size_predicted_bytes is not None:
            size += f" ({f.size_predicted_bytes / 1024:.1f} predicted)"
        print(
            f"  {f.format:22s} {size}  test top-1 "
            f"{f.test_accuracy * 100:.2f}%  "
            f"parity {f.parity_max_abs:.1e}  {lat}  [{status}]  {f.path}"
        )
    return 0 if all(f.parity_ok for f in files) else 1


def _cmd_lut_predict(args: argparse.Namespace) -> int:

    from nas.latency import build_latency
    from search_spaces import get_space

    space = get_space(args.space)
    config = space.resolve(args.subnet)
    if args.resolution is not None:
        config = space.validate(dataclasses.replace(config, resolution=args.resolution))
    model = build_latency(args.lut, space, dtype=args.dtype)
    estimate = model.predict(config)
    if args.json:
        print(
            json.dumps(
                {"latency_ms": estimate.ms, "std_ms": estimate.std, "source": estimate.source}
            )
        )
    else:
        threads = model.device.threads
        print(
            f"{config}: {estimate.ms:.3f} ms predicted ({model.kind}) on {model.device.name}, "
            f"{args.dtype}, threads {threads if threads is not None else 'not published'}"
        )
    return 0


def _cmd_lut_calibrate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from nas.latency import HostTimer, calibrate, host_device_info
    from search_spaces import get_space

    space = get_space(args.space)
    resolutions = [args.resolution] if args.resolution else list(space.resolutions)
    if args.device == "host":
        device = host_device_info(args.threads, "measured on this host by `nas lut calibrate`")
        measure = HostTimer(threads=args.threads, runs=args.runs)
    elif args.device.startswith("adb:"):
        from nas.latency import AdbTarget

        if not args.benchmark_model:
            raise SystemExit("nas lut calibrate: --device adb:SERIAL needs --benchmark-model PATH")
        target = AdbTarget(
            serial=args.device[4:],
            benchmark_model=Path(args.benchmark_model),
            threads=args.threads,
            cpu_mask=args.cpu_mask,
            num_runs=args.runs,
            adb=args.adb,
        )
        target.setup()
        device = _adb_device_info(args, target)
        measure = target.measure
    else:
        raise SystemExit(
            f"nas lut calibrate: --device must be host or adb:SERIAL, got {args.device!r}"
        )
    for resolution in resolutions:
        bar = tqdm(
            desc=f"{space.name} r{resolution} {args.dtype}", unit="layer", dynamic_ncols=True
        )

        def progress(done: int, total: int, key: str, bar=bar) -> None:
            bar.total = total
            bar.update(1)

        path = calibrate(
            space,
            resolution,
            Path(args.out),
            dtype=args.dtype,
            measure=measure,
            device=device,
            progress=progress,
            cache_dir=Path(args.cache) if args.cache else None,
            convert_only=args.convert_only,
        )
        bar.close()
        print(f"{'converted into' if args.convert_only else 'wrote'} {path}")
        busy = getattr(measure, "conditions", None) and measure.conditions.busy
        if busy and not args.convert_only:
            _flag_busy_calibration(Path(args.out), f"r{resolution} {args.dtype}", busy)
    return 0


def _flag_busy_calibration(out: Path, what: str, busy: str) -> None:
    """Say, on the terminal and in the table's device.yaml provenance, that ``what`` was timed
    on a busy machine (its entries describe the load)."""
    from nas.latency import load_device, write_device

    note = f"{what} timed on a busy machine ({busy})"
    device = load_device(out / "device.yaml")
    write_device(
        out / "device.yaml", dataclasses.replace(device, provenance=f"{device.provenance}; {note}")
    )
    print(
        f"nas: {note}: its entries describe the load, not the machine; delete the table file "
        "and calibrate again when the machine is quiet",
        file=sys.stderr,
    )


def _adb_device_info(args: argparse.Namespace, target) -> object:
    import datetime

    from nas.latency import DeviceInfo

    return DeviceInfo(
        name=args.device_name or f"android-{target.serial}",
        soc=args.soc or "unknown (pass --soc)",
        runtime="TFLite benchmark_model over adb",
        runtime_version=args.runtime_version or "unknown (pass --runtime-version)",
        threads=target.threads,
        delegate="XNNPACK (benchmark_model --use_xnnpack=true)",
        measured=(
            f"{datetime.date.today().isoformat()} by `nas lut calibrate --device {args.device}`, "
            f"taskset {target.cpu_mask}; `mean` is benchmark_model's median "
            "(or average where it prints no median)"
        ),
        provenance="measured over adb by nas",
    )


def _cmd_lut_validate(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np
    from tqdm import tqdm

    from nas.errors import SpecError
    from nas.latency import (
        fill_for_configs,
        measure_subnets,
        measures_here,
        reference_for,
        validation_report,
    )
    from nas.paths import cache_root
    from search_spaces import get_space

    space = get_space(args.space)
    cache = Path(args.cache) if args.cache else cache_root() / "subnets"
    # the overhead is fitted on its own subnets (another seed), never on those it is validated on
    fit_rng, rng = np.random.default_rng(args.seed + 1_000_003), np.random.default_rng(args.seed)
    fit_configs = [space.sample(fit_rng) for _ in range(args.fit_overhead)]
    configs = [space.sample(rng) for _ in range(args.n)]
    if args.convert_only:
        measure_subnets(None, fit_configs + configs, args.dtype, 1, cache_dir=cache, space=space)
        print(f"converted {len(fit_configs) + len(configs)} subnets into {cache}")
        return 0
    model = _table_to_validate(args, space)
    if measures_here(model.device):  # pruned widths, per-layer precisions: measured on demand
        filled = fill_for_configs(model, fit_configs + configs, cache_dir=cache.parent / "layers")
        if filled:
            logger.info("measured %d layer keys the table lacked, into %s", filled, model.lut_dir)
    reference = reference_for(model)  # its reference layers, when it is this host's table
    threads = args.threads or model.device.threads or 1

    def measure(model: Any, configs: list, desc: str) -> list[dict]:
        bar = tqdm(
            total=len(configs), desc=desc, unit="subnet", dynamic_ncols=True, disable=args.json
        )
        points = measure_subnets(
            model,
            configs,
            args.dtype,
            threads,
            cache_dir=cache,
            progress=lambda done, total: bar.update(1),
            span_s=args.span_s,
            reference=reference,
        )
        bar.close()
        return points

    if args.fit_overhead:
        if space.layer_dtypes(configs[0]) is not None:
            raise SpecError(
                f"--fit-overhead fits {args.dtype} whole models; {args.space}'s configs give "
                "their layers precisions and are priced by their layer sums"
            )
        model = _fit_overhead(args, model, measure(model, fit_configs, f"fit {args.dtype}"))
    points = measure(model, configs, f"validate {args.dtype}")
    scale, overhead = model.whole_model_fit(configs[0])
    report = validation_report(points, overhead, args.dtype, threads, scale)
    return _validation_output(args, model, report, overhead)


def _table_to_validate(args: argparse.Namespace, space: Any) -> Any:
    """The per-layer table a job would price with (on another machine, a host table's re-timing
    here), or with ``--as-is`` the folder as it is."""
    from nas.errors import SpecError
    from nas.latency import LayerTableLatency, build_latency

    if args.as_is:
        return LayerTableLatency(args.lut, space, dtype=args.dtype)
    model = build_latency(args.lut, space, dtype=args.dtype)
    if not isinstance(model, LayerTableLatency):
        raise SpecError(
            f"--lut {args.lut}: a {model.device.kind} table; nas lut validate checks per-layer "
            "tables (layer_table)"
        )
    if model.lut_dir != args.lut:
        logger.info("validating this machine's re-timing of %s: %s", args.lut, model.lut_dir)
    return model


def _fit_overhead(args: argparse.Namespace, model: Any, fit_points: list[dict]) -> Any:
    """Write the per-model overhead fitted on ``fit_points`` to the table's device.yaml; the
    table's predictor with it."""
    import statistics

    from nas.errors import SpecError
    from nas.latency import LayerTableLatency, write_device
    from nas.paths import is_shipped

    if is_shipped(model.lut_dir):
        raise SpecError(
            f"--fit-overhead writes the table's device.yaml, but {model.lut_dir} is the package's "
            "shipped table: copy the folder and validate the copy"
        )
    fitted = statistics.median(p["measured_ms"] - p["layer_sum_ms"] for p in fit_points)
    device = dataclasses.replace(
        model.device, overhead_ms={**model.device.overhead_ms, args.dtype: fitted}
    )
    write_device(model.lut_dir / "device.yaml", device)
    logger.info(
        "fitted per-model overhead (%s): %.4f ms on %d other subnets",
        args.dtype,
        fitted,
        len(fit_points),
    )
    return LayerTableLatency(model.lut_dir, model.space, dtype=args.dtype)


def _validation_output(args: argparse.Namespace, model: Any, report: Any, overhead: float) -> int:
    """The report's JSON and scatter plot, the summary line, and the exit status."""
    from nas.latency import scatter_plot
    from nas.paths import file_safe, is_shipped, runs_root

    space, threads = model.space, report.threads
    # never into the package's shipped table: its report there is the calibrating machine's
    folder = runs_root() / "validation" / model.lut_dir.name if is_shipped(model.lut_dir) else None
    # the spec's name of the space: a wrapped one (apq(...)) is not reported over its base's
    named = file_safe(args.space, default=space.name)
    out = Path(args.report_dir or (folder or model.lut_dir / "validation") / named)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{args.dtype}-t{threads}"
    (out / f"{stem}.json").write_text(
        json.dumps({**report.summary(), "seed": args.seed, "points": report.points}, indent=1)
    )
    scatter_plot(
        report,
        f"{model.device.name} / {space.name}, {args.dtype}, {threads} thread(s)\n"
        f"measured on {report.machine}",
        out / f"{stem}.png",
    )
    if args.json:
        print(json.dumps(report.summary()))
    else:
        print(
            f"{report.n} subnets, {args.dtype}, {threads} thread(s): {report.within_10pct:.0%} "
            "within ±10%, "
            f"MAPE {report.mape:.1%}, Kendall tau {report.kendall_tau:.3f} (prediction "
            f"{report.scale:.3f} x layer sum + {overhead:.3f} ms); "
            f"report in {out}"
        )
    if report.busy:
        print(
            f"nas: the subnets were timed on a busy machine ({report.busy}): these figures "
            "describe the load; validate again when the machine is quiet",
            file=sys.stderr,
        )
    if args.min_within is not None and report.within_10pct < args.min_within:
        print(
            f"nas: within_10pct {report.within_10pct:.3f} is below --min-within {args.min_within}",
            file=sys.stderr,
        )
        return 1
    return 0


class _BarSafeHandler(logging.StreamHandler):
    """Writes through tqdm, so a log line lands above a running progress bar, not inside it."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # logging's own policy: a broken handler must not break the job
            self.handleError(record)


class _TerseFormatter(logging.Formatter):
    """nas's INFO lines as plain text; warnings and errors say so and where they come from."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno <= logging.INFO:
            return text
        return f"{record.levelname.lower()}: {record.name}: {text}"


class _DropNotice(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix)


def _setup_logging(verbose: bool) -> None:
    """One handler, on the root logger: nas's own INFO lines (DEBUG with ``-v``) and every
    library's warnings, each once. MLflow and Ray keep their own handlers (their levels are set
    in nas._compat); native C++ log lines reach ``nas.native`` at DEBUG (nas._compat)."""
    root = logging.getLogger()
    for h in list(root.handlers):  # main() called twice in one process must not log twice
        if isinstance(h, _BarSafeHandler):
            root.removeHandler(h)
    handler = _BarSafeHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        if verbose
        else _TerseFormatter("%(message)s")
    )
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("nas").setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.captureWarnings(True)  # Python warnings through the same handler, above the bar
    # An embedded Ray turns token authentication on by default and says so as a WARNING on
    # every start; that is the safe setting, not something to act on.
    auth = logging.getLogger("ray._private.authentication.authentication_token_setup")
    if not any(isinstance(f, _DropNotice) for f in auth.filters):
        auth.addFilter(_DropNotice("Token authentication is enabled for this Ray cluster"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nas", description="Neural-architecture search for mobile vision models."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_spaces(sub)
    _add_train_supernet(sub)
    _add_eval(sub)
    _add_search(sub)
    _add_netadapt(sub)
    _add_pick(sub)
    _add_dashboard(sub)
    _add_train_predictor(sub)
    _add_export(sub)
    _add_lut(sub)
    return parser


def _add_spaces(sub: Any) -> None:
    p = sub.add_parser("spaces", help="list the registered search spaces")
    p.set_defaults(func=_cmd_spaces)


def _add_train_supernet(sub: Any) -> None:
    p = sub.add_parser(
        "train-supernet",
        help="train a supernet by progressive shrinking (resumable)",
        description="Train the spec's supernet. Re-running an interrupted job resumes "
        "after its last finished epoch (state in runs/<name>/).",
    )
    p.add_argument("spec", help="run spec YAML (see runs/)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train_supernet)


def _add_eval(sub: Any) -> None:
    p = sub.add_parser("eval", help="score one subnet of the trained supernet (BN recalibrated)")
    p.add_argument("spec", help="run spec YAML")
    p.add_argument(
        "--subnet",
        default="largest",
        help="largest, smallest or a config string (default: largest)",
    )
    p.add_argument(
        "--split",
        default="val",
        choices=["val", "test"],
        help="val (search) or test (final figures)",
    )
    p.add_argument("--checkpoint", help="supernet file (default: the spec's supernet.checkpoint)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument(
        "--json", action="store_true", help='print {"config", "accuracy", "split", "n_images"}'
    )
    p.set_defaults(func=_cmd_eval)


def _add_search(sub: Any) -> None:
    p = sub.add_parser(
        "search",
        help="run (or resume) a multi-objective search study on Ray workers",
        description="Driver-owned Optuna study; N trials in flight on Ray actors; logged to "
        "MLflow. Re-running the same spec resumes the study. Set RAY_ADDRESS to use "
        "a Ray cluster.",
    )
    p.add_argument("spec", help="run spec YAML (see runs/)")
    p.add_argument("--trials", type=int, help="override search.trials")
    p.add_argument("--workers", type=int, help="override search.workers")
    p.add_argument(
        "--json",
        action="store_true",
        help='print {"experiment", "parent_run_id", "n_complete", "hypervolume", "pareto"}',
    )
    p.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    p.add_argument(
        "--no-export",
        action="store_true",
        help="skip exporting and registering the Pareto models at the end (spec: export)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_search)


def _add_netadapt(sub: Any) -> None:
    p = sub.add_parser(
        "netadapt",
        help="prune a trained subnet to a latency budget (NetAdapt)",
        description="NetAdapt (Yang et al., ECCV 2018) on the first device's table: each "
        "iteration proposes, per layer, the fewest filters to remove for the predicted latency "
        "to drop by that iteration's reduction (entries for new widths are measured on this "
        "host when the table is this host's), fine-tunes each proposal briefly on Ray workers "
        "and keeps the most accurate on the validation split; then fine-tunes long, exports, "
        "verifies and registers the result. Re-running resumes after the last finished "
        "iteration (state in runs/<name>/netadapt/). Settings: the spec's netadapt section.",
    )
    p.add_argument("spec", help="run spec YAML with a netadapt section")
    p.add_argument("--budget-ms", type=float, help="override netadapt.budget_ms")
    p.add_argument("--json", action="store_true", help="print the result as one JSON line")
    p.add_argument("--no-mlflow", action="store_true", help="do not track in MLflow")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_cmd_netadapt)


def _add_dashboard(sub: Any) -> None:
    p = sub.add_parser(
        "dashboard",
        help="serve optuna-dashboard over a spec's study",
        description="optuna-dashboard (trials, Pareto front, parameter importances) over the "
        "spec's study: its journal file or search.storage. Binds 127.0.0.1 unless --host.",
    )
    p.add_argument("spec", help="run spec YAML of a search")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=8080, help="port (default 8080)")
    p.set_defaults(func=_cmd_dashboard)


def _add_pick(sub: Any) -> None:
    p = sub.add_parser(
        "pick",
        help="choose a registered model for a device and download its file",
        description="Lists the registered versions of <experiment>-<device> (latency: the "
        "device table's prediction; host: measured here when exported; test top-1: the "
        "exported file itself on the test split), chooses the most accurate one (validation "
        "top-1, as the search ranked them) within the limits, and downloads its file with its "
        "preprocessing contract (<file>.json).",
    )
    p.add_argument("--experiment", required=True, help="the search spec's name")
    p.add_argument("--device", required=True, help="a device of the spec, e.g. host-x86-litert")
    p.add_argument("--max-latency-ms", type=float, help="predicted latency limit on the device")
    p.add_argument("--min-accuracy", type=float, help="minimum test top-1 of the file, in [0, 1]")
    p.add_argument("--max-size-kb", type=float, help="largest file, in KiB (1024 bytes), e.g. 300")
    p.add_argument("--format", help="only this format, e.g. tflite-int8")
    p.add_argument("--out", default=".", help="download folder (default: .)")
    p.add_argument(
        "--json",
        action="store_true",
        help='print {"path", "format", "accuracy", "latency_ms", "model_uri", "preprocessing"}',
    )
    p.set_defaults(func=_cmd_pick)


def _add_train_predictor(sub: Any) -> None:
    p = sub.add_parser(
        "train-predictor", help="fit an accuracy predictor on a study's evaluated trials"
    )
    p.add_argument("spec", help="run spec YAML of a study that has run")
    p.add_argument("--out", help="where to save it (default runs/<name>/acc_predictor.pth)")
    p.add_argument(
        "--json", action="store_true", help="print {n_train, n_test, rmse, kendall_tau, ...}"
    )
    p.set_defaults(func=_cmd_train_predictor)


def _add_export(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="export a subnet to TFLite / ONNX and verify every file",
        description="Extracts the subnet, recalibrates BN, exports each format, and checks "
        "parity with PyTorch, the file's own test accuracy, host latency and size. "
        "Each file gets <file>.json with its preprocessing contract.",
    )
    p.add_argument(
        "source",
        metavar="SPEC|RUN_ID",
        help="a run spec YAML (with --subnet), or the MLflow run id of any search trial "
        "(its config and its study's spec are read from MLflow)",
    )
    p.add_argument(
        "--subnet",
        default="largest",
        help="with a spec: largest, smallest or a config string (default: largest)",
    )
    p.add_argument(
        "--format",
        default="tflite-fp32,tflite-int8",
        help="comma-separated: tflite-fp32, tflite-fp16, tflite-dynamic-int8, tflite-int8 "
        "(per-channel weights), tflite-int8-per-tensor (smaller), tflite-int8-qat "
        "(quantization-aware training with tfmot), onnx-fp32, onnx-int8, executorch-xnnpack "
        "(.pte for ExecuTorch's XNNPACK backend)",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--finetune-epochs",
        type=int,
        default=0,
        help="fine-tune the subnet on the training split first (default 0: as searched), "
        "distilled from the spec's export.distill teacher when it has one",
    )
    p.add_argument(
        "--qat-epochs", type=int, default=1, help="QAT epochs for tflite-int8-qat (default 1)"
    )
    p.add_argument("--threads", type=int, default=1, help="threads of the latency measurement")
    p.add_argument("--json", action="store_true", help="print one summary per file")
    p.set_defaults(func=_cmd_export)


def _add_lut(sub: Any) -> None:
    lut = sub.add_parser("lut", help="latency lookup tables: calibrate, validate, predict, fit")
    lsub = lut.add_subparsers(dest="lut_command", required=True, metavar="LUT_COMMAND")
    for add in (_add_lut_predict, _add_lut_calibrate, _add_lut_validate, _add_lut_fit):
        add(lsub)


def _add_lut_predict(lsub: Any) -> None:
    p = lsub.add_parser("predict", help="predicted latency of one subnet from a table folder")
    p.add_argument(
        "--lut", required=True, type=resolve, help="table folder, e.g. latency_luts/note10"
    )
    p.add_argument("--space", required=True, help="search space (see `nas spaces`)")
    p.add_argument("--subnet", default="largest", help="largest, smallest or a config string")
    p.add_argument("--resolution", type=int, help="override the config's input resolution")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "int8"])
    p.add_argument("--json", action="store_true", help='print {"latency_ms": float}')
    p.set_defaults(func=_cmd_lut_predict)


def _add_lut_calibrate(lsub: Any) -> None:
    p = lsub.add_parser(
        "calibrate",
        help="measure every layer of a space into a table (resumable)",
        description="Builds each distinct layer as its own .tflite and times it (host: LiteRT "
        "interpreter; adb:SERIAL: benchmark_model on the phone). Re-running skips "
        "layers already in the table.",
    )
    p.add_argument("--space", required=True)
    p.add_argument(
        "--resolution", type=int, help="one resolution (default: every resolution of the space)"
    )
    p.add_argument("--device", default="host", help="host, or adb:SERIAL for a phone")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "int8"])
    p.add_argument(
        "--runs", type=int, default=100, help="timed runs per layer, in 10 rounds (>= 50)"
    )
    p.add_argument(
        "--out", required=True, help="table folder (device.yaml and <space>/<resolution>.yaml)"
    )
    p.add_argument(
        "--benchmark-model", help="adb: local path of TFLite's benchmark_model binary to push"
    )
    p.add_argument(
        "--cpu-mask", default="f0", help="adb: taskset mask, hex (default f0: cores 4-7)"
    )
    p.add_argument("--adb", default="adb", help="adb: the adb executable")
    p.add_argument("--device-name", help="adb: name written to device.yaml")
    p.add_argument("--soc", help="adb: SoC written to device.yaml")
    p.add_argument(
        "--runtime-version", help="adb: benchmark_model / TFLite version for device.yaml"
    )
    p.add_argument("--cache", help="keep converted layer files here (reused by later runs)")
    p.add_argument(
        "--convert-only", action="store_true", help="only convert the layer files into --cache"
    )
    p.set_defaults(func=_cmd_lut_calibrate)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _port(text: str) -> int:
    value = _positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a port 1-65535, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _add_lut_validate(lsub: Any) -> None:
    p = lsub.add_parser("validate", help="whole random subnets: predicted vs measured on this host")
    p.add_argument("--lut", required=True, type=resolve, help="table folder")
    p.add_argument("--space", required=True)
    p.add_argument("--n", type=_positive_int, default=50, help="random subnets (default 50)")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "int8"])
    p.add_argument("--threads", type=_positive_int, help="default: the table's threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--span-s",
        type=_non_negative_float,
        default=60.0,
        metavar="S",
        help="spread the timing rounds over at least S seconds, so that a slow spell of a "
        "shared host cannot cover all of them (default 60; 0: back to back)",
    )
    p.add_argument(
        "--report-dir",
        help="default: <lut>/validation/<space>/ (runs/validation/<lut name>/<space>/ for a "
        "shipped table)",
    )
    p.add_argument(
        "--as-is",
        action="store_true",
        help="validate the folder as it is (default: the table a job prices with here; on "
        "another machine, a host table's re-timing on this one)",
    )
    p.add_argument(
        "--min-within", type=float, help="exit 1 if the share within ±10%% is below this"
    )
    p.add_argument(
        "--fit-overhead",
        type=int,
        metavar="N",
        default=0,
        help="first fit the per-model overhead on N other random subnets (another seed) "
        "and write it to device.yaml",
    )
    p.add_argument(
        "--cache",
        help="keep converted subnet files here, reused by later runs (default: <cache>/subnets, "
        "NAS_CACHE_DIR or ./runs/cache)",
    )
    p.add_argument(
        "--convert-only",
        action="store_true",
        help="only convert the subnets (and the --fit-overhead ones) into the cache",
    )
    p.add_argument(
        "--json", action="store_true", help="print {within_10pct, mape, kendall_tau, n, ...}"
    )
    p.set_defaults(func=_cmd_lut_validate)


def _add_lut_fit(lsub: Any) -> None:
    p = lsub.add_parser(
        "fit",
        help="a table for a new device or setting from a few timed whole models",
        description="From N whole-model timings and tables timed in full. With arch_table "
        "sources (nb201's phones): every architecture of the space, by a non-negative mix of "
        "the sources plus an op-count residual. With a layer_table source (the host table): "
        "a per-layer table at another setting (--dtype, --threads), one scale per layer group "
        "plus a per-model overhead. `--suggest N` prints what to time; `--timings CSV` fits "
        "those timings; `--device host --n N` times N subnets here and fits. The new folder's "
        "provenance records the sources and the fit's held-out error "
        "(benchmarks/latency_fewshot.py measures the method).",
    )
    p.add_argument("--space", required=True, help="nb201 (arch tables) or a layer-table space")
    p.add_argument(
        "--sources",
        nargs="+",
        type=resolve,
        metavar="DIR",
        help="table folders timed in full (default: every shipped one with --space)",
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--suggest", type=int, metavar="N", help="print N models to time")
    what.add_argument("--timings", metavar="CSV", help="columns config,ms: the timed models")
    what.add_argument(
        "--device",
        help="host: time --n subnets on this host and fit (layer_table source); adb:SERIAL is "
        "not built yet (time the --suggest'ed models with benchmark_model, pass --timings)",
    )
    p.add_argument(
        "--n", type=_positive_int, default=10, help="subnets to time with --device (default 10)"
    )
    p.add_argument("--seed", type=int, default=0, help="for --suggest and --device (default 0)")
    p.add_argument("--out", help="the new table folder (with --timings or --device)")
    p.add_argument("--name", help="the new device's name (default: the --out folder's name)")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "int8"])
    p.add_argument("--threads", type=int, help="default: the source's threads")
    p.add_argument("--soc", default="unknown (pass --soc)", help="arch fit: the new device's SoC")
    p.add_argument("--runtime", default="unknown (pass --runtime)", help="arch fit: its runtime")
    p.add_argument(
        "--span-s",
        type=_non_negative_float,
        default=10.0,
        metavar="S",
        help="--device host: spread the timing rounds over at least S seconds (default 10)",
    )
    p.set_defaults(func=_cmd_lut_fit)


def _cmd_lut_fit(args: argparse.Namespace) -> int:
    from nas.errors import FewShotError
    from nas.latency import load_device
    from nas.paths import assets_root

    sources = args.sources or [
        d
        for d in sorted((assets_root() / "latency_luts").iterdir())
        if (d / "device.yaml").is_file() and (d / args.space).is_dir()
    ]
    if not sources:
        raise FewShotError(f"--space {args.space!r}: no shipped table has it; pass --sources")
    kind_of = {d: load_device(d / "device.yaml").kind for d in sources}
    kinds = set(kind_of.values())
    if len(kinds) > 1:
        raise FewShotError(
            "--sources: a fit takes folders of one kind, got "
            + ", ".join(f"{d.name} ({k})" for d, k in kind_of.items())
        )
    if "layer_table" in kinds:
        return _lut_fit_layers(args, sources)
    if args.device:
        raise FewShotError(
            f"--device {args.device}: timing {args.space} models on a phone over adb is not "
            "built yet; time the --suggest'ed models with benchmark_model and pass --timings"
        )
    return _lut_fit_archs(args, sources)


def _lut_fit_archs(args: argparse.Namespace, sources: list) -> int:
    from pathlib import Path

    from nas.latency import DeviceInfo, fit_arch_table, read_timings, suggest_archs

    if args.suggest is not None:
        for config in suggest_archs(sources, args.space, args.suggest, seed=args.seed):
            print(config)
        return 0
    out = Path(_fit_out(args))
    timings = read_timings(args.timings)
    device = DeviceInfo(
        name=args.name or out.name,
        soc=args.soc,
        runtime=args.runtime,
        runtime_version="unknown",
        threads=args.threads,
        delegate="unknown",
        measured=f"{len(timings)} whole-model timings from {args.timings}; every other "
        "architecture fitted (count 0)",
        provenance="",
    )
    report = fit_arch_table(sources, args.space, timings, out, device)
    print(f"wrote {report.table} from {report.n} timings and {len(report.sources)} sources; "
          f"{_held_out(report)}")  # fmt: skip
    return 0


def _lut_fit_layers(args: argparse.Namespace, sources: list) -> int:
    import time

    from nas.errors import FewShotError
    from nas.latency import fit_layer_table, load_device, read_timings, suggest_subnets, time_here
    from nas.paths import cache_root
    from search_spaces import get_space

    if len(sources) != 1:
        raise FewShotError(f"--sources: a layer_table fit takes one source folder, got {sources}")
    source, space = sources[0], get_space(args.space)
    threads = args.threads or load_device(source / "device.yaml").threads or 1
    start = time.perf_counter()
    if args.suggest is not None:
        for config in suggest_subnets(source, space, args.suggest, seed=args.seed):
            print(config)
        return 0
    out = _fit_out(args)
    if args.timings:
        timings = read_timings(args.timings)
    elif args.device != "host":
        raise FewShotError(
            f"--device {args.device!r}: a layer_table fit times on this host (--device host)"
        )
    else:
        configs = suggest_subnets(source, space, args.n, seed=args.seed)
        timings = time_here(
            source, space, configs, args.dtype, threads,
            runs=100, cache_dir=cache_root() / "subnets", span_s=args.span_s,
        )  # fmt: skip
    report = fit_layer_table(
        source, space, timings, out, dtype=args.dtype, threads=threads, name=args.name
    )
    print(f"wrote {report.table} ({args.dtype}, {threads} thread(s)) from {report.n} timings "
          f"in {time.perf_counter() - start:.0f} s; {_held_out(report)}")  # fmt: skip
    return 0


def _fit_out(args: argparse.Namespace) -> str:
    if not args.out:
        raise SystemExit("nas lut fit: --timings and --device need --out DIR (the new folder)")
    return args.out


def _held_out(report: Any) -> str:
    if report.heldout_mape != report.heldout_mape:  # nan: too few timings to leave one out
        return "held-out error not measured (too few timings)"
    return f"held-out MAPE {report.heldout_mape:.1%}, {report.heldout_within_10pct:.0%} within ±10%"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
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
