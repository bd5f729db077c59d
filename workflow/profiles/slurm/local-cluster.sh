#!/usr/bin/env bash
# A one-node SLURM on this machine, to try workflow/profiles/slurm without a cluster (Debian or Ubuntu, as root):
#
#   sudo workflow/profiles/slurm/local-cluster.sh start    # install what is missing, configure, start, wait
#   snakemake --workflow-profile workflow/profiles/slurm   # jobs go through sbatch to this machine
#   sudo workflow/profiles/slurm/local-cluster.sh status   # the daemons and the node; exit 1 when it is not up
#   sudo workflow/profiles/slurm/local-cluster.sh stop     # stops the daemons (MariaDB and munge too)
#
# The node is this machine (its cores and memory as `slurmd -C` sees them) in two partitions, `cpu` (the
# default, the profile's default-resources) and `debug`. It has what the executor plugin relies on:
#   - accounting (slurmdbd + MariaDB): snakemake-executor-plugin-slurm asks `sacct` for the state of its jobs
#     whenever sacct is installed (always, with slurm-client), and without slurmdbd sacct only answers "Slurm
#     accounting storage is disabled". SLURM 22.05 has no lighter accounting storage (none or slurmdbd).
#   - memory enforcement: task/cgroup with ConstrainRAMSpace kills a job that outgrows its --mem, and SLURM
#     records OUT_OF_MEMORY, which the plugin reports. Where the memory cgroup cannot be used (cgroup v2
#     without systemd, e.g. some containers), LOCAL_SLURM_MEMORY=poll samples each job's memory every 2 s
#     instead (jobacct_gather/linux, OverMemoryKill): it kills the job too, but SLURM then records FAILED,
#     and only the job's log says "Exceeded job memory limit".
#
# Install: 33 packages, 30 MB of .debs (SLURM 22.05, munge, MariaDB 10.11, their dependencies). A first
# `start` on a bare Debian 12, apt-get update and install included, took 11 s here, next to a package
# mirror; add the download of 30 MB elsewhere. A `start` with the cluster up changes nothing and takes 1 s.
set -euo pipefail

NODE=$(hostname -s)
CLUSTER=local
CONF=/etc/slurm
LOGS=/var/log/slurm
PACKAGES=(slurm-wlm slurmctld slurmd munge slurmdbd mariadb-server)
MEMORY=${LOCAL_SLURM_MEMORY:-cgroup}   # cgroup or poll, see above
WAIT_S=${LOCAL_SLURM_WAIT_S:-60}       # how long each daemon may take to answer

say() { echo "local-cluster: $*" >&2; }
die() { say "error: $*"; exit 1; }

# wait_for <what> <log file> <command...>: run the command until it succeeds, at most WAIT_S seconds.
wait_for() {
    local what=$1 log=$2; shift 2
    for _ in $(seq "$WAIT_S"); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 1
    done
    say "$what did not come up within ${WAIT_S}s; the end of $log:"
    tail -n 20 "$log" >&2 || true
    die "$what is not running"
}

