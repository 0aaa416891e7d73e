"""The one exception type papa raises: a RuntimeError, as in papa 1.0.6."""


class Error(RuntimeError):
    """A request papa refused or could not carry out; the text says why."""


class AuthenticationError(Error):
    """The kernel refused this client's token (no use trying again)."""
