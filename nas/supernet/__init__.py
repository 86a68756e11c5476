"""Supernet training (progressive shrinking), BatchNorm recalibration and subnet evaluation."""

from nas.supernet._checkpoint import atomic_save, load_weights, save_weights
from nas.supernet._evaluate import SubnetEvaluator, recalibrate_bn, top1
from nas.supernet._finetune import Distillation, finetune, train_steps
from nas.supernet._quantsim import simulate_precisions
from nas.supernet._train import SupernetTrainer, TrainResult

__all__ = [
    "Distillation",
    "SubnetEvaluator",
    "SupernetTrainer",
    "TrainResult",
    "atomic_save",
    "finetune",
    "load_weights",
    "recalibrate_bn",
    "save_weights",
    "simulate_precisions",
    "top1",
    "train_steps",
]
