"""Import every filter module so their kinds register. Add new filter modules here."""

from chatdata.filters import decontam, gates, lang_field, language, uncensor  # noqa: F401
