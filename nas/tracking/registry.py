"""The model registry: a search's Pareto models exported, verified and registered per device
(``<experiment>-<device>``, one version per model and format), and ``nas pick`` reading it back.

Every version is an MLflow pyfunc model holding the exported file and its preprocessing contract,
so ``mlflow.pyfunc.load_model("models:/<name>@<alias>")`` predicts on a numpy batch of raw pixels;
its tags carry what ``nas pick`` shows (config, accuracies, predicted and measured latency, format,
size). Aliases: ``fastest``, ``most-accurate`` and ``best-under-<X>ms`` per latency budget.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import mlflow
import numpy as np

from nas.export import exporter

__all__ = [
    "Candidate",
    "ExportedModel",
    "budget_alias",
    "candidates",
    "choose",
    "download",
    "ensure_registered_model",
    "plan_exports",
    "register_files",
    "set_aliases",
    "registered_name",
    "select_members",
    "tracking_client",
    "trial_of_run",
]

logger = logging.getLogger(__name__)

#: the format a device's table prices, when the spec names none
DEFAULT_FORMAT = {"fp32": "tflite-fp32", "fp16": "tflite-fp16", "int8": "tflite-int8"}
#: the file MLflow stores with each version and runs to build its ``ExportedModel``
_MODEL_CODE = Path(__file__).with_name("_pyfunc_model.py")
_PIP = ["ai-edge-litert==2.3.0", "onnxruntime==1.32.0", "numpy", "torch==2.13.0"]


def registered_name(experiment: str, device: str) -> str:
    return f"{experiment}-{device}"


def budget_alias(ms: float) -> str:
    """``best-under-20ms``, ``best-under-2p5ms`` (aliases allow no dots)."""
    return f"best-under-{ms:g}ms".replace(".", "p")


class ExportedModel(mlflow.pyfunc.PythonModel):
    """pyfunc around one exported file. Input: raw 0-255 pixels, ``(N, H, W)`` or
    ``(N, H, W, C)`` (any H, W: resized bilinearly to the file's size like at export); output:
    float logits ``(N, classes)`` in the contract's ``class_names`` order."""

    def load_context(self, context: Any) -> None:
        from nas.export import open_runner

        self.contract = json.loads(Path(context.artifacts["contract"]).read_text())["preprocessing"]
        self.runner = open_runner(Path(context.artifacts["model"]), threads=1)

    # np.ndarray hints: MLflow takes them as "no schema", so it hands the batch over as given
    # (see _no_signature_notice); without hints it warns on every version it logs.
    def predict(
        self, context: Any, model_input: np.ndarray, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        import torch

        from nas.data import Preprocessing, resize

        c = self.contract
        x = np.asarray(model_input, dtype=np.float32)
        if x.ndim == 3:
            x = x[..., None]
        if x.ndim != 4 or x.shape[-1] != c["channels"]:
            raise ValueError(
                f"expected raw pixels shaped (N, H, W) or (N, H, W, {c['channels']}), got {x.shape}"
            )
        pre = Preprocessing(
            height=c["height"],
            width=c["width"],
            channels=c["channels"],
            mean=tuple(c["mean"]),
            std=tuple(c["std"]),
            scale=c["scale"],
        )
        x = pre.apply(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))))
        return self.runner(np.ascontiguousarray(resize(x, c["height"]).numpy()))


# ---- choosing which Pareto members to export ----------------------------------------------
def select_members(
    front: Sequence[dict[str, Any]], k: int | None, budgets_ms: Sequence[float]
) -> list[dict[str, Any]]:
    """From a front of ``{"latency_ms", "accuracy", ...}`` rows: all of it (``k`` None), else the
    fastest, the most accurate, the best under each budget, then members spread evenly over the
    latency range until ``k`` (the named ones are always kept, even past ``k``)."""
    rows = sorted(front, key=lambda r: r["latency_ms"])
    if k is None or len(rows) <= k:
        return rows
    keep = {0, max(range(len(rows)), key=lambda i: rows[i]["accuracy"])}
    for b in budgets_ms:
        under = [i for i, r in enumerate(rows) if r["latency_ms"] <= b]
        if under:
            keep.add(max(under, key=lambda i: rows[i]["accuracy"]))
    for i in np.linspace(0, len(rows) - 1, num=max(k, 2)).round().astype(int):
        if len(keep) >= k:
            break
        keep.add(int(i))
    return [rows[i] for i in sorted(keep)]


