"""Model families. Importing this package registers every model builder."""

from lstmctl.models import bilstm, gru, hand, lstm, rnn, stacked  # noqa: F401
