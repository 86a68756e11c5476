"""The latency protocol: what any latency source answers for a config of a space, and how one is
built from a device entry (a table folder whose ``device.yaml`` names its kind)."""

from __future__ import annotations

import abc
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.latency._table import DTYPES, DeviceInfo, load_device

if TYPE_CHECKING:
    from search_spaces import SearchSpace

__all__ = ["Estimate", "LatencyPredictor"]


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A predicted latency: ``ms`` with its spread (``std``, ms; 0 where the source has none) and
    where it comes from (``source``: the kind, the table and the precision), so that a figure
    never travels without saying it was predicted, and by what."""

    ms: float
    std: float
    source: str


class LatencyPredictor(abc.ABC):
    """A latency source for one (space, device entry, default precision).

    Contract:
    - Built once per (space, device entry) by its registered kind's constructor
      ``Kind(lut_dir, space, *, dtype, device=None)``, which reads and checks every file it
      needs up front (errors name the file); :meth:`predict` is then cheap (look-ups).
    - :meth:`predict` is pure: the same config gives the same estimate; it never returns 0 for
      what it does not know but raises ``MissingLatencyKeyError`` naming the key and the file.
    - Precision: each layer's precision comes from the config (``LayerSpec.dtype``, set by a
      per-layer precision space); a layer without one is priced at the predictor's ``dtype``.
    - ``name`` is the device's name at the default precision (``host-x86-litert``,
      ``host-x86-litert-int8``): the same table priced at two precisions is two devices.
    - Thread-safe for concurrent :meth:`predict` calls; :meth:`reload` is not (call it between).
    """

    #: the registry name of the kind (``layer_table``, ``arch_table``)
    kind: str

    def __init__(
        self,
        lut_dir: str | Path,
        space: SearchSpace,
        *,
        dtype: str = "fp32",
        device: DeviceInfo | None = None,
    ) -> None:
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, but got {dtype!r}")
        self.lut_dir = Path(lut_dir)
        self.space = space
        self.dtype = dtype
        self.device: DeviceInfo = device or load_device(self.lut_dir / "device.yaml")
        self._load()

    @abc.abstractmethod
    def _load(self) -> None:
        """Read and check the source's files (``self.lut_dir``, ``self.space``)."""

    @property
    def name(self) -> str:
        return self.device.name if self.dtype == "fp32" else f"{self.device.name}-{self.dtype}"

    @abc.abstractmethod
    def predict(self, config: Any) -> Estimate:
        """The config's latency on this device.

        Raises:
            MissingLatencyKeyError: the source has no entry for (a layer of) the config.
        """

    def at(self, dtype: str) -> LatencyPredictor:
        """The same device entry priced at another default precision (built once, then kept)."""
        if dtype == self.dtype:
            return self
        cache = self.__dict__.setdefault("_at", {})
        if dtype not in cache:
            cache[dtype] = type(self)(self.lut_dir, self.space, dtype=dtype, device=self.device)
        return cache[dtype]

    def check_complete(self) -> None:  # noqa: B027 - optional: sources that can lack entries
        """Every config of the space can be priced, or raise now (a job calls this before it
        starts workers): a source that measures what it lacks on this machine passes.

        Raises:
            LatencyTableError: naming the file and a missing key or resolution.
        """

    def reload(self) -> None:  # noqa: B027 - optional: sources whose files can grow
        """Read the source's files again (after entries were added to them)."""