def _set_aliases(
    client: Any, name: str, versions: list[Any], fmt: str, budgets_ms: Sequence[float]
) -> dict[str, str]:
    rows = [
        (v, float(v.tags["latency_predicted_ms"]), float(v.tags["val_accuracy"]))
        for v in versions
        if v.tags.get("format") == fmt and v.tags.get("latency_predicted_ms")
    ]
    if not rows:
        return {}
    aliases = {
        "fastest": min(rows, key=lambda r: (r[1], -r[2]))[0],
        "most-accurate": max(rows, key=lambda r: (r[2], -r[1]))[0],
    }
    for b in budgets_ms:
        under = [r for r in rows if r[1] <= b]
        if under:
            aliases[budget_alias(b)] = max(under, key=lambda r: (r[2], -r[1]))[0]
    for alias, v in aliases.items():
        client.set_registered_model_alias(name, alias, v.version)
    return {alias: v.version for alias, v in aliases.items()}


def tracking_client(spec_uri: str | None = None) -> Any:
    """An ``MlflowClient`` of ``nas.tracking.tracking_uri(spec_uri)``, which also becomes
    mlflow's current URI (artifact downloads go there)."""
    from mlflow.tracking import MlflowClient

    from nas.tracking._uri import tracking_uri

    uri = tracking_uri(spec_uri)
    mlflow.set_tracking_uri(uri)
    return MlflowClient(uri)


def trial_of_run(run_id: str) -> tuple[Any, str]:
    """The spec a search trial's study ran with (its parent run's ``spec/`` artifact) and the
    trial's config string.

    Raises:
        SpecError: ``run_id`` is no run of the tracking store, or no search trial, or its study
            run holds no spec.
    """
    from mlflow.exceptions import MlflowException

    from nas.errors import SpecError
    from nas.spec import load_spec

    client = tracking_client()
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise SpecError(
            f"{run_id!r} is neither a run spec file nor an MLflow run in "
            f"{mlflow.get_tracking_uri()}"
        ) from None
    config = run.data.params.get("config")
    parent = run.data.tags.get("mlflow.parentRunId")
    if not config or not parent:
        raise SpecError(f"MLflow run {run_id} is not a search trial (no config / parent run)")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            folder = Path(mlflow.artifacts.download_artifacts(f"runs:/{parent}/spec", dst_path=tmp))
        except (MlflowException, OSError):
            raise SpecError(
                f"the study run {parent} of trial {run_id} has no spec artifact"
            ) from None
        spec = load_spec(next(folder.glob("*.y*ml")))
    return spec, config


def plan_exports(
    client: Any,
    spec: Any,
    job: Any,
    fronts: dict[str, list[dict[str, Any]]],
    run_ids: dict[str, str],
    out_dir: Path,
    budgets: list[float],
) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """The export tasks (one per chosen member not registered yet in every format) and each
    device's formats; the registered models are created here."""
    k = None if spec.export.select == "front" else spec.export.k
    tasks, formats = [], {}
    for index, (device, device_spec) in enumerate(zip(job.device_names, spec.devices, strict=True)):
        name = registered_name(spec.name, device)
        formats[device] = list(spec.export.formats) or [DEFAULT_FORMAT[device_spec.dtype]]
        ensure_registered_model(
            client,
            name,
            device,
            spec.name,
            f"Pareto models of {spec.name} for {device} ({device_spec.dtype}); "
            f"latency predicted by {device_spec.lut}",
        )
        done = {
            (v.tags.get("trial_run_id"), v.tags.get("format"))
            for v in client.search_model_versions(f"name='{name}'")
        }
        rows = [
            {**r, "latency_ms": r["latency_ms"][device], "all": r} for r in fronts.get(device, [])
        ]
        for row in select_members(rows, k, budgets):
            run_id = run_ids[row["config"]]
            todo = [f for f in formats[device] if (run_id, f) not in done]
            if todo:
                tasks.append(
                    dict(
                        device=device,
                        index=index,
                        name=name,
                        row=row,
                        run_id=run_id,
                        todo=todo,
                        out=str(out_dir / name),
                    )
                )
    return tasks, formats


def ensure_registered_model(
    client: Any, name: str, device: str, experiment: str, description: str
) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(
            name, tags={"device": device, "experiment": experiment}, description=description
        )
    except MlflowException:
        pass  # already there: a resumed or repeated job adds to it


