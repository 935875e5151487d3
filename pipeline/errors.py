"""The one error type the CLI turns into a single line and exit code 2."""


class PipelineError(RuntimeError):
    """A problem with the user's input or run directory; the message says which."""
