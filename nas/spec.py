"""Run specs: frozen dataclasses loaded from YAML and validated up front with clear errors.

Every error names the offending field by its dotted path (``supernet.phases[2].epochs``) and,
for choices, the allowed values.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal

from nas import registry
from nas.errors import SpecError
from nas.paths import resolve, runs_root

#: Fashion-MNIST's training images (``dataset.val_size`` of them are held out as validation)
FASHION_MNIST_TRAIN = 60_000

__all__ = [
    "DatasetSpec",
    "DeviceSpec",
    "DistillSpec",
    "EvaluatorSpec",
    "NetAdaptSpec",
    "SearchSpec",
    "PhaseSpec",
    "SupernetSpec",
    "RunSpec",
    "load_spec",
    "spec_from_dict",
]


@dataclasses.dataclass(frozen=True, kw_only=True)
class DatasetSpec:
    """Where the images come from.

    name: a registered dataset loader (``nas.registry.DATASETS``): ``fashion_mnist`` (IDX files)
    or ``image_folder`` (``root/<class>/<image>``).
    root: the folder; default for fashion_mnist is Debian's ``/usr/share/datasets/fashion-mnist``.
    val_size: images of the training set held out as the validation split (fashion_mnist).
    val_fraction: the same as a fraction (image_folder).
    image_size / channels: what image_folder images are resized and converted to.
    split_seed: the seed of the train/validation split.
    """

    name: str = "fashion_mnist"
    root: str | None = None
    val_size: int = 10_000
    val_fraction: float = 0.1
    image_size: int = 28
    channels: int = 1
    split_seed: int = 0

    def __post_init__(self) -> None:
        _check_name(registry.DATASETS, "dataset.name", self.name)
        if self.name == "image_folder" and self.root is None:
            raise SpecError("dataset.root is required when dataset.name is image_folder")
        _check(self.val_size > 0, "dataset.val_size", self.val_size, "must be > 0")
        if self.name == "fashion_mnist":
            _check(
                self.val_size < FASHION_MNIST_TRAIN,
                "dataset.val_size",
                self.val_size,
                f"must be < {FASHION_MNIST_TRAIN} (Fashion-MNIST's training images)",
            )
        _check(
            0 < self.val_fraction < 1,
            "dataset.val_fraction",
            self.val_fraction,
            "must be in (0, 1)",
        )
        _check(self.channels in (1, 3), "dataset.channels", self.channels, "must be 1 or 3")


@dataclasses.dataclass(frozen=True, kw_only=True)
class PhaseSpec:
    """One progressive-shrinking phase: which choices are elastic, for how long, at which LR.

    kernels / expands / depths: the allowed values in this phase (null = the space's maximum only).
    resolutions: the input resolutions drawn in this phase (null = every resolution of the
    space; the largest subnet is trained at the largest of them).
    reorganize_expand: sort expanded channels by importance before the phase (OFA does this
    before each elastic-expand phase).
    """

    name: str
    epochs: int
    lr: float
    kernels: tuple[int, ...] | None = None
    expands: tuple[int, ...] | None = None
    depths: tuple[int, ...] | None = None
    resolutions: tuple[int, ...] | None = None
    reorganize_expand: bool = False

    def __post_init__(self) -> None:
        _check(self.epochs >= 1, f"phase {self.name!r}.epochs", self.epochs, "must be >= 1")
        _check(self.lr > 0, f"phase {self.name!r}.lr", self.lr, "must be > 0")


def _default_phases() -> tuple[PhaseSpec, ...]:
    return (
        PhaseSpec(name="full", epochs=6, lr=0.1),
        PhaseSpec(name="kernel", epochs=3, lr=0.03, kernels=(3, 5, 7)),
        PhaseSpec(name="depth", epochs=4, lr=0.03, kernels=(3, 5, 7), depths=(2, 3, 4)),
        PhaseSpec(
            name="expand",
            epochs=6,
            lr=0.03,
            kernels=(3, 5, 7),
            depths=(2, 3, 4),
            expands=(3, 4, 6),
            reorganize_expand=True,
        ),
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class SupernetSpec:
    """Supernet training (progressive shrinking with sandwich sampling and in-place distillation).

    checkpoint: where the trained supernet weights are written (and read by evaluators).
    batch_size, threads: per step; threads = torch intra-op threads.
    n_random_subnets: random subnets per step besides the largest and the smallest.
    kd_weight: weight of the distillation loss from the largest subnet's logits.
    label_smoothing, weight_decay, momentum: the optimizer and loss.
    init_weights: a supernet file of the same space whose weights start the training (null:
    random initialization), e.g. a trained supernet extended to a larger space; a resumed
    training starts from its own state instead.
    bn_calibration_images: training images used to recalibrate BatchNorm of each extracted subnet.
    eval_images: validation images scored after each epoch (largest and smallest subnets).
    store_fp16: store the final weights as float16 (halves the file; loaded back as float32).
    phases: the progressive-shrinking schedule.
    """

    checkpoint: str = "checkpoints/supernet.pt"
    init_weights: str | None = None
    batch_size: int = 256
    threads: int = 2
    n_random_subnets: int = 1
    kd_weight: float = 1.0
    label_smoothing: float = 0.1
    weight_decay: float = 5e-5
    momentum: float = 0.9
    bn_calibration_images: int = 2000
    eval_images: int = 5000
    store_fp16: bool = True
    phases: tuple[PhaseSpec, ...] = dataclasses.field(default_factory=_default_phases)

    def __post_init__(self) -> None:
        _check(self.batch_size >= 1, "supernet.batch_size", self.batch_size, "must be >= 1")
        _check(self.threads >= 1, "supernet.threads", self.threads, "must be >= 1")
        _check(
            self.n_random_subnets >= 0,
            "supernet.n_random_subnets",
            self.n_random_subnets,
            "must be >= 0",
        )
        _check(len(self.phases) >= 1, "supernet.phases", self.phases, "needs at least one phase")
        _check(
            self.bn_calibration_images >= 1,
            "supernet.bn_calibration_images",
            self.bn_calibration_images,
            "must be >= 1",
        )
        names = [p.name for p in self.phases]
        _check(
            len(set(names)) == len(names), "supernet.phases", names, "phase names must be unique"
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvaluatorSpec:
    """How a config's accuracy is obtained.

    kind: a registered evaluator (``nas.registry.EVALUATORS``): ``supernet`` (extract from
    ``supernet.checkpoint``, recalibrate BN, top-1 on the validation split) or ``predictor``
    (OFA's published accuracy predictor file).
    predictor: the predictor file; the environment variable ``NAS_OFA_PREDICTOR`` overrides it.
    val_images: validation images scored per trial (null: the whole validation split).
    """

    kind: str = "supernet"
    predictor: str | None = None
    val_images: int | None = None

    def __post_init__(self) -> None:
        _check_name(registry.EVALUATORS, "evaluator.kind", self.kind)
        if self.val_images is not None:
            _check(self.val_images >= 1, "evaluator.val_images", self.val_images, "must be >= 1")


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeviceSpec:
    """One latency target: a table folder (``device.yaml`` + ``<space>/<resolution>.yaml``) and
    the precision to price (``fp32``, ``fp16``, ``int8``)."""

    lut: str
    dtype: Literal["fp32", "fp16", "int8"] = "fp32"


@dataclasses.dataclass(frozen=True, kw_only=True)
class SearchSpec:
    """The study.

    sampler: a registered sampler (``nas.registry.SAMPLERS``): ``tpe``, ``nsga2``, ``gp``,
    ``random`` or ``surrogate`` (random warm-up of
    ``surrogate_warmup`` trials, then rounds of ``surrogate_batch`` proposals: a ridge model on
    ``encode()`` of the evaluated trials rates thousands of table-priced candidates, and the best
    per latency bin up to the reference latency is evaluated; from 100 trials on, 40% of each
    round goes to the best subnet under each of ``export.budgets_ms`` in turn; see
    ``nas/search/_surrogate.py``),
    ``compound`` (EfficientNet's compound scaling of the smallest subnet as a baseline; see
    ``nas/search/_compound.py``), or ``apq`` (for a space with per-layer precisions: an
    evolution over architectures and widths, each proposal's precisions chosen from the latency
    table and the size model for a trade-off drawn per proposal; see ``nas/search/_apq.py``).
    trials: completed trials the study should reach (a re-run continues towards it).
    timeout_minutes: stop dispatching after this wall time (null: no limit).
    workers / threads_per_worker: Ray actors, each holding the evaluator, and their torch threads.
    storage: Optuna storage URL (``postgresql://user:password@host/db``, ``sqlite:///file.db``);
    null: a journal file in runs/<name>/ (see ``nas/search/_storage.py``).
    heartbeat_seconds: with a database storage, the driver records a heartbeat of each trial in
    flight this often; a trial whose heartbeat is 3 intervals old (a killed driver's) is failed
    and its parameters asked again.
    objective: what the study optimizes, a registered objective (``nas.registry.OBJECTIVES``):
    ``pareto`` (the ``objectives`` below, a multi-objective study), ``mnasnet-soft`` or
    ``mnasnet-hard`` (MnasNet's reward ``accuracy x (latency / target_latency_ms) ** w``, one
    value: ``w = -0.07``, or ``w = 0`` up to the target and ``-1`` above it). Either way the
    fronts exported at the end are drawn from every trial's accuracy and latencies.
    objectives: ``accuracy`` (maximized) and ``latency`` (first device, minimized) always come
    first; ``params``, ``macs`` and ``size`` (KiB of the config's TFLite file at its layers'
    precisions, predicted from the config; all minimized) may follow. Read by
    ``objective: pareto``; the fronts exported at the end are non-dominated in all of them.
    target_latency_ms: the target ``T`` (first device, ms) of a reward objective.
    max_latency_ms: constraint on the first device's latency (``trial.set_constraint``).
    reference_latency_ms / reference_accuracy: the hypervolume reference point
    (default: the largest subnet's predicted latency, and accuracy 0).
    """

    sampler: str = "tpe"
    surrogate_warmup: int = 50
    surrogate_batch: int = 25
    trials: int = 100
    timeout_minutes: float | None = None
    workers: int = 2
    threads_per_worker: int = 1
    storage: str | None = None
    heartbeat_seconds: int = 10
    objective: str = "pareto"
    objectives: tuple[Literal["accuracy", "latency", "params", "macs", "size"], ...] = (
        "accuracy",
        "latency",
    )
    target_latency_ms: float | None = None
    max_latency_ms: float | None = None
    reference_latency_ms: float | None = None
    reference_accuracy: float = 0.0

    def __post_init__(self) -> None:
        _check_name(registry.SAMPLERS, "search.sampler", self.sampler)
        _check_name(registry.OBJECTIVES, "search.objective", self.objective)
        if registry.OBJECTIVES.get(self.objective).needs_target:
            _check(
                self.target_latency_ms is not None and self.target_latency_ms > 0,
                "search.target_latency_ms",
                self.target_latency_ms,
                f"must be a latency > 0 (ms) for objective {self.objective}",
            )
        _check(self.trials >= 1, "search.trials", self.trials, "must be >= 1")
        _check(self.workers >= 1, "search.workers", self.workers, "must be >= 1")
        _check(
            isinstance(self.heartbeat_seconds, int) and self.heartbeat_seconds >= 1,
            "search.heartbeat_seconds",
            self.heartbeat_seconds,
            "must be a whole number of seconds >= 1",
        )
        _check(
            self.surrogate_warmup >= 2,
            "search.surrogate_warmup",
            self.surrogate_warmup,
            "must be >= 2",
        )
        _check(
            self.surrogate_batch >= 1,
            "search.surrogate_batch",
            self.surrogate_batch,
            "must be >= 1",
        )
        _check(
            self.threads_per_worker >= 1,
            "search.threads_per_worker",
            self.threads_per_worker,
            "must be >= 1",
        )
        _check(
            self.objectives[:2] == ("accuracy", "latency")
            and len(set(self.objectives)) == len(self.objectives),
            "search.objectives",
            list(self.objectives),
            "must start with accuracy, latency (then optionally params, macs, size), without "
            "repeats",
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class DistillSpec:
    """Knowledge distillation in a fine-tune (Hinton et al., 2015): the loss is
    ``alpha * CE(student, labels) + (1 - alpha) * temperature**2 * KL(teacher/T || student/T)``.

    teacher: ``largest`` (the largest subnet of ``supernet.checkpoint``, BatchNorm recalibrated),
    a subnet config string of the space, or an exported program (``torch.export.save(
    torch.export.export(model, (x,), dynamic_shapes=...), path)``, a path relative to the spec's
    folder) that takes the student's input; a pickled ``torch.save`` module is refused
    (unpickling runs code).
    alpha: weight of the cross-entropy on the labels, 0-1.
    temperature: softening of both logits, > 0.
    """

    teacher: str = "largest"
    alpha: float = 0.5
    temperature: float = 4.0

    def check(self, where: str) -> None:
        """Raise a SpecError naming ``<where>.distill.<field>`` for a bad field."""
        at = f"{where}.distill."
        _check(bool(self.teacher), at + "teacher", self.teacher, "must not be empty")
        _check(0.0 <= self.alpha <= 1.0, at + "alpha", self.alpha, "must be in [0, 1]")
        _check(self.temperature > 0, at + "temperature", self.temperature, "must be > 0")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExportSpec:
    """What ``nas search`` exports, verifies and registers when the study ends (per device).

    enabled: false skips it (``nas export`` still exports any trial later).
    select: ``top_k`` (the fastest, the most accurate, the best under each budget, then members
    spread over the latency range, ``k`` in all) or ``front`` (every Pareto member).
    formats: registered export formats (``nas.registry.EXPORT_FORMATS``; see
    ``nas export --help``); empty: the device's own precision in
    TFLite (fp32 -> ``tflite-fp32``, int8 -> ``tflite-int8``, fp16 -> ``tflite-fp16``).
    budgets_ms: the latency budgets (first device, ms) you will pick a model under: the best
    under each gets a ``best-under-<X>ms`` alias, and the ``surrogate`` sampler searches under
    each in turn (default: the search's ``max_latency_ms`` when set; with neither, the sampler
    takes ten budgets log-spaced from the smallest subnet to the reference latency).
    finetune_epochs: epochs of fine-tuning each subnet on the training split before export
    (0: the supernet's weights with BatchNorm recalibrated, as the search scored them).
    qat_epochs: epochs of quantization-aware training for the ``tflite-int8-qat`` format.
    distill: a teacher for the fine-tune (:class:`DistillSpec`); null: plain cross-entropy.
    """

    enabled: bool = True
    select: Literal["top_k", "front"] = "top_k"
    k: int = 3
    formats: tuple[str, ...] = ()
    budgets_ms: tuple[float, ...] = ()
    finetune_epochs: int = 0
    qat_epochs: int = 1
    distill: DistillSpec | None = None

    def __post_init__(self) -> None:
        _check(self.finetune_epochs >= 0, "export.finetune_epochs", self.finetune_epochs, ">= 0")
        _check(self.qat_epochs >= 1, "export.qat_epochs", self.qat_epochs, "must be >= 1")
        _check(self.k >= 1, "export.k", self.k, "must be >= 1")
        for i, f in enumerate(self.formats):
            _check_name(registry.EXPORT_FORMATS, f"export.formats[{i}]", f)
        for i, b in enumerate(self.budgets_ms):
            _check(b > 0, f"export.budgets_ms[{i}]", b, "must be > 0")
        if self.distill is not None:
            self.distill.check("export")


@dataclasses.dataclass(frozen=True, kw_only=True)
class NetAdaptSpec:
    """``nas netadapt``: latency-driven filter pruning (Yang et al., ECCV 2018) of one trained
    subnet, priced by the first device's table.

    start: the subnet of ``supernet.checkpoint`` to start from (``largest``, ``smallest`` or a
    config string); BatchNorm recalibrated as for a search.
    budget_ms / budget_ratio: the target latency, in ms or as a fraction of the start's (one).
    initial_ratio / decay: iteration i must remove ``initial_ratio * decay**i`` of the start's
    latency (never more than what is left to the budget).
    short_term_steps / short_term_batch / short_term_lr: the brief fine-tuning of each proposal.
    long_term_epochs / long_term_lr: fine-tuning of the final model on the training split.
    distill: a teacher for that fine-tuning (:class:`DistillSpec`); null: plain cross-entropy.
    val_images: validation images that score each proposal.
    criterion: which filters a pruned layer keeps, a registered criterion
    (``nas.registry.CRITERIA``): ``l2`` (weight norm, no data), ``apoz`` (fewest zero
    activations, Hu et al. 2016) or ``taylor`` (first-order Taylor, Molchanov et al. 2017).
    criterion_images: training images the data-driven criteria score filters on, per iteration.
    workers / threads_per_worker: Ray actors evaluating proposals in parallel.
    channel_step: widths stay multiples of it (the channel grid the table is calibrated on).
    measure_missing: measure table entries for pruned widths on demand (host tables only).
    max_iterations: a bound on the loop.
    """

    start: str = "largest"
    budget_ms: float | None = None
    budget_ratio: float | None = None
    initial_ratio: float = 0.05
    decay: float = 0.96
    short_term_steps: int = 20
    short_term_batch: int = 64
    short_term_lr: float = 0.005
    long_term_epochs: int = 1
    long_term_lr: float = 0.005
    distill: DistillSpec | None = None
    val_images: int = 2000
    criterion: str = "l2"
    criterion_images: int = 512
    workers: int = 2
    threads_per_worker: int = 1
    channel_step: int = 8
    measure_missing: bool = True
    max_iterations: int = 50

    def __post_init__(self) -> None:
        if (self.budget_ms is None) == (self.budget_ratio is None):
            raise SpecError("netadapt: give exactly one of budget_ms and budget_ratio")
        if self.budget_ms is not None:
            _check(self.budget_ms > 0, "netadapt.budget_ms", self.budget_ms, "must be > 0")
        if self.budget_ratio is not None:
            _check(
                0 < self.budget_ratio < 1,
                "netadapt.budget_ratio",
                self.budget_ratio,
                "must be in (0, 1)",
            )
        _check(
            0 < self.initial_ratio < 1, "netadapt.initial_ratio", self.initial_ratio, "in (0, 1)"
        )
        _check(0 < self.decay <= 1, "netadapt.decay", self.decay, "must be in (0, 1]")
        if self.distill is not None:
            self.distill.check("netadapt")
        _check_name(registry.CRITERIA, "netadapt.criterion", self.criterion)
        for name in (
            "short_term_batch",
            "val_images",
            "criterion_images",
            "workers",
            "threads_per_worker",
        ):
            _check(
                getattr(self, name) >= 1, f"netadapt.{name}", getattr(self, name), "must be >= 1"
            )
        for name in ("short_term_steps", "long_term_epochs"):
            _check(
                getattr(self, name) >= 0, f"netadapt.{name}", getattr(self, name), "must be >= 0"
            )
        _check(self.channel_step >= 1, "netadapt.channel_step", self.channel_step, "must be >= 1")
        _check(self.max_iterations >= 1, "netadapt.max_iterations", self.max_iterations, ">= 1")


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunSpec:
    """One job. ``name`` is also the MLflow experiment; outputs go to ``runs/<name>/``.

    space: a registered search space (``nas.registry.SPACES``; see ``nas spaces``), or registered
        wrappers around one (``nas.registry.SPACE_WRAPPERS``), e.g.
        ``mixed_precision(pruned(ofa_mbv3_small))``.
    devices: latency targets; the first is the search's target (its latency is an objective).
    seed: every random choice of the job derives from it.
    tracking_uri: MLflow tracking URI; ``MLFLOW_TRACKING_URI`` wins, default ``runs/mlflow.db``.
    plugins: modules every process of the job imports first (the driver and every Ray worker),
    so that the spaces, samplers, evaluators, datasets, formats or latency kinds they register
    are known by name (e.g. ``my_project.spaces``; importable on every node).
    """

    name: str
    space: str = "ofa_mbv3_small"
    dataset: DatasetSpec = dataclasses.field(default_factory=DatasetSpec)
    supernet: SupernetSpec = dataclasses.field(default_factory=SupernetSpec)
    evaluator: EvaluatorSpec = dataclasses.field(default_factory=EvaluatorSpec)
    devices: tuple[DeviceSpec, ...] = ()
    search: SearchSpec = dataclasses.field(default_factory=SearchSpec)
    export: ExportSpec = dataclasses.field(default_factory=ExportSpec)
    netadapt: NetAdaptSpec | None = None
    seed: int = 0
    tracking_uri: str | None = None
    plugins: tuple[str, ...] = ()
    #: the file the spec was read from (set by load_spec); relative paths resolve against its
    #: folder
    source: str | None = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        wrappers, base = registry.split_space(self.space)
        _check_name(registry.SPACES, "space", base)
        for wrapper in wrappers:
            _check_name(registry.SPACE_WRAPPERS, "space (wrapper)", wrapper)
        _check(
            re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", self.name) is not None,
            "name",
            self.name,
            "must be 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit "
            "(it names the job's folder, its MLflow experiment and its registered models)",
        )

    def budgets_ms(self) -> list[float]:
        """The latency budgets (first device, ms) a model will be picked under:
        ``export.budgets_ms``, else ``search.max_latency_ms`` when set, else none."""
        if self.export.budgets_ms:
            return list(self.export.budgets_ms)
        return [self.search.max_latency_ms] if self.search.max_latency_ms is not None else []

    def run_dir(self) -> Path:
        """Where the job's state goes: ``runs/<name>/`` (see ``nas.paths.runs_root``)."""
        return runs_root() / self.name

    def resolve_path(self, path: str) -> Path:
        """A path from the spec: absolute as given, else relative to the spec file's folder
        (the working directory for a spec built in code), else the shipped file of that
        relative path (see ``nas.paths.resolve``)."""
        return resolve(path, self.folder())

    def output_path(self, path: str) -> Path:
        """Where a job writes a path of the spec (a trained checkpoint): absolute as given, else
        relative to the spec file's folder; never into the package's shipped data."""
        return resolve(path, self.folder(), shipped=False)

    def folder(self) -> Path | None:
        """The folder of the spec file (None for a spec built in code: the working directory)."""
        return Path(self.source).parent if self.source else None


def _check(ok: bool, field: str, value: Any, why: str) -> None:
    if not ok:
        raise SpecError(f"{field} = {value!r} {why}")


def _check_name(names: registry.Registry[Any], field: str, value: str) -> None:
    """``value`` is registered in ``names``; the registry imports its providers on first use,
    so this module itself imports no engine module."""
    _check(value in names, field, value, f"must be one of {names.names()}")


def load_spec(path: str | Path) -> RunSpec:
    """Read and validate a YAML run spec.

    Raises:
        SpecError: the file is missing or not YAML, or a field is unknown, missing or invalid.
    """
    from nas._yaml import read_yaml

    path = Path(path)
    data = read_yaml(path, SpecError, "run spec")
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a run spec is a YAML mapping, got {type(data).__name__}")
    data.setdefault("name", path.stem)
    try:
        spec = spec_from_dict(data)
    except SpecError as e:
        raise SpecError(f"{path}: {e}") from None
    return dataclasses.replace(spec, source=str(path))


def spec_from_dict(data: dict[str, Any]) -> RunSpec:
    """A validated spec from plain data (its ``plugins`` are imported first, so that the names
    they register validate)."""
    if isinstance(data, dict):
        _import_plugins(data.get("plugins") or ())
    return _build(RunSpec, data, "")


def _import_plugins(modules: Any) -> None:
    import importlib

    if not isinstance(modules, list | tuple) or not all(isinstance(m, str) for m in modules):
        raise SpecError(f"plugins must be a list of module names, got {modules!r}")
    for i, module in enumerate(modules):
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise SpecError(f"plugins[{i}] = {module!r} cannot be imported: {e}") from None


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise SpecError(f"{where or 'spec'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and f.name != "source"}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise SpecError(
            f"unknown field {where + unknown[0]!r}; allowed "
            f"fields{' of ' + where.rstrip('.') if where else ''}: "
            f"{', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _convert(hints[name], value, where + name)
    missing = [
        n
        for n, f in fields.items()
        if n not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise SpecError(f"missing required field {where + missing[0]!r}")
    try:
        return cls(**kwargs)
    except SpecError:
        raise
    except (TypeError, ValueError) as e:
        raise SpecError(f"{where.rstrip('.') or 'spec'}: {e}") from e


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _convert(option, value, where)
            except SpecError as e:
                errors.append(str(e))
        raise SpecError(errors[0])
    if origin is Literal:
        if value not in args:
            raise SpecError(f"{where} = {value!r} must be one of {', '.join(map(repr, args))}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise SpecError(f"{where} must be a list, got {value!r}")
        item = args[0]
        return tuple(_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where + ".")
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SpecError(f"{where} must be a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"{where} must be an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise SpecError(f"{where} must be true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise SpecError(f"{where} must be a string, got {value!r}")
        return value
    raise SpecError(f"{where}: unsupported type {tp}")  # pragma: no cover - a bug in a spec class
