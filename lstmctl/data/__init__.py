"""Dataset families. Importing this package registers every dataset builder."""

from lstmctl.data import sine  # noqa: F401
from lstmctl.data.base import DataBundle, Split, Task  # noqa: F401