install_packages() {
    local missing=()
    for package in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return
    say "installing ${missing[*]}"
    command -v apt-get >/dev/null || die "no apt-get: install ${missing[*]} with this system's package manager"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# write <file> <mode> <owner>: stdin to the file; records in CHANGED whether its content changed.
CHANGED=0
write() {
    local new; new=$(cat)
    if [ ! -f "$1" ] || [ "$new" != "$(cat "$1")" ]; then
        printf '%s\n' "$new" >"$1"
        CHANGED=1
    fi
    chmod "$2" "$1"; chown "$3" "$1"
}

configure() {
    # The node line as slurmd measures this machine, e.g. "NodeName=vm CPUs=2 ... RealMemory=24105".
    local node_line; node_line=$(slurmd -C | head -n 1)
    [[ $node_line == NodeName=* ]] || die "slurmd -C printed no node line: $node_line"
    local tracking
    if [ "$MEMORY" = cgroup ]; then
        tracking="ProctrackType=proctrack/cgroup
TaskPlugin=task/cgroup,task/affinity
JobAcctGatherType=jobacct_gather/cgroup"
    else
        tracking="ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=2
JobAcctGatherParams=OverMemoryKill"
    fi
    mkdir -p "$LOGS" && chown slurm:slurm "$LOGS"
    write "$CONF/slurm.conf" 644 root:root <<EOF
# Written by workflow/profiles/slurm/local-cluster.sh: one node, this machine.
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
MpiDefault=none
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
ReturnToService=2
# scancel: SIGTERM, then SIGKILL KillWait seconds later (default 30). The snakemake inside a job takes SIGTERM
# as "finish the running rule", so a cancelled job works on until the SIGKILL: 5 s here.
KillWait=5
# How long squeue shows a finished job (300 s is SLURM's default, said here because the profile depends on
# it): the profile reads job states with squeue, and the plugin may wait up to 180 s between two checks.
MinJobAge=300
SchedulerType=sched/backfill
# Cores and memory are what jobs ask for: --cpus-per-task and --mem are granted, queued or refused.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
$tracking
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
# sacct shows the plugin's --comment (rule_<rule>_wildcards_<values>): which rule each job ran.
AccountingStoreFlags=job_comment
${node_line/ UpTime=*/} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=debug Nodes=$NODE MaxTime=INFINITE State=UP
EOF
    write "$CONF/cgroup.conf" 644 root:root <<EOF
ConstrainCores=yes
ConstrainRAMSpace=yes
EOF
    write "$CONF/slurmdbd.conf" 600 slurm:slurm <<EOF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
LogFile=$LOGS/slurmdbd.log
PidFile=/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
}

slurm_daemons_running() { pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null || pgrep -x slurmdbd >/dev/null; }

node_up() { sinfo -h -n "$NODE" -o %t 2>/dev/null | grep -Eq '^(idle|mix|alloc)'; }

start() {
    install_packages
    configure
    if [ "$CHANGED" = 1 ] && slurm_daemons_running; then
        say "configuration changed: restarting SLURM"
        stop_slurm
    fi
    # `service` runs the packages' init scripts, or their systemd units where systemd runs.
    [ -f /etc/munge/munge.key ] || runuser -u munge -- mungekey --create
    service munge start >/dev/null
    wait_for munge /var/log/munge/munged.log sh -c 'munge -n | unmunge'
    service mariadb start >/dev/null
    wait_for MariaDB /var/log/syslog mysqladmin ping
    mysql -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
              CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
              GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
    service slurmdbd start >/dev/null
    wait_for slurmdbd "$LOGS/slurmdbd.log" sacctmgr -n list cluster
    sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER" || sacctmgr -i add cluster "$CLUSTER" >/dev/null
    service slurmctld start >/dev/null
    wait_for slurmctld "$LOGS/slurmctld.log" scontrol ping
    service slurmd start >/dev/null
    wait_for "node $NODE" "$LOGS/slurmd.log" node_up
    sinfo
}

stop_slurm() {
    for daemon in slurmd slurmctld slurmdbd; do
        service "$daemon" stop >/dev/null 2>&1 || true
    done
    for _ in $(seq 30); do slurm_daemons_running || break; sleep 1; done  # `stop` only signals them
    rm -f /run/slurmd.pid /run/slurmctld.pid /run/slurmdbd.pid  # a stale one makes the packages' removal fail
}

stop() {
    stop_slurm
    service mariadb stop >/dev/null 2>&1 || true
    service munge stop >/dev/null 2>&1 || true
}

status() {
    for daemon in munged mariadbd slurmdbd slurmctld slurmd; do
        printf '%-10s %s\n' "$daemon" "$(pgrep -x "$daemon" >/dev/null && echo running || echo stopped)"
    done
    sinfo 2>/dev/null || true
    node_up
}

[ "$(id -u)" = 0 ] || die "run as root (sudo $0 ${1:-start})"
case ${1:-} in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
