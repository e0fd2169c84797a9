#!/usr/bin/env bash
# Installs (if needed) and starts a single-node Slurm on this machine, for the cluster
# tests (tests/cluster_slurm.rs) and CI. Idempotent: when the node already answers
# `sinfo` as idle or allocated, it only says so.
#
# Debian 12's slurm-wlm 22.05 + munge + Open MPI 4.1 (PMIx), configured without cgroups
# or systemd (see the notes in shared/spec/slurm-single-node.md). Everything Slurm
# writes lives under $EDP_SLURM_DIR (default /var/tmp/edp-slurm); the configuration is
# /etc/slurm/slurm.conf because every Slurm client reads it from there.
# All daemons talk over 127.0.0.1 only (NodeAddr and SlurmctldHost address).
#
# Usage: scripts/slurm-up.sh          start (install first if packages are missing)
#        scripts/slurm-up.sh --down   stop the daemons this script started
# Exit: 0 Slurm is up; 77 Slurm cannot be started here (not root, no apt); 1 failure.
set -euo pipefail

dir=${EDP_SLURM_DIR:-/var/tmp/edp-slurm}
conf=/etc/slurm/slurm.conf
marker="# written by edp scripts/slurm-up.sh"

say() { echo "slurm-up: $*" >&2; }
cannot() { say "cannot start Slurm here: $*"; exit 77; }

stop() {
  # Only the daemons whose pids this script recorded, never by name.
  for d in slurmd slurmctld; do
    if [ -f "$dir/$d.pid" ] && kill -0 "$(cat "$dir/$d.pid")" 2>/dev/null; then
      kill "$(cat "$dir/$d.pid")" && say "stopped $d"
    fi
  done
}

if [ "${1:-}" = "--down" ]; then
  stop
  exit 0
fi

# The node is usable when sinfo answers with a state in which jobs can run.
node_up() {
  command -v sinfo >/dev/null 2>&1 || return 1
  local state
  state=$(timeout 10 sinfo -h -o '%T' 2>/dev/null | head -n1) || return 1
  case "$state" in idle* | mixed* | allocated* | completing*) return 0 ;; *) return 1 ;; esac
}

if node_up; then
  say "Slurm already up ($(sinfo -h -o '%N %T %c cpus' | head -n1))"
  exit 0
fi

[ "$(id -u)" -eq 0 ] || cannot "not root (slurmd must run as root to start jobs)"

# Open MPI (which brings libpmix2) must be installed before slurmd starts, or its PMIx
# plugin does not load and `srun --mpi=pmix` hangs.
packages=(munge slurmctld slurmd slurm-client openmpi-bin libopenmpi-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  command -v apt-get >/dev/null 2>&1 || cannot "apt-get not found to install ${missing[*]}"
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# munge: the package made /etc/munge/munge.key; without systemd start the daemon by hand.
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  mkdir -p /run/munge
  chown munge:munge /run/munge
  chmod 0755 /run/munge
  # --force: a munged killed with the previous session leaves its socket behind.
  runuser -u munge -- /usr/sbin/munged --force
  for _ in $(seq 50); do
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
    sleep 0.1
  done
  munge -n | unmunge >/dev/null || { say "munged did not start"; exit 1; }
  say "munged started"
fi

# Configuration: never overwrite a slurm.conf that someone else wrote.
if [ -f "$conf" ] && ! grep -qF "$marker" "$conf"; then
  cannot "$conf exists and was not written by this script; refusing to replace it"
fi
host=$(hostname -s)
# slurmd -C prints this machine's NodeName line; keep its CPU layout, and leave some
# memory to the system (RealMemory a little below what it reports).
node=$(slurmd -C | head -n1)
mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
layout=$(grep -o 'CPUs=[0-9]* Boards=[0-9]* SocketsPerBoard=[0-9]* CoresPerSocket=[0-9]* ThreadsPerCore=[0-9]*' <<<"$node")
mkdir -p "$dir/state" "$dir/spool" /etc/slurm
tmp=$(mktemp "$conf.XXXXXX")
cat >"$tmp" <<EOF
$marker
ClusterName=edptest
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# No cgroups on this machine: track processes by /proc, bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MailProg=/bin/true
# Debian's Open MPI only speaks PMIx.
MpiDefault=pmix
ReturnToService=2
# Keep finished jobs visible to scontrol for the tests (no accounting database).
MinJobAge=600
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 $layout RealMemory=$((mem * 9 / 10)) State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
mv "$tmp" "$conf"
chmod 0644 "$conf"

# Start what is not running. -D keeps them in the foreground of their own session;
# their output goes to files so no caller waits on an inherited pipe.
start() {
  local d=$1
  shift
  if [ -f "$dir/$d.pid" ] && kill -0 "$(cat "$dir/$d.pid")" 2>/dev/null; then
    return 0
  fi
  setsid "$d" -D "$@" >"$dir/$d.out" 2>&1 </dev/null &
  echo $! >"$dir/$d.pid"
  say "started $d (pid $!)"
}
# -c: a test cluster starts empty; jobs of a killed earlier session are not recovered.
start slurmctld -c
for _ in $(seq 100); do
  timeout 5 scontrol ping 2>/dev/null | grep -q UP && break
  sleep 0.2
done
start slurmd

for _ in $(seq 150); do
  if node_up; then
    say "Slurm up ($(sinfo -h -o '%N %T %c cpus' | head -n1))"
    exit 0
  fi
  sleep 0.2
done
say "the node did not come up; last lines of the logs:"
tail -n 20 "$dir/slurmctld.log" "$dir/slurmd.log" "$dir/slurmctld.out" "$dir/slurmd.out" >&2 || true
exit 1
