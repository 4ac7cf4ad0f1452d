"""Dataset families. Importing this package registers every dataset builder."""

from lstmctl.data import inline, mnist, sine, synthetic, tabular  # noqa: F401
from lstmctl.data.base import DataBundle, Split, Task  # noqa: F401
