"""Shared by every script: import the pipeline's package, log to the rule's log file and the terminal."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path
from typing import Callable

# The package lives in workflow/src; put it first so that a conda env (which does not install this
# project) and a checkout with an older installed copy both run the code of this checkout.
_SRC = Path(__file__).resolve().parents[1] / "src"
if str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))


def run_logged(main: Callable[[], None], log_path: str | None) -> None:
    """Run `main` with INFO logging (and warnings) to `log_path` and stderr; failures logged, then raised."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", handlers=handlers, force=True
    )
    logging.captureWarnings(True)
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    try:
        main()
    except Exception:
        logging.getLogger("workflow").exception("job failed")
        raise
