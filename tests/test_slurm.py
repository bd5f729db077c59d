"""The SLURM profile for real: the tiny pipeline through a running one-node SLURM on this machine
(workflow/profiles/slurm/local-cluster.sh brings it up: root and apt-get, or a cluster already running).

The tests run in order on one project: the first run builds everything through sbatch; a second run submits
nothing; a new batch size submits its job, which is cancelled with scancel, beside a calibration killed for
its memory; the controller goes down between two jobs.
"""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, TINY_CONFIG, make_project, seed_model, snakemake
from inference_bench import layout

pytestmark = [pytest.mark.e2e, pytest.mark.slurm]

CLUSTER_SCRIPT = ROOT / "workflow" / "profiles" / "slurm" / "local-cluster.sh"
TAG, MODEL = "cpu", "tiny-distilbert"
#: The tag's resources as a site would write them, each different from the defaults below, so that sacct
#: shows which of the two a job got.
TAG_RESOURCES = {"slurm_partition": "debug", "cpus_per_task": 2, "mem_mb": 3000, "runtime": 15}
MEASURING_RULES = {"benchmark", "calibrate"}
#: The profile as a user runs it, with overrides for a 2-core node: one core per build job (two at a time),
#: export and optimize in 4 GB instead of 16, the first status check after a second instead of 40.
PROFILE = ["--workflow-profile", "workflow/profiles/slurm", "--latency-wait", "5",
           "--slurm-init-seconds-before-status-checks", "1",
           "--default-resources", "slurm_partition=cpu", "cpus_per_task=1", "mem_mb=2000", "runtime=10"]
SET_RESOURCES = ["export_onnx:mem_mb=4000", "optimize_ort:mem_mb=4000"]
DEFAULT_REQUEST = {"Partition": "cpu", "ReqCPUS": "1", "ReqMem": "2000M", "Timelimit": "00:10:00"}
TAG_REQUEST = {"Partition": "debug", "ReqCPUS": "2", "ReqMem": "3000M", "Timelimit": "00:15:00"}
#: snakemake, with two changes to the plugin's pace: after a status check that finds no job finished, it waits
#: 10 s longer than before (1 s, 11, 21, ... up to 180: right for a busy cluster, minutes of idling for these
#: short jobs); here it checks every 2 s. And plugin 2.6.1 sleeps 5 s before each sbatch, one submission after
#: another (run_job's only time.sleep; 2.7.1 dropped it, upstream commit 18fb815): here it does not (the first
#: run took 117 s with the sleeps, 97 s without). What it submits and how it reads SLURM's states are the
#: plugin's own.
SNAKEMAKE = [sys.executable, "-c", """
import sys, time, types, snakemake_executor_plugin_slurm as plugin
checks = plugin.Executor.next_seconds_between_status_checks
plugin.Executor.next_seconds_between_status_checks = checks.setter(lambda self, s: checks.fset(self, min(s, 2)))
def sleep(seconds):
    if sys._getframe(1).f_code is not plugin.Executor.run_job.__code__:
        time.sleep(seconds)
plugin.time = types.SimpleNamespace(**{**vars(time), "sleep": sleep})
from snakemake.cli import main
sys.exit(main())
"""]
SACCT_FIELDS = ["JobIDRaw", "JobName", "Comment", "Partition", "ReqCPUS", "ReqMem", "Timelimit", "State", "Start",
                "End"]


def as_root(*command: str) -> list[str]:
    """The command as root: the cluster's daemons are root's to start and stop (sudo -n: never a prompt)."""
    return list(command) if os.geteuid() == 0 else ["sudo", "-n", *command]


