"""Shared by every script: import this checkout's package, log to the rule's log file and the terminal."""

from __future__ import annotations

import logging
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
