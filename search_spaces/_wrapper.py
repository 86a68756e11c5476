"""What every wrapper space shares: a ``base`` space whose configs it extends (its own configs
hold the base config as ``config.base``), and everything that does not depend on the extension
delegated to the base."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nas.errors import ConfigError
from search_spaces._base import ConfigT, LayerSpec, SearchSpace

if TYPE_CHECKING:
    import torch

__all__ = ["SharedSupernet", "SpaceWrapper"]


class SpaceWrapper(SearchSpace[ConfigT]):
    """A space over ``base`` with the base's name (its latency tables and checkpoints apply),
    classes, input resolutions, rebuild options and input shapes. Subclasses add the dimension
    and the rest of the contract; :meth:`_check_base` starts their ``validate``."""

    #: the config class of the wrapper (``PrunedConfig``, ``MixedConfig``)
    config_type: type
    #: what its configs add to the base, for messages ("a pruned config")
    what: str

    def __init__(self, base: SearchSpace) -> None:
        self.base = base
        self.name = base.name

    @property
    def exact_counts(self) -> bool:  # type: ignore[override]
        return self.base.exact_counts

    @property
    def n_classes(self) -> int:
        return self.base.n_classes

    @property
    def resolutions(self) -> tuple[int, ...]:
        return self.base.resolutions

    @property
    def options(self) -> dict[str, Any]:
        return self.base.options

    def input_shape(self, config: Any) -> tuple[int, int, int]:
        return self.base.input_shape(config.base)

    def layer_module(self, layer: LayerSpec) -> torch.nn.Module:
        return self.base.layer_module(layer)

    def layer_paths(self, config: Any) -> list[str]:
        return self.base.layer_paths(config.base)

    def _check_base(self, config: Any) -> None:
        """``config`` is of this wrapper's type and its base config is in the base space."""
        if not isinstance(config, self.config_type):
            raise ConfigError(
                f"{self.name}: config: expected a {self.config_type.__name__}, "
                f"got {type(config).__name__}"
            )
        if config.base is None:
            raise ConfigError(f"{self.name}: base: {self.what} needs a base config")
        self.base.validate(config.base)


class SharedSupernet:
    """For a wrapper over a weight-sharing base: the supernet is the base's, and a config runs
    its base config's subnet (subclasses say how ``extract`` applies what they add)."""

    base: Any

    def supernet(self) -> torch.nn.Module:
        return self.base.supernet()

    def load_supernet(self, supernet: torch.nn.Module, state_dict: dict[str, Any]) -> None:
        self.base.load_supernet(supernet, state_dict)

    def activate(self, supernet: torch.nn.Module, config: Any) -> None:
        self.base.activate(supernet, config.base)
