"""The one base class of every error a user can act on: its message says what is wrong and what to do."""


class PipelineError(Exception):
    """A failure with a cause the user can fix (a setting, a file, a model). Jobs print its message alone,
    as the first thing the user reads; the traceback goes to the job's log."""


class PlanningRefused(SystemExit):
    """A user-fixable error found while Snakemake plans the run (in an input function, where any exception is
    printed with a traceback): its one line was printed, and the run ends with status 1. The Python toolkit
    turns it back into a PipelineError."""

    def __init__(self, message: str) -> None:
        super().__init__(1)
        self.message = message


def first_line(error: BaseException, limit: int = 300) -> str:
    """The first line of an error's message, cut to `limit` characters: third-party errors (the Hub's, say)
    can run to hundreds of lines, and the user's message must lead with its own cause."""
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:limit]