def register_files(
    client: Any,
    name: str,
    run_id: str,
    row: dict,
    device: str,
    files: Sequence[Any],
    finetune_epochs: int,
) -> None:
    """Register each exported file that passed parity as a version of ``name`` (tagged with
    ``row``'s config and validation accuracy); a rejected one is tagged on ``run_id`` only."""
    for f in files:
        if not f.parity_ok:
            client.set_tag(run_id, f"export.{f.format}", f"rejected: {f.reason}")
            logger.warning("%s %s not registered: %s", row["config"], f.format, f.reason)
            continue
        _register_file(client, name, run_id, row, device, f, finetune_epochs)
        client.set_tag(run_id, f"export.{f.format}", "registered")


def set_aliases(client: Any, name: str, fmt: str, budgets: Sequence[float]) -> dict[str, Any]:
    """Point the aliases of ``name`` at its versions of format ``fmt``; a summary back."""
    versions = client.search_model_versions(f"name='{name}'")
    aliases = _set_aliases(client, name, versions, fmt, budgets)
    return {"model": name, "versions": len(versions), "aliases": aliases}


def _register_file(
    client: Any, name: str, run_id: str, row: dict, device: str, f: Any, finetune_epochs: int
) -> None:
    contract = f.path.with_suffix(f.path.suffix + ".json")
    tags = {
        "config": row["config"],
        "device": device,
        "format": f.format,
        "precision": f.precision,
        "runtime": f.runtime,
        "val_accuracy": str(row["accuracy"]),
        "test_accuracy": str(f.test_accuracy),
        "n_test": str(f.n_test),
        "latency_predicted_ms": ""
        if f.latency_predicted_ms is None
        else str(f.latency_predicted_ms),
        "latency_measured_ms": "" if f.latency_measured_ms is None else str(f.latency_measured_ms),
        "latency_measured_on": f.latency_measured_on or "",
        "latency_measured_std_ms": ""
        if f.latency_measured_std_ms is None
        else str(f.latency_measured_std_ms),
        "latency_measured_busy": f.latency_measured_busy or "",
        "size_bytes": str(f.size_bytes),
        "size_predicted_bytes": ""
        if f.size_predicted_bytes is None
        else str(f.size_predicted_bytes),
        "parity_max_abs": f"{f.parity_max_abs:.3e}",
        "trial_run_id": run_id,
        "finetune_epochs": str(finetune_epochs),
        "file": f.path.name,
    }
    with mlflow.start_run(run_id=run_id), _no_signature_notice():
        info = mlflow.pyfunc.log_model(
            name=f.format,
            python_model=str(_MODEL_CODE),
            artifacts={"model": str(f.path), "contract": str(contract)},
            pip_requirements=[*_PIP, *exporter(f.format).requirements],
        )
    # the client, not mlflow.register_model, which prints "Created version ..." to stderr
    client.create_model_version(
        name, info.model_uri, run_id=run_id, tags=tags, model_id=info.model_id
    )


class _SignatureNoticeFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Failed to infer model signature")


@contextlib.contextmanager
def _no_signature_notice() -> Iterator[None]:
    """Drop MLflow's warning that ``predict``'s ``np.ndarray`` hints give no signature: there is
    none to give (any batch size, image size and rank 3 or 4 is accepted), and a signature would
    make MLflow reject the inputs the model documents."""
    pyfunc_logger = logging.getLogger("mlflow.pyfunc")
    notice = _SignatureNoticeFilter()
    pyfunc_logger.addFilter(notice)
    try:
        yield
    finally:
        pyfunc_logger.removeFilter(notice)


# ---- nas pick ----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Candidate:
    version: str
    config: str
    format: str
    val_accuracy: float
    test_accuracy: float
    latency_ms: float | None  # predicted by the device's table
    measured_ms: float | None  # measured on the exporting host ...
    measured_on: str  # ... this one (machine, runtime, threads; "" for older versions)
    measured_busy: str  # why that measurement is flagged (a busy machine); "": it is not
    size_bytes: int
    aliases: tuple[str, ...]
    model_uri: str
    file: str


