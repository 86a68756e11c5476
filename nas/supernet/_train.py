"""Supernet training by progressive shrinking (OFA): elastic kernel, then depth, then expand ratio,
with sandwich sampling (largest, smallest and random subnets each step) and in-place
distillation from the largest subnet. Resumable from its last epoch checkpoint."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from nas.data import ImageDataset, batches, resize
from nas.errors import CheckpointError, SpecError
from nas.job import Job
from nas.spec import PhaseSpec, RunSpec
from nas.supernet._checkpoint import atomic_save, load_weights, save_weights
from nas.supernet._evaluate import SubnetEvaluator
from nas.tracking import JobRun
from search_spaces import SearchSpace, Shrinkable

__all__ = ["SupernetTrainer", "TrainResult"]

logger = logging.getLogger(__name__)
STATE_FILE = "train_state.pt"


@dataclasses.dataclass(frozen=True)
class TrainResult:
    checkpoint: Path
    seconds: float
    epochs: int
    history: list[dict[str, Any]]
    mlflow_run_id: str | None


class SupernetTrainer(Job):
    """Trains one supernet for a run spec.

    ``run()`` (the :class:`nas.job.Job` template) owns status, the MLflow run and resume;
    ``_run()`` the loop and checkpoints; ``state_dict()`` /
    ``load_state_dict()`` hold everything a restarted process needs to resume exactly at the
    next epoch (the data order and subnet draws of an epoch derive from the seed and the epoch).
    """

    kind = "train-supernet"

    def __init__(
        self,
        spec: RunSpec,
        space: SearchSpace,
        dataset: ImageDataset,
        *,
        work_dir: Path,
        track: bool = True,
        progress: Callable[[int, dict[str, float]], None] | None = None,
    ) -> None:
        super().__init__(spec, track=track)
        self.cfg, self.space, self.dataset = spec.supernet, space, dataset
        if not isinstance(space, Shrinkable):
            for phase in self.cfg.phases:
                if phase.kernels or phase.expands or phase.depths or phase.reorganize_expand:
                    raise SpecError(
                        f"supernet.phases[{phase.name!r}]: {space.name} has no elastic "
                        "dimensions (kernels, expands, depths); its phases train single paths"
                    )
        self.work_dir = work_dir
        self.progress = progress
        self.model = space.supernet().to(memory_format=torch.channels_last)
        if self.cfg.init_weights is not None:  # a resumed training loads its own state over it
            self._init_weights(spec.resolve_path(self.cfg.init_weights))
        decay, no_decay = [], []
        for p in self.model.parameters():
            (no_decay if p.ndim <= 1 else decay).append(p)
        self.optimizer = torch.optim.SGD(
            [
                {"params": decay, "weight_decay": self.cfg.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=self.cfg.phases[0].lr,
            momentum=self.cfg.momentum,
            nesterov=True,
        )
        self.epochs_per_phase = [p.epochs for p in self.cfg.phases]
        self.total_epochs = sum(self.epochs_per_phase)
        self.steps_per_epoch = len(dataset.train) // self.cfg.batch_size
        # resumable state
        self.epoch = 0  # epochs finished, over all phases
        self.seconds = 0.0
        self.history: list[dict[str, Any]] = []

    def _init_weights(self, path: Path) -> None:
        field = f"supernet.init_weights = {str(path)!r}"
        try:
            blob = load_weights(path)
            if blob["space"] != self.space.name:
                raise SpecError(
                    f"{field} is a supernet of {blob['space']}, not of {self.space.name}"
                )
            self.space.load_supernet(self.model, blob["state_dict"])
        except CheckpointError as e:
            raise CheckpointError(f"{field}: {e}") from None
        logger.info("weights initialized from %s", path)

    @property
    def mlflow_run_id(self) -> str | None:
        return self.tracking_run_id

    # ---- resumable state -------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "seconds": self.seconds,
            "history": self.history,
            "mlflow_run_id": self.mlflow_run_id,
            "spec_supernet": dataclasses.asdict(self.cfg),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.seconds = state["epoch"], state["seconds"]
        self.history, self.tracking_run_id = state["history"], state["mlflow_run_id"]

    # ---- schedule --------------------------------------------------------------------------
    def phase_of(self, epoch: int) -> tuple[int, PhaseSpec, int]:
        """(phase index, phase, epoch within the phase) of a global epoch index."""
        for i, phase in enumerate(self.cfg.phases):
            if epoch < phase.epochs:
                return i, phase, epoch
            epoch -= phase.epochs
        raise IndexError(epoch)

    def _choices(self, phase: PhaseSpec) -> dict[str, tuple[int, ...]]:
        """The phase's choices per dimension: kernel, expand and depth the space's largest
        unless the phase names more; resolution every one of the space's unless it names some."""
        dims = self.space.dimensions()
        choices = {
            "kernel": phase.kernels or (max(dims["kernel"]),),
            "expand": phase.expands or (max(dims["expand"]),),
            "depth": phase.depths or (max(dims["depth"]),),
        }
        if phase.resolutions:
            choices["resolution"] = phase.resolutions
        return choices

    def _phase_space(self, phase: PhaseSpec) -> SearchSpace:
        return self.space.restrict(**self._choices(phase))

    # ---- one epoch -------------------------------------------------------------------------
    def _train_epoch(self, epoch: int) -> dict[str, float]:
        phase_index, phase, epoch_in_phase = self.phase_of(epoch)
        if epoch_in_phase == 0 and phase.reorganize_expand:
            stage = len(self._choices(phase)["expand"]) - 1
            logger.info("phase %s: reorganizing expanded channels by importance", phase.name)
            self.model.re_organize_middle_weights(expand_ratio_stage=stage)
        seed = self.spec.seed * 100_003 + epoch
        gen = torch.Generator().manual_seed(seed)
        rng = np.random.default_rng(seed)
        self.model.train()
        total_steps = phase.epochs * self.steps_per_epoch
        sums = {"loss": 0.0, "kd_loss": 0.0}
        for step, (x, y) in enumerate(
            batches(
                self.dataset.train,
                self.cfg.batch_size,
                self.dataset.preprocessing,
                shuffle=True,
                augment=True,
                generator=gen,
                drop_last=True,
            )
        ):
            t = (epoch_in_phase * self.steps_per_epoch + step) / total_steps
            lr = 0.5 * phase.lr * (1 + math.cos(math.pi * t))
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            self.optimizer.zero_grad(set_to_none=True)
            if isinstance(self.space, Shrinkable):
                loss, kd = self._sandwich_step(x, y, phase, rng)
            else:
                loss, kd = self._single_path_step(x, y, rng), 0.0
            sums["loss"] += loss
            sums["kd_loss"] += kd
            nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)
            self.optimizer.step()
            if self.progress is not None:
                self.progress(1, {"phase": phase_index, "loss": loss, "lr": lr})
        steps = max(self.steps_per_epoch, 1)
        return {
            "train_loss": sums["loss"] / steps,
            "train_kd_loss": sums["kd_loss"] / steps,
            "lr": lr,
        }

    def _sandwich_step(
        self, x: torch.Tensor, y: torch.Tensor, phase: PhaseSpec, rng: np.random.Generator
    ) -> tuple[float, float]:
        """Progressive shrinking's step: the largest subnet learns from the labels and teaches
        the smallest and ``n_random_subnets`` random ones of the phase (in-place KD)."""
        phase_space = self._phase_space(phase)  # built once per step, not once per subnet
        largest = phase_space.largest()
        self.space.activate(self.model, largest)
        logits = self.model(_at(x, self.space.input_shape(largest)[1]))
        loss = F.cross_entropy(logits, y, label_smoothing=self.cfg.label_smoothing)
        loss.backward()
        sandwich = (
            phase.kernels is not None or phase.expands is not None or phase.depths is not None
        )
        if not sandwich:
            return loss.item(), 0.0
        teacher, kd_sum = F.softmax(logits.detach(), dim=1), 0.0
        students = [phase_space.smallest()] + [
            phase_space.sample(rng) for _ in range(self.cfg.n_random_subnets)
        ]
        for config in students:
            self.space.activate(self.model, config)
            out = self.model(_at(x, self.space.input_shape(config)[1]))
            kd = -(teacher * F.log_softmax(out, dim=1)).sum(1).mean()
            ce = F.cross_entropy(out, y, label_smoothing=self.cfg.label_smoothing)
            (ce + self.cfg.kd_weight * kd).backward()
            kd_sum += kd.item() / len(students)
        return loss.item(), kd_sum

    def _single_path_step(
        self, x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator
    ) -> float:
        """A space without elastic dimensions (``Shrinkable``), e.g. a cell space: single-path
        uniform sampling (SPOS; NAS-Bench-201's weight-sharing baselines), ``n_random_subnets``
        (at least 1) subnets drawn uniformly, each learning from the labels."""
        n, total = max(1, self.cfg.n_random_subnets), 0.0
        for _ in range(n):
            config = self.space.sample(rng)
            self.space.activate(self.model, config)
            out = self.model(_at(x, self.space.input_shape(config)[1]))
            loss = F.cross_entropy(out, y, label_smoothing=self.cfg.label_smoothing) / n
            loss.backward()
            total += loss.item()
        return total

    def _validate(self) -> dict[str, float]:
        evaluator = SubnetEvaluator(
            self.space,
            _contiguous_copy(self.model),
            self.dataset,
            bn_calibration_images=self.cfg.bn_calibration_images,
            seed=self.spec.seed,
        )
        out = {}
        for name, config in (
            ("largest", self.space.largest()),
            ("smallest", self.space.smallest()),
        ):
            out[f"val_acc_{name}"] = evaluator.evaluate(
                config, "val", max_images=self.cfg.eval_images
            )["accuracy"]
        return out

    # ---- the job ---------------------------------------------------------------------------
    def run_name(self) -> str:
        return "train-supernet"

    def load_checkpoint(self) -> dict[str, Any] | None:
        state_path = self.work_dir / STATE_FILE
        if not state_path.is_file():
            return None
        logger.info("resuming from %s", state_path)
        try:  # tensors and plain values only: a file in runs/ is never unpickled as code
            return torch.load(state_path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - truncated, or not a state this job wrote
            raise CheckpointError(
                f"{state_path}: cannot resume from it ({type(e).__name__}: {e}); remove it to "
                "start the training again"
            ) from None

    def _setup_tracking(self, tracker: JobRun) -> None:
        if tracker.resumed:
            return
        tracker.log_params(
            _flatten(
                {
                    "space": self.space.name,
                    "seed": self.spec.seed,
                    "supernet": dataclasses.asdict(self.cfg),
                }
            )
        )
        if self.spec.source:
            tracker.log_spec(self.spec.source)

    def _run(self) -> TrainResult:
        torch.set_num_threads(self.cfg.threads)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        while self.epoch < self.total_epochs:
            start = time.perf_counter()
            metrics = self._train_epoch(self.epoch)
            metrics.update(self._validate())
            elapsed = time.perf_counter() - start
            self.seconds += elapsed
            _, phase, _ = self.phase_of(self.epoch)
            metrics.update(epoch_seconds=elapsed, train_seconds=self.seconds)
            self.history.append({"epoch": self.epoch + 1, "phase": phase.name, **metrics})
            self.epoch += 1
            logger.info(
                "epoch %d/%d (%s): loss %.3f, val top-1 largest %.4f smallest %.4f, %.0fs",
                self.epoch,
                self.total_epochs,
                phase.name,
                metrics["train_loss"],
                metrics["val_acc_largest"],
                metrics["val_acc_smallest"],
                elapsed,
            )
            atomic_save(self.state_dict(), self.work_dir / STATE_FILE)
            if self.tracker is not None:
                self.tracker.log_metrics(metrics, step=self.epoch)
        checkpoint = self.spec.output_path(self.cfg.checkpoint)
        save_weights(
            checkpoint,
            self.model.state_dict(),
            space=self.space.name,
            space_options=self.space.options,
            meta={
                "spec": self.spec.name,
                "train_seconds": self.seconds,
                "epochs": self.epoch,
                "final": self.history[-1] if self.history else {},
                "mlflow_run_id": self.mlflow_run_id,
            },
            fp16=self.cfg.store_fp16,
        )
        if self.tracker is not None:
            self.tracker.log_metrics({"train_seconds_total": self.seconds})
            self.tracker.log_artifact(checkpoint, artifact_path="checkpoint")
        logger.info("wrote %s (%.0f s of training)", checkpoint, self.seconds)
        return TrainResult(checkpoint, self.seconds, self.epoch, self.history, self.mlflow_run_id)


def _at(x: torch.Tensor, resolution: int) -> torch.Tensor:
    return resize(x, resolution).contiguous(memory_format=torch.channels_last)


def _contiguous_copy(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model).to(memory_format=torch.contiguous_format)


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        elif isinstance(v, list | tuple) and v and isinstance(v[0], dict):
            for i, item in enumerate(v):
                out.update(_flatten(item, f"{prefix}{k}.{i}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
