"""Study orchestration: the driver-owned Optuna study, Ray workers, Pareto fronts, hypervolume."""

from nas.search._driver import SearchJob, SearchResult, open_study
from nas.search._evaluators import Evaluator, build_evaluator, load_ofa_predictor
from nas.search._objectives import Objective, make_objective
from nas.search._pareto import hypervolume, hypervolume_2d, nondominated, pareto_front
from nas.search._predictor import (
    fit_predictor,
    save_predictor,
    score_predictor,
    train_predictor,
    widen_inputs,
)
from nas.search._samplers import Proposer, Sampler, make_proposer, make_sampler
from nas.search._storage import check_storage, open_storage, storage_label, study_lock

__all__ = [
    "Evaluator",
    "Objective",
    "Proposer",
    "Sampler",
    "SearchJob",
    "SearchResult",
    "build_evaluator",
    "check_storage",
    "hypervolume",
    "hypervolume_2d",
    "load_ofa_predictor",
    "make_objective",
    "make_proposer",
    "make_sampler",
    "open_storage",
    "open_study",
    "nondominated",
    "pareto_front",
    "save_predictor",
    "storage_label",
    "study_lock",
    "train_predictor",
    "fit_predictor",
    "score_predictor",
    "widen_inputs",
]
