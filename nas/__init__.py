"""nas: neural-architecture search for mobile vision models."""

from nas import _compat  # noqa: F401  (must run before anything imports torchvision or ofa)
from nas.errors import NASError

__all__ = ["NASError", "__version__"]
__version__ = "0.1.0"