def cluster_script(command: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(as_root("bash", str(CLUSTER_SCRIPT), command), capture_output=True, text=True,
                              timeout=900)
    except FileNotFoundError as error:  # not root, and no sudo
        return subprocess.CompletedProcess(error.filename, 1, "", f"{error}: run the tests as root, or install sudo")


def daemons_running() -> bool:
    """Whether a SLURM daemon runs here (local-cluster.sh's own test). Where none does, the cluster is not up, and
    `status` takes 18 s to say so (its sinfo waits for a controller that is not there)."""
    try:
        return any(subprocess.run(["pgrep", "-x", daemon], capture_output=True).returncode == 0
                   for daemon in ("slurmctld", "slurmd", "slurmdbd"))
    except FileNotFoundError:  # no pgrep: ask `status`
        return True


@pytest.fixture(scope="module")
def cluster():
    """A running one-node SLURM: the one already up, or one this module starts (and stops at the end). Where
    none can be brought up (not root and no passwordless sudo, no apt-get, no network), the tests skip, except
    in CI (CI set, as .ci/run does), where they fail: CI must not pass without them."""
    if daemons_running() and cluster_script("status").returncode == 0:
        yield
        return
    started = cluster_script("start")
    if started.returncode != 0:
        why = f"local-cluster.sh start failed:\n{started.stdout[-2000:]}\n{started.stderr[-3000:]}"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, and the SLURM tests cannot run without their cluster: {why}", pytrace=False)
        pytest.skip(why)
    try:
        yield
    finally:
        cluster_script("stop")


def profile_args(*extra: str, set_resources: tuple[str, ...] = ()) -> list[str]:
    return [*PROFILE, "--set-resources", *SET_RESOURCES, *set_resources, *extra]


def start(project: Path, *args: str, log: str, cores: int = 2) -> tuple[subprocess.Popen, Path]:
    """snakemake (SNAKEMAKE) in the background, its output in `log` (read it while it runs)."""
    out = project / log
    process = subprocess.Popen([*SNAKEMAKE, "--cores", str(cores), *args], cwd=project,
                               stdout=out.open("w"), stderr=subprocess.STDOUT, text=True)
    return process, out


def finish(process: subprocess.Popen, timeout: float = 300) -> int:
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError(f"snakemake still running after {timeout} s") from None


def sacct(**filters: str) -> list[dict[str, str]]:
    """The SLURM jobs (allocations, not steps) of the last day, each as a dict of SACCT_FIELDS."""
    result = subprocess.run(["sacct", "-X", "-n", "-P", "--starttime", "now-1days", "--format",
                             ",".join(SACCT_FIELDS)], capture_output=True, text=True, check=True)
    jobs = [dict(zip(SACCT_FIELDS, line.split("|"), strict=True)) for line in result.stdout.splitlines() if line]
    return [job for job in jobs if all(job[key] == value for key, value in filters.items())]


def rule_of(job: dict[str, str]) -> tuple[str, str]:
    """(rule, wildcard values joined by _) from the plugin's --comment."""
    match = re.fullmatch(r"rule_(\w+?)(?:_wildcards_(.*))?", job["Comment"])
    assert match, job
    return match.group(1), match.group(2) or ""


def submitted(output: str) -> list[dict[str, str]]:
    """The SLURM jobs of this run of snakemake (none when it had nothing to submit)."""
    match = re.search(r"SLURM run ID: (\S+)", output)
    return sacct(JobName=match.group(1)) if match else []


def job_stats(output: str) -> dict[str, int]:
    """The run's plan: jobs per rule from the `Job stats` table at its start."""
    table = output.split("Job stats:", 1)[1].split("total", 1)[0]
    return {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)\s*$", table, re.MULTILINE)}


def steps_done(jobid: str, timeout: float = 90) -> None:
    """Wait until no step of the job runs: a cancelled job's processes may outlive its CANCELLED state."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        states = subprocess.run(["sacct", "-n", "-P", "-j", jobid, "-o", "State"], capture_output=True,
                                text=True).stdout.split()
        if states and not any(state in ("RUNNING", "PENDING", "COMPLETING") for state in states):
            return
        time.sleep(1)
    raise AssertionError(f"SLURM job {jobid} still has running steps after {timeout} s")


def set_batch_sizes(project: Path, sizes: list[int]) -> None:
    path = project / "config" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config["benchmark"]["batch_sizes"] = sizes
    path.write_text(yaml.safe_dump(config))


def comparison(project: Path, batch: int) -> Path:
    return project / layout.COMPARISON.format(hardware=TAG, model=MODEL, batch=batch, seq=16)


def variant_results(project: Path, batch: int) -> list[Path]:
    return sorted(project.glob(layout.BENCH_RESULT.format(hardware=TAG, model=MODEL, variant="*", batch=batch,
                                                          seq=16)))


def read_summary(project: Path) -> tuple[list[str], set[tuple[str, ...]]]:
    with (project / layout.SUMMARY.format(hardware=TAG, model=MODEL)).open() as handle:
        rows = list(csv.DictReader(handle))
    keys = ("hardware", "model", "variant", "batch_size", "sequence_length", "status")
    return list(rows[0]), {tuple(row[key] for key in keys) for row in rows}


def tiny_config(batch_sizes: list[int]) -> dict:
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["hardware"] = TAG  # not the default, which is about to become `auto`
    config["hardware_tags"][TAG]["resources"] = TAG_RESOURCES
    config["benchmark"]["batch_sizes"] = batch_sizes
    # One process per variant and shape, not two: shorter jobs.
    config["benchmark"].update(processes=1, max_processes=1)
    return config


@pytest.fixture(scope="module")
def first_run(cluster, tiny_run, tmp_path_factory):
    """The whole tiny pipeline through SLURM and, beside it (the SLURM run mostly waits), the same config run
    locally: there with the tiny model and the calibration already built (conftest.seed_model, from the session's
    tiny run, whose settings for them are these), so that the local run measures and summarizes."""
    project = make_project(tmp_path_factory.mktemp("slurm"), tiny_config([1, 2]))
    local_project = seed_model(make_project(tmp_path_factory.mktemp("local"), tiny_config([1, 2])),
                               tiny_run.project, tag=TAG)
    began = time.time()
    process, log = start(project, *profile_args(), log="first.log")
    local, local_log = start(local_project, log="local.log", cores=1)  # leaves the other core to SLURM
    returncode = finish(process, timeout=600)
    output = log.read_text()
    assert returncode == 0, output[-5000:]
    assert finish(local, timeout=300) == 0, local_log.read_text()[-5000:]
    print(f"first run through SLURM: {time.time() - began:.0f} s")
    return {"project": project, "local": local_project, "output": output, "jobs": submitted(output)}


@pytest.fixture(scope="module")
def local_rules(first_run) -> set[str]:
    """The rules the workflow runs where snakemake runs (`localrules:`), as Snakemake parses the project."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, ResourceSettings

    project = first_run["project"]
    with SnakemakeApi() as api:
        workflow = api.workflow(snakefile=project / "Snakefile", workdir=project,
                                resource_settings=ResourceSettings(cores=1), config_settings=ConfigSettings())
        return set(workflow._workflow._localrules) | {"all"}


def test_every_cluster_job_is_a_slurm_job_with_its_resources(first_run, local_rules):
    jobs = first_run["jobs"]
    assert jobs and all(job["State"] == "COMPLETED" for job in jobs), jobs
    planned = job_stats(first_run["output"])
    cluster_rules = {rule: count for rule, count in planned.items() if rule not in local_rules}
    ran = {}
    for job in jobs:
        ran[rule_of(job)[0]] = ran.get(rule_of(job)[0], 0) + 1
    assert ran == cluster_rules  # each job of a non-local rule once through sbatch, none of a local rule
    for job in jobs:
        rule = rule_of(job)[0]
        wanted = TAG_REQUEST if rule in MEASURING_RULES else DEFAULT_REQUEST
        if rule in ("export_onnx", "optimize_ort"):
            wanted = {**wanted, "ReqMem": "4000M"}
        assert {key: job[key] for key in wanted} == wanted, (rule, job)


def test_summary_is_that_of_a_local_run(first_run):
    columns, rows = read_summary(first_run["project"])
    local_columns, local_rows = read_summary(first_run["local"])
    assert columns == local_columns
    assert rows == local_rows and len(rows) == 4 * 2  # variants x batch sizes


def test_the_machine_check_ran_on_the_node(first_run):
    # The submitting snakemake does not check the machine (workflow.local_exec is false); the first
    # measuring job does, on its node, and writes results/<tag>/machine.json there.
    written = datetime.fromtimestamp((first_run["project"] / layout.MACHINE.format(hardware=TAG)).stat().st_mtime)
    windows = [(datetime.fromisoformat(job["Start"]), datetime.fromisoformat(job["End"]))
               for job in first_run["jobs"] if rule_of(job)[0] in MEASURING_RULES]
    assert any(start.timestamp() - 1 <= written.timestamp() <= end.timestamp() + 1 for start, end in windows), (
        written, windows)


def test_a_second_run_submits_nothing(first_run):
    result = snakemake(first_run["project"], *profile_args(), slurm_client=True)
    assert "has been submitted with SLURM jobid" not in result.stdout + result.stderr
    assert submitted(result.stdout + result.stderr) == []


def test_new_batch_size_submits_only_its_job_and_faults_fail_it(first_run):
    """batch size 4 added and the calibration deleted: exactly those two jobs go to SLURM (side by side: one
    core each, this once). The benchmark is cancelled with scancel once its script runs (its log has begun);
    the calibration asks for 300 MB and is killed by SLURM. Neither leaves a result."""
    project = first_run["project"]
    set_batch_sizes(project, [1, 2, 4])
    (project / layout.CALIBRATION.format(hardware=TAG)).unlink()
    bench_log = project / layout.log_path(TAG, MODEL, "bench", "b4_s16")
    # --retries 0: the profile retries a failed job once, which would hide the failures. The profile's
    # slurm-status-command (squeue) is what lets snakemake see the cancelled job end at all.
    process, log = start(project, *profile_args("--retries", "0",
                                                set_resources=("calibrate:mem_mb=300", "calibrate:cpus_per_task=1",
                                                               "benchmark:cpus_per_task=1")), log="faults.log")
    benchmark = None
    deadline = time.time() + 180
    while benchmark is None or not (bench_log.exists() and bench_log.stat().st_size > 0):
        assert process.poll() is None and time.time() < deadline, log.read_text()[-5000:]
        queue = subprocess.run(["squeue", "-h", "-o", "%i|%k|%T"], capture_output=True, text=True).stdout
        benchmark = next((line.split("|")[0] for line in queue.splitlines()
                          if line.split("|")[1] == f"rule_benchmark_wildcards_{TAG}_{MODEL}_4_16"
                          and line.split("|")[2] == "RUNNING"), benchmark)
        time.sleep(0.2)
    subprocess.run(["scancel", benchmark], check=True)
    returncode = finish(process)
    output = log.read_text()
    steps_done(benchmark)
    print(output[output.find("Error in rule"):])

    assert returncode != 0
    assert {rule_of(job) for job in submitted(output)} == {("benchmark", f"{TAG}_{MODEL}_4_16"), ("calibrate", TAG)}
    assert re.search(rf"Error in rule benchmark:\n\s+message: SLURM-job '{benchmark}' failed, SLURM status is: "
                     r"'CANCELLED'", output), output[-5000:]
    assert not comparison(project, 4).exists() and variant_results(project, 4) == []
    # Memory: SLURM's cgroup killed the calibration, and the error says so.
    (calibration_job,) = [job for job in submitted(output) if rule_of(job)[0] == "calibrate"]
    assert calibration_job["State"] == "OUT_OF_MEMORY" and calibration_job["ReqMem"] == "300M", calibration_job
    assert re.search(r"Error in rule calibrate:\n\s+message: SLURM-job '\d+' failed, SLURM status is: "
                     r"'OUT_OF_MEMORY'", output), output[-5000:]
    slurm_log = project / ".snakemake" / "slurm_logs" / "rule_calibrate" / TAG / f"{calibration_job['JobIDRaw']}.log"
    assert "oom-kill" in slurm_log.read_text()
    assert not (project / layout.CALIBRATION.format(hardware=TAG)).exists()


def test_controller_down_between_two_jobs(first_run, local_rules):
    """The next run redoes exactly the two failed jobs, one at a time (--jobs 1). Once the first has ended,
    and before snakemake has looked (it is paused with SIGSTOP: the controller goes down between two status
    checks), slurmctld stops: the second submission fails with SLURM's own message, and the first's result
    stays; after a restart, the next run would submit only the second."""
    project = first_run["project"]
    # --retries 0: the profile would try the failed submission once more, with the same message.
    # --slurm-status-command sacct (slurmdbd stays up), not the profile's squeue: squeue fails while slurmctld is
    # down, and when every status attempt of a check fails, plugin 2.6.1 drops the jobs it was watching (it
    # neither reports them nor keeps them), so snakemake would wait forever instead of reaching the submission.
    process, log = start(project, *profile_args("--jobs", "1", "--retries", "0", "--slurm-status-command", "sacct"),
                         log="controller.log")
    try:
        first = None
        deadline = time.time() + 180
        while first is None:
            assert process.poll() is None and time.time() < deadline, log.read_text()[-5000:]
            match = re.search(r"SLURM run ID: (\S+)", log.read_text())
            first = next(iter(sacct(JobName=match.group(1))), None) if match else None
            time.sleep(0.2)
        process.send_signal(signal.SIGSTOP)
        while (state := sacct(JobIDRaw=first["JobIDRaw"])[0]["State"]) in ("PENDING", "RUNNING"):
            assert time.time() < deadline, state
            time.sleep(0.5)
        assert state == "COMPLETED", state
        subprocess.run(as_root("scontrol", "shutdown", "slurmctld"), check=True, capture_output=True)
        while subprocess.run(["scontrol", "ping"], capture_output=True).returncode == 0:
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGCONT)
    try:
        returncode = finish(process)
    finally:
        restarted = cluster_script("start")
    assert restarted.returncode == 0, restarted.stderr
    output = log.read_text()
    print(output[output.find("has been submitted"):])

    assert returncode != 0
    planned = job_stats(output)
    assert {rule: count for rule, count in planned.items() if rule in MEASURING_RULES} == {"benchmark": 1,
                                                                                            "calibrate": 1}
    assert "Unable to contact slurm controller" in output, output[-5000:]
    done_rule, done_wildcards = rule_of(sacct(JobIDRaw=first["JobIDRaw"])[0])
    redone = {("benchmark", f"{TAG}_{MODEL}_4_16"), ("calibrate", TAG)}
    assert (done_rule, done_wildcards) in redone
    kept = comparison(project, 4) if done_rule == "benchmark" else project / layout.CALIBRATION.format(hardware=TAG)
    assert kept.exists()
    # The run after would submit the other job only: the one that completed is not redone.
    assert cluster_script("status").returncode == 0
    plan = job_stats(snakemake(project, *profile_args(), "--dry-run", slurm_client=True).stdout)
    (other,) = redone - {(done_rule, done_wildcards)}
    assert {rule: count for rule, count in plan.items() if rule in {"benchmark", "calibrate"}} == {other[0]: 1}
    assert all(rule in local_rules for rule in plan if rule != other[0]), plan
