from .esam import ESAM  # noqa: F401
from .mesa import MESA  # noqa: F401
from .msam import MSAM  # noqa: F401
from .saf import SAF  # noqa: F401
