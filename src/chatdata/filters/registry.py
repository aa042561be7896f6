"""Import every filter module so their kinds register. Add new filter modules here."""

from chatdata.filters import gates  # noqa: F401
from chatdata.filters import lang_field  # noqa: F401
from chatdata.filters import language  # noqa: F401
from chatdata.filters import uncensor  # noqa: F401
