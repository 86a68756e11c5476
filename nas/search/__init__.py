"""Study orchestration: the driver-owned Optuna study, Ray workers, Pareto fronts, hypervolume."""

from nas.search._driver import SearchJob, SearchResult, make_sampler, open_study
from nas.search._evaluators import build_evaluator, load_ofa_predictor
from nas.search._pareto import hypervolume_2d, pareto_front

__all__ = [
    "SearchJob",
    "SearchResult",
    "build_evaluator",
    "hypervolume_2d",
    "load_ofa_predictor",
    "make_sampler",
    "open_study",
    "pareto_front",
]
