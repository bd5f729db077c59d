import sys
from pathlib import Path

# Rules and scripts import the pipeline's package the same way: workflow/scripts/_common.py puts this
# checkout's workflow/src first on sys.path (importing it does that).
sys.path.insert(0, str(Path(workflow.basedir) / "workflow" / "scripts"))
import _common  # noqa: F401,E402

from inference_bench.config_validation import ConfigError, check_config_files

# Before Snakemake reads config/config.yaml: a YAML error is named by its file and line (Snakemake's own
# message points at the Snakefile), and a key written twice (the last would silently win) stops the run.
try:
    check_config_files(["config/config.yaml", *workflow.configfiles])
except ConfigError as error:
    raise WorkflowError(str(error)) from None
