from .esam import ESAMOptimWrapper  # noqa: F401
from .ksam import KSAMOptimWrapper  # noqa: F401
from .late_phase import LatePhaseSAMOptimWrapper  # noqa: F401
from .looksam import LookSAMOptimWrapper  # noqa: F401
from .mesa import MESAOptimWrapper  # noqa: F401
from .msam import MSAMOptimWrapper  # noqa: F401
from .rst import RSTOptimWrapper  # noqa: F401
from .saf import SAFOptimWrapper  # noqa: F401
