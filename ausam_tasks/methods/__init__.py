from .esam import ESAM  # noqa: F401
from .ksam import KSAM  # noqa: F401
from .late_phase import LatePhaseSAM  # noqa: F401
from .looksam import LookSAM  # noqa: F401
from .mesa import MESA  # noqa: F401
from .msam import MSAM  # noqa: F401
from .rst import RST  # noqa: F401
from .saf import SAF  # noqa: F401
