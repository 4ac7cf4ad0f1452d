"""The dataset contract and the built-in dataset families (one module each).

This package imports no family: lstmctl.config imports the built-in ones at its top (importing a
module registers its datasets), and plugins register theirs the same way. Importing
`lstmctl.data` alone stays cheap and registers nothing.
"""

from lstmctl.data.base import IGNORE_INDEX, DataBundle, Facts, Split, Task  # noqa: F401

__all__ = ["IGNORE_INDEX", "DataBundle", "Facts", "Split", "Task"]
