"""The project's promises about itself: CI runs the README's test command."""

import re

from conftest import ROOT


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```sh\n(.+?)\n```", readme)
    test_command = next(c for c in commands if "pytest" in c)
    assert test_command in (ROOT / ".ci" / "run").read_text()


def test_the_readme_opens_with_the_two_commands_and_the_default_table():
    """The front door: what it is, the two commands, then the default model's results; experiments elsewhere."""
    readme = (ROOT / "README.md").read_text()
    first_screen = "\n".join(readme.splitlines()[:60])
    assert "snakemake --cores 1\n```" in first_screen and "python -m pytest\n```" in first_screen
    assert "## Results" in first_screen
    results = readme[readme.index("<!-- results:start"):readme.index("<!-- results:end -->")]
    models = re.findall(r"(?m)^### (\S+)", results)
    assert models == ["distilbert-base-uncased"], models  # the default config's model only
    experiments = (ROOT / "config" / "experiments" / "README.md").read_text()
    assert "### all-minilm-l6-v2" in experiments and "## Choices, and where their evidence is" in experiments
