"""Shared by every script: import this checkout's package, log to the rule's log file and the terminal."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Callable

#: This checkout's package. The rules (workflow/rules/common.smk) import it from here too.
SRC = Path(__file__).resolve().parents[1] / "src"


def use_this_checkout() -> None:
    """Put this checkout's workflow/src first on sys.path, wherever it already stood: Snakemake's script
    preamble appends it (after site-packages), and an installed copy of the package, say a `pip install -e`
    of another clone, would otherwise be imported instead."""
    while str(SRC) in sys.path:
        sys.path.remove(str(SRC))
    sys.path.insert(0, str(SRC))
    stale = sys.modules.get("inference_bench")
    if stale is not None and not str(getattr(stale, "__file__", "")).startswith(str(SRC)):
        raise ImportError(f"inference_bench was imported from {stale.__file__} before {SRC} could be put first")


use_this_checkout()
# Hugging Face's progress bars ("Loading weights") are noise on the terminal; the worker processes inherit this.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


#: Loggers whose INFO lines the terminal shows: the pipeline's own. Other libraries' records, and Python
#: warnings (onnxconverter-common's FP16 truncation notes, the exporters' deprecations), go to the job's log
#: only, unless they are errors.
_OWN_LOGGERS = ("workflow", "inference_bench")


def _for_the_terminal(record: logging.LogRecord) -> bool:
    own = record.name.split(".")[0] in _OWN_LOGGERS and getattr(record, "terminal", True)
    return record.levelno >= logging.ERROR or (own and record.levelno >= logging.INFO)


def run_logged(main: Callable[[], None], log_path: str | None) -> None:
    """Run `main` with INFO logging (and warnings) to `log_path`, and the pipeline's own lines and every
    error to stderr. A PipelineError (a cause the user can fix) is printed as one line, the traceback going
    to the log only; anything else is logged with its traceback and raised."""
    from inference_bench.errors import PipelineError

    terminal = logging.StreamHandler(sys.stderr)
    terminal.addFilter(_for_the_terminal)
    handlers: list[logging.Handler] = [terminal]
    file_handler = None
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_path, mode="w")
        handlers.append(file_handler)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", handlers=handlers, force=True
    )
    logging.captureWarnings(True)
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    log = logging.getLogger("workflow")
    try:
        main()
    except PipelineError as error:
        if file_handler is not None:
            file_handler.handle(log.makeRecord(log.name, logging.DEBUG, __file__, 0, "traceback of the failure below",
                                               None, sys.exc_info()))
        log.error("%s", error)
        sys.exit(1)
    except Exception:
        log.exception("job failed")
        raise
