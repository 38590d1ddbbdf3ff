from .esam import ESAMOptimWrapper  # noqa: F401
from .mesa import MESAOptimWrapper  # noqa: F401
from .msam import MSAMOptimWrapper  # noqa: F401
from .saf import SAFOptimWrapper  # noqa: F401
