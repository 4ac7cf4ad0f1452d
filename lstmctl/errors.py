"""Exceptions that carry their own exit code. Only cli.py turns them into exits."""

EXIT_OK = 0
EXIT_FAILED = 1  # a run that failed: NaN loss, out of memory, disk trouble
EXIT_USER = 2  # the user's mistake: config, run id, missing file, bad data
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class LstmctlError(Exception):
    exit_code = EXIT_FAILED


class UserError(LstmctlError):
    """A mistake the user can fix: one line that names the problem and the fix."""

    exit_code = EXIT_USER


class ConfigError(UserError):
    """The config file or an override is wrong."""


class RunFailed(LstmctlError):
    """Training started but could not finish (NaN loss, OOM, a failed write)."""

    exit_code = EXIT_FAILED


class Interrupted(LstmctlError):
    """Training stopped by SIGINT/SIGTERM after saving its state."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = EXIT_SIGINT if signum == 2 else EXIT_SIGTERM