def candidates(experiment: str, device: str, fmt: str | None = None) -> list[Candidate]:
    """Every registered version of ``<experiment>-<device>`` (optionally one format).

    Raises:
        LookupError: no such registered model (the message lists the ones there are).
    """
    from mlflow.exceptions import MlflowException

    client = tracking_client()
    name = registered_name(experiment, device)
    try:
        model = client.get_registered_model(name)
    except MlflowException:
        known = sorted(m.name for m in client.search_registered_models())
        raise LookupError(
            f"no registered model {name!r} (experiment {experiment!r}, device {device!r}) in "
            f"{mlflow.get_tracking_uri()}; registered: {known or 'none'}"
        ) from None
    by_version: dict[str, list[str]] = {}
    for alias, version in (model.aliases or {}).items():
        by_version.setdefault(str(version), []).append(alias)

    def num(v: Any, tag: str) -> float | None:
        value = v.tags.get(tag)
        return float(value) if value else None

    out = [
        Candidate(
            version=str(v.version),
            config=v.tags.get("config", ""),
            format=v.tags.get("format", ""),
            val_accuracy=num(v, "val_accuracy") or 0.0,
            test_accuracy=num(v, "test_accuracy") or 0.0,
            latency_ms=num(v, "latency_predicted_ms"),
            measured_ms=num(v, "latency_measured_ms"),
            measured_on=v.tags.get("latency_measured_on", ""),
            measured_busy=v.tags.get("latency_measured_busy", ""),
            size_bytes=int(v.tags.get("size_bytes", 0)),
            aliases=tuple(sorted(by_version.get(str(v.version), []))),
            model_uri=f"models:/{name}/{v.version}",
            file=v.tags.get("file", ""),
        )
        for v in client.search_model_versions(f"name='{name}'")
    ]
    out = [c for c in out if fmt is None or c.format == fmt]
    return sorted(out, key=lambda c: (c.latency_ms is None, c.latency_ms or 0.0, -c.val_accuracy))


def choose(
    found: Sequence[Candidate],
    max_latency_ms: float | None,
    min_accuracy: float | None,
    max_size_kb: float | None = None,
) -> tuple[Candidate | None, list[Candidate]]:
    """The most accurate candidate (validation accuracy, as the search ranked them) within the
    limits (latency: the device table's prediction; accuracy: the exported file's test top-1;
    size: the file's, in KiB), or None and the closest ones when nothing fits."""
    fits = [
        c
        for c in found
        if (max_latency_ms is None or (c.latency_ms is not None and c.latency_ms <= max_latency_ms))
        and (min_accuracy is None or c.test_accuracy >= min_accuracy)
        and (max_size_kb is None or c.size_bytes <= max_size_kb * 1024)
    ]
    if fits:
        return max(fits, key=lambda c: (c.val_accuracy, -(c.latency_ms or 0.0))), fits

    def miss(c: Candidate) -> float:
        over = 0.0
        if max_latency_ms is not None and c.latency_ms is not None:
            over += max(0.0, c.latency_ms / max_latency_ms - 1.0)
        if min_accuracy is not None:
            over += max(0.0, min_accuracy - c.test_accuracy) * 10
        if max_size_kb is not None:
            over += max(0.0, c.size_bytes / (max_size_kb * 1024) - 1.0)
        return over

    return None, sorted(found, key=miss)[:3]


def download(candidate: Candidate, out_dir: Path) -> tuple[Path, dict[str, Any]]:
    """Copy the candidate's file and its contract JSON into ``out_dir``; returns the file's path
    and the contract. A file name from the registry that is not a plain name (a folder in it,
    ``..``) is refused: nothing from a registry is written outside ``out_dir``.

    Raises:
        NASError: the registered file name is not a plain file name.
        FileNotFoundError: the registered model holds no such file with its contract.
    """
    name = candidate.file
    if name in ("", ".", "..") or Path(name).name != name or "\\" in name:
        from nas.errors import NASError

        raise NASError(
            f"{candidate.model_uri}: its file name {name!r} is not a plain file name; "
            "nothing written"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(mlflow.artifacts.download_artifacts(candidate.model_uri, dst_path=tmp))
        files = {p.name: p for p in local.rglob("*") if p.is_file()}
        if name not in files or name + ".json" not in files:
            raise FileNotFoundError(
                f"{candidate.model_uri}: the registered model holds no {name!r} with its contract"
            )
        path = out_dir / name
        shutil.copyfile(files[name], path)
        shutil.copyfile(files[name + ".json"], out_dir / (name + ".json"))
    return path, json.loads((out_dir / (name + ".json")).read_text())
