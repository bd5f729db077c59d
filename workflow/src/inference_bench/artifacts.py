"""Files written whole or not at all, and the sidecar every artifact carries."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from inference_bench.errors import PipelineError


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside `path` (same suffix) for the caller to write; renamed into place when the block
    ends without error, else removed. The file gets the permissions the umask gives any new file (mkstemp's
    0600 would hide results from the other users of a shared filesystem)."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=target.parent)
    except PermissionError as error:
        raise UnwritableError(
            f"cannot write {target}: {error.strerror} in {target.parent}; make it writable for this user, or "
            f"run in a copy of the project you own"
        ) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        respect_umask(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def respect_umask(path: str | os.PathLike[str]) -> None:
    """Give a file the permissions the umask gives any new file (a library that wrote it through a temporary
    file may have left it 0600)."""
    current = os.umask(0o022)
    os.umask(current)
    os.chmod(path, 0o666 & ~current)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    # numpy scalars and arrays reach us from metrics; keep this module free of a numpy import.
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


class UnwritableError(PipelineError, PermissionError):
    """The pipeline may not write where its results go."""


class UnreadableFileError(PipelineError, ValueError):
    """A file the pipeline wrote no longer parses (truncated, edited by hand)."""


def read_json(path: str | os.PathLike[str]) -> Any:
    try:
        with open(path) as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise UnreadableFileError(
            f"{path} is not valid JSON ({error}); delete it and rerun the workflow to rebuild it"
        ) from None


def read_csv(path: str | os.PathLike[str]) -> Any:
    """A summary or artifact table as a pandas DataFrame; one that does not parse is named."""
    import pandas as pd

    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise UnreadableFileError(
            f"{path} is not a readable CSV table ({str(error).strip()}); restore it (git checkout -- {path}) "
            f"or delete it and rerun"
        ) from None


def file_sha256(path: str | os.PathLike[str], chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def sidecar_path(artifact: str | os.PathLike[str]) -> Path:
    """`model.onnx` -> `model.json`."""
    return Path(artifact).with_suffix(".json")


def artifact_bytes(path: str | os.PathLike[str]) -> int:
    """Size in bytes of an ONNX file with the weights stored beside it (`<name>.data`), if any."""
    artifact = Path(path)
    external = list(artifact.parent.glob(f"{artifact.name}.data"))
    return artifact.stat().st_size + sum(p.stat().st_size for p in external)


def describe_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """File size in bytes (weights stored beside an ONNX file included) and sha256."""
    return {"file": Path(path).name, "file_bytes": artifact_bytes(path), "sha256": file_sha256(path)}


def write_sidecar(artifact: str | os.PathLike[str], versions: dict[str, str], **fields: Any) -> Path:
    """Write `{artifact}.json`: file size, sha256, the tool versions that made it (environment.library_versions)
    and whatever the stage adds."""
    record: dict[str, Any] = describe_file(artifact)
    record["versions"] = versions
    record.update(fields)
    out = sidecar_path(artifact)
    write_json_atomic(out, record)
    return out


class CorruptArtifactError(PipelineError, RuntimeError):
    """An artifact no longer matches the sha256 its sidecar recorded when it was built."""


def verify_artifact(path: str | os.PathLike[str]) -> None:
    """Refuse an artifact that was truncated or changed after it was built: compare it with its sidecar."""
    artifact = Path(path)
    sidecar = sidecar_path(artifact)
    if not artifact.is_file():
        raise CorruptArtifactError(f"{artifact} is missing; rerun the workflow to rebuild it")
    if not sidecar.is_file():
        return  # built outside the pipeline (a test, a user's own file): nothing to compare with
    recorded = read_json(sidecar).get("sha256")
    if recorded and file_sha256(artifact) != recorded:
        raise CorruptArtifactError(
            f"{artifact} does not match the sha256 recorded in {sidecar.name}: it was truncated or changed "
            f"after it was built. Delete {artifact.name} and {sidecar.name} and rerun the workflow to rebuild it."
        )
