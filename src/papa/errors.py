"""The one exception type papa raises: a RuntimeError, as in papa 1.0.6."""


class Error(RuntimeError):
    """A request papa refused or could not carry out; the text says why."""
