"""Model families. Importing this package registers every model builder."""

from lstmctl.models import lstm  # noqa: F401
