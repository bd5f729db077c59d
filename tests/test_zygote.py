"""Worker processes forked from a zygote that has the engines imported, and what a timed process does with the
memory it frees."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from inference_bench.measure.rounds import WorkerProcess
from inference_bench.measure.zygote import Zygote

SOURCE = Path(__file__).resolve().parents[1] / "workflow" / "src"


def _parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def zygote(tmp_path):
    started = Zygote(str(tmp_path / "zygote.log"), source=SOURCE)
    yield started
    started.close()


def test_a_worker_is_forked_with_the_engines_already_imported(zygote, tmp_path):
    worker = WorkerProcess("a test worker", str(tmp_path / "zygote.log"), zygote)
    try:
        assert _parent_of(worker.process.pid) == zygote.process.pid
        maps = Path(f"/proc/{worker.process.pid}/maps").read_text()
        # Nothing was asked of it yet: what it has mapped, it has from the zygote.
        assert "libtorch_cpu" in maps
        assert worker.process.poll() is None
    finally:
        assert worker.close() == {}  # no variant loaded: nothing to report
    assert worker.process.poll() == 0


def test_a_forked_worker_killed_by_a_signal_is_reported_as_killed(zygote, tmp_path):
    worker = WorkerProcess("ort-int8 at batch 64", str(tmp_path / "zygote.log"), zygote)
    os.kill(worker.process.pid, signal.SIGKILL)
    reply = worker.ask({"op": "close"})
    assert reply == {"status": "killed", "failure": "ort-int8 at batch 64 was killed by SIGKILL (the kernel's "
                                                    "out-of-memory killer sends it)"}
    assert worker.process.returncode == -signal.SIGKILL


def test_a_killed_comparison_leaves_no_zygote_and_no_worker_behind(tmp_path):
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(SOURCE)!r})
        from inference_bench.measure.rounds import WorkerProcess
        from inference_bench.measure.zygote import Zygote
        from pathlib import Path
        zygote = Zygote(source=Path({str(SOURCE)!r}))
        worker = WorkerProcess("w", None, zygote)
        worker.pause()  # stopped, as an idle worker is while another times
        print(zygote.process.pid, worker.process.pid, flush=True)
        os.kill(os.getpid(), 9)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    zygote_pid, worker_pid = map(int, done.stdout.split())
    deadline = time.monotonic() + 10
    while (_alive(zygote_pid) or _alive(worker_pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(zygote_pid) and not _alive(worker_pid)


_FAULTS = textwrap.dedent("""
    import ctypes, resource, sys
    sys.path.insert(0, sys.argv[2])
    from inference_bench.measure.allocator import apply_allocator
    print(apply_allocator(sys.argv[1])["applied"])
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    size = 64 * 2**20  # over the largest block glibc keeps for reuse: mmapped, and given back on free
    faults = []
    for _ in range(4):  # an engine's call: a large buffer allocated, written, freed
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        buffer = libc.malloc(size)
        ctypes.memset(buffer, 1, size)
        libc.free(buffer)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(faults[-1])
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_retaining_process_faults_no_pages_on_a_warm_call_where_the_system_default_does():
    def warm_call_faults(policy: str) -> int:
        done = subprocess.run([sys.executable, "-c", _FAULTS, policy, str(SOURCE)], capture_output=True,
                              text=True, check=True, timeout=60)
        applied, faults = done.stdout.split()
        assert applied == "True"
        return int(faults)

    # 64 MiB is 16,384 pages of 4 KiB: the system default faults every one in again, every call.
    assert warm_call_faults("system") >= 16000
    assert warm_call_faults("retain") < 100


def test_an_unknown_allocator_policy_is_refused():
    from inference_bench.measure.allocator import apply_allocator

    with pytest.raises(ValueError, match="benchmark.allocator must be one of"):
        apply_allocator("jemalloc")
