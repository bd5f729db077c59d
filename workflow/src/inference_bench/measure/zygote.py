"""A zygote: one process per comparison that imports torch once, then forks each PyTorch worker process from itself.

A generation of fresh processes spent most of its time importing: a PyTorch worker imports torch and
transformers' modeling code for about 4 of its 5 s of CPU on a Zen 5 core, so at batch 1 loading took 9.5 s of
a 15 s generation on 2 cores, and the budget bought 7 processes. Forked from a process that has those modules
imported, a worker starts in milliseconds and pays only for its own model, compile and warm-up. (An ONNX Runtime
worker imports neither and loads in under 1 s: it starts as a fresh interpreter, and its peak memory stays its own.)

What the workers of one comparison share: the imported code, at the same addresses. What each has of its own,
created after the fork: its model and engine session, every byte they allocate, its threads. The zygote itself
never runs a model, creates no engine threads and never touches a GPU (CUDA cannot survive a fork).

`python -m inference_bench.measure.zygote SOCKET_FD [LOG] [MODEL_DIR]`: the comparison (Zygote) talks to it
over a Unix socket, one JSON message per packet: `{"op": "fork"}` with a worker's two pipe ends attached
(SCM_RIGHTS) forks a worker on them and answers its pid; `{"op": "poll", "pid": n}` answers its exit code (null
while it runs). The zygote dies with its comparison, and each worker with its zygote (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from inference_bench.errors import PipelineError

log = logging.getLogger("workflow")

#: Imported once by the zygote: what every worker would otherwise import for itself.
PRELOADED = ("numpy", "torch", "transformers", "inference_bench.measure.worker", "inference_bench.measure.runners",
             "inference_bench.models", "inference_bench.build.parity", "inference_bench.build.reference",
             "inference_bench.inputs.batches")


class ZygoteError(PipelineError, RuntimeError):
    """The zygote could not start, or went away (its log says why)."""


def zygote_possible() -> bool:
    """Fork and descriptor passing over Unix sockets (Linux, the BSDs); elsewhere workers start as fresh interpreters."""
    return hasattr(os, "fork") and hasattr(socket, "send_fds") and hasattr(socket, "SOCK_SEQPACKET")


class Zygote:
    """The comparison's side: start the zygote, fork workers from it, ask how they ended."""

    def __init__(self, log_path: str | None = None, model_dir: str | None = None,
                 source: Path | None = None) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(os.environ)
        if source is not None:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source), os.environ.get("PYTHONPATH")]))
        command = [sys.executable, "-m", "inference_bench.measure.zygote", str(theirs.fileno()),
                   log_path or "", model_dir or ""]
        self.log_path = log_path
        self.process = subprocess.Popen(command, env=env, pass_fds=(theirs.fileno(),))
        theirs.close()
        self._socket = ours
        ready = self._receive()
        if not ready.get("ready"):
            raise ZygoteError(f"the zygote did not start{self._where()}")
        self.import_s = float(ready.get("import_s", 0.0))

    def fork(self, commands_fd: int, replies_fd: int) -> int:
        """A worker forked on these two pipe ends (the caller closes its copies); its pid."""
        try:
            socket.send_fds(self._socket, [json.dumps({"op": "fork"}).encode()], [commands_fd, replies_fd])
        except OSError as error:
            raise ZygoteError(f"the zygote is gone ({error}){self._where()}") from error
        return int(self._receive()["pid"])

    def poll(self, pid: int) -> int | None:
        """The worker's exit code as subprocess gives it (negative: the signal that killed it), None while it runs."""
        try:
            self._socket.send(json.dumps({"op": "poll", "pid": pid}).encode())
        except OSError as error:
            raise ZygoteError(f"the zygote is gone ({error}){self._where()}") from error
        return self._receive()["returncode"]

    def close(self) -> None:
        self._socket.close()  # the zygote reads the end of its socket and exits
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _receive(self) -> dict[str, Any]:
        try:
            data = self._socket.recv(65536)
        except OSError:
            data = b""
        if not data:
            code = self.process.wait()
            raise ZygoteError(f"the zygote exited with code {code}{self._where()}")
        return json.loads(data)

    def _where(self) -> str:
        return f"; its log is {self.log_path}" if self.log_path else ""


class ForkedProcess:
    """A worker forked by the zygote, with the part of subprocess.Popen that WorkerProcess uses (the zygote is
    its parent: it reaps it, and says how it ended)."""

    def __init__(self, zygote: Zygote, pid: int) -> None:
        self.zygote, self.pid = zygote, pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.zygote.poll(self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout)
            time.sleep(0.005)
        return code

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def _preload(model_dir: str) -> None:
    for name in PRELOADED:
        importlib.import_module(name)
    if model_dir:  # the modeling code of this model's architecture (transformers imports it lazily)
        try:
            from transformers import AutoConfig, AutoModel

            AutoModel._model_mapping[type(AutoConfig.from_pretrained(model_dir))]
        except Exception as error:  # noqa: BLE001 - an optimization only: each worker imports what it needs
            log.info("zygote: the model's modeling code was not preloaded (%s)", error)


def _returncode(status: int) -> int:
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _become_worker(channel: socket.socket, fds: list[int], log_path: str, forked: int) -> None:
    """In the forked child: serve as a worker on the two pipe ends, never return into the zygote's loop."""
    code = 0
    try:
        from inference_bench.measure import worker

        worker.die_with_parent()
        os.close(forked)  # tells the zygote this child dies with it: only then may the comparison stop it
        channel.close()
        worker.main([str(fds[0]), str(fds[1]), *([log_path] if log_path else [])])
    except BaseException:  # noqa: BLE001 - the traceback is in the log (worker.main wrote it)
        code = 1
    finally:
        logging.shutdown()
        os._exit(code)


def serve(channel: socket.socket, log_path: str) -> None:
    """Fork workers and report their exits until the comparison closes its end."""
    ended: dict[int, int] = {}
    while True:
        try:
            data, fds, _flags, _address = socket.recv_fds(channel, 65536, 2)
        except OSError:
            return
        if not data:
            return
        message = json.loads(data)
        if message["op"] == "fork":
            forking, forked = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(forking)
                _become_worker(channel, fds, log_path, forked)
            os.close(forked)
            os.read(forking, 1)  # returns once the child has asked to die with the zygote (and closed its end)
            os.close(forking)
            for fd in fds:
                os.close(fd)
            channel.send(json.dumps({"pid": pid}).encode())
        elif message["op"] == "poll":
            pid = int(message["pid"])
            if pid not in ended:
                try:
                    done, status = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    done, status = pid, 0  # reaped already: not one of ours any more
                if done:
                    ended[pid] = _returncode(status)
            channel.send(json.dumps({"returncode": ended.get(pid)}).encode())
        else:
            raise ValueError(f"unknown message {message['op']!r}")


def main(argv: list[str]) -> None:
    from inference_bench.measure import worker

    channel = socket.socket(fileno=int(argv[0]))
    log_path = argv[1] if len(argv) > 1 else ""
    worker.die_with_parent()
    worker.log_to(log_path or None)
    began = time.perf_counter()
    _preload(argv[2] if len(argv) > 2 else "")
    channel.send(json.dumps({"ready": True, "import_s": time.perf_counter() - began}).encode())
    try:
        serve(channel, log_path)
    except Exception:
        log.exception("zygote failed")
        raise


if __name__ == "__main__":
    main(sys.argv[1:])
