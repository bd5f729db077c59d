"""Files on disk that no longer hold what the pipeline wrote, found before Snakemake plans a run.

Snakemake decides what to rebuild from modification times: a file truncated (or edited) with its mtime
kept looks up to date. Before the DAG is built, each file this run reports on is checked cheaply against
what was recorded when it was written (an ONNX file's size against its sidecar, a model file's size against
the manifest, a JSON or an .npz that must still parse); a damaged one is moved aside as `<name>.damaged`,
so that the plain `snakemake --cores 1` sees it missing and rebuilds it. Jobs still verify each artifact's
sha256 before they use it.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from inference_bench.artifacts import artifact_bytes, read_json, sidecar_path
from inference_bench.errors import PipelineError
from inference_bench.layout import MANIFEST_NAME

log = logging.getLogger(__name__)

DAMAGED_SUFFIX = ".damaged"
#: A model folder without its manifest for this long is taken as an unfinished download.
UNFINISHED_AFTER_S = 600


@dataclass(frozen=True)
class Damage:
    path: Path
    reason: str
    companions: tuple[Path, ...] = ()  # files made by the same job, moved aside with it (an artifact's sidecar)


def _json_problem(path: Path) -> str | None:
    try:
        read_json(path)
    except PipelineError:
        return "not valid JSON"
    return None


def damaged_json(path: str | Path) -> Damage | None:
    path = Path(path)
    if not path.is_file():
        return None
    problem = _json_problem(path)
    return Damage(path, problem) if problem else None


def damaged_artifact(onnx_path: str | Path) -> Damage | None:
    """An ONNX file whose size differs from the one its sidecar recorded, or whose sidecar does not parse.
    Only a finished pair is checked: Snakemake deletes both before a job rebuilds them."""
    onnx, sidecar = Path(onnx_path), sidecar_path(onnx_path)
    if not onnx.is_file() or not sidecar.is_file():
        return None
    if _json_problem(sidecar):
        return Damage(onnx, f"its sidecar {sidecar.name} is not valid JSON", (sidecar,))
    recorded = read_json(sidecar).get("file_bytes")
    actual = artifact_bytes(onnx)
    if recorded is not None and actual != recorded:
        return Damage(onnx, f"{actual} bytes where its sidecar recorded {recorded}", (sidecar,))
    return None


def damaged_model_dir(model_dir: str | Path) -> Damage | None:
    """A model directory whose files differ in size from its manifest, or are missing."""
    folder = Path(model_dir)
    manifest = folder / MANIFEST_NAME
    if not folder.is_dir():
        return None
    if not manifest.is_file():
        # download_model writes the manifest last. A folder without one is a download or copy that did not
        # finish, unless it is being written right now (a dry run beside a real one): leave recent ones be.
        if time.time() - folder.stat().st_mtime < UNFINISHED_AFTER_S:
            return None
        return Damage(folder, f"no {MANIFEST_NAME}: the download or copy did not finish")
    if _json_problem(manifest):
        return Damage(folder, f"{MANIFEST_NAME} is not valid JSON")
    for name, entry in read_json(manifest).get("files", {}).items():
        file = folder / name
        if not file.is_file():
            return Damage(folder, f"{name} is missing")
        if file.stat().st_size != entry.get("bytes"):
            return Damage(folder, f"{name} has {file.stat().st_size} bytes where the manifest recorded {entry['bytes']}")
    return None


def damaged_npz(path: str | Path) -> Damage | None:
    """An .npz whose arrays no longer read back (zip checksums catch truncation and edits)."""
    import zipfile

    file = Path(path)
    if not file.is_file():
        return None
    try:
        with zipfile.ZipFile(file) as archive:
            broken = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        return Damage(file, f"not a readable .npz ({error})")
    return Damage(file, f"member {broken} fails its checksum") if broken else None


def find_damage(checks: Iterable[tuple[Callable[[str | Path], Damage | None], str | Path]]) -> list[Damage]:
    return [damage for check, path in checks if (damage := check(path)) is not None]


def set_aside(damage: Damage) -> Path:
    """Move a damaged file (and its companions) to `<name>.damaged`, replacing an older one; return where."""
    moved = damage.path.with_name(damage.path.name + DAMAGED_SUFFIX)
    for source in (damage.path, *damage.companions):
        target = source.with_name(source.name + DAMAGED_SUFFIX)
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        if source.exists():
            source.rename(target)
    log.warning("%s is damaged (%s): moved to %s; this run rebuilds it", damage.path, damage.reason, moved.name)
    return moved
