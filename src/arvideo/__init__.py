"""arvideo: autoregressive video generation (Lumos-1, ARLON) on a laptop and on a cluster."""

from arvideo.errors import ArvideoError
from arvideo.pipelines import load as load

__version__ = "0.1.0"

__all__ = ["ArvideoError", "__version__"]
