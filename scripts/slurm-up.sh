#!/usr/bin/env bash
# Installs (if needed) and starts a Slurm on this machine, for the cluster tests
# (tests/cluster_*.rs) and CI. Idempotent: when the cluster already answers `sinfo` with
# every node usable, it only says so; a node whose slurmd died is started again.
#
# Debian 12's slurm-wlm 22.05 + munge + Open MPI 4.1 (PMIx), configured without cgroups
# or systemd (see the notes in shared/spec/slurm-single-node.md). Everything Slurm
# writes lives under $EDP_SLURM_DIR (default /var/tmp/edp-slurm); the configuration is
# /etc/slurm/slurm.conf because every Slurm client reads it from there.
#
# One node (the default): slurmctld and slurmd talk over 127.0.0.1 only.
# --nodes N (N >= 2): N slurmd, each in its own network and UTS namespace (`ip netns`
# edp-n1..edp-nN, hostname = namespace name), on a bridge edp-br0 this script makes
# with the private subnet $EDP_SLURM_NET.0/24 (default 10.213.0): slurmctld (this
# namespace) at .1, node i at .(10+i). Nothing is routed or forwarded anywhere else.
# The nodes share this machine's file system (and munged's socket), as the nodes of a
# cluster share theirs; MPI between them goes over TCP on the bridge.
#
# Usage: scripts/slurm-up.sh [--nodes N]   start (install first if packages are missing);
#                                          without --nodes, the shape last started here
#        scripts/slurm-up.sh --lose-node NAME
#                                          kill -9 every process in node NAME's network
#                                          namespace (its slurmd, job steps and ranks):
#                                          a node lost mid-run. Start it again with
#                                          scripts/slurm-up.sh --nodes N.
#        scripts/slurm-up.sh --down        stop the daemons this script started (by
#                                          their recorded pids) and remove the
#                                          namespaces, links and bridge it made
# Exit: 0 Slurm is up; 77 Slurm cannot be started here (not root, no apt); 1 failure;
# 2 usage.
set -euo pipefail

dir=${EDP_SLURM_DIR:-/var/tmp/edp-slurm}
conf=/etc/slurm/slurm.conf
marker="# written by edp scripts/slurm-up.sh"
net=${EDP_SLURM_NET:-10.213.0}
bridge=edp-br0

say() { echo "slurm-up: $*" >&2; }
cannot() { say "cannot start Slurm here: $*"; exit 77; }
usage() { say "$*"; sed -n '19,30p' "$0" >&2; exit 2; }

nodes=
action=up
while (($#)); do
  case "$1" in
  --down) action=down ;;
  --nodes)
    (($# >= 2)) || usage "--nodes needs a number"
    nodes=$2
    shift
    [[ "$nodes" =~ ^[1-9]$ ]] || usage "--nodes must be 1 to 9, not $nodes"
    ;;
  --lose-node)
    (($# >= 2)) || usage "--lose-node needs a node name"
    action=lose
    lost=$2
    shift
    ;;
  *) usage "unknown argument $1" ;;
  esac
  shift
done

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Our namespaces: edp-n<i>, as made below (never any other).
our_namespaces() { ip netns list 2>/dev/null | awk '$1 ~ /^edp-n[1-9]$/ {print $1}'; }

stop() {
  # Only the daemons whose pids this script recorded, never by name.
  local f pid
  for f in "$dir"/slurmd*.pid "$dir/slurmctld.pid"; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    if alive "$f"; then kill "$pid" && say "stopped $(basename "$f" .pid) (pid $pid)"; fi
    rm -f "$f"
  done
}

# Everything still running in a node's namespace (job steps, ranks) after its slurmd.
kill_namespace() {
  local ns=$1 pids
  pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
  # shellcheck disable=SC2086 # one pid per word
  [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
}

remove_network() {
  local ns
  for ns in $(our_namespaces); do
    kill_namespace "$ns"
    ip netns del "$ns" && say "removed namespace $ns"
    rm -rf "/etc/netns/$ns"
  done
  # A veth goes with its namespace; the bridge is ours by name.
  ip link show "$bridge" >/dev/null 2>&1 && ip link del "$bridge" && say "removed bridge $bridge"
  return 0
}

case "$action" in
down)
  stop
  remove_network
  if [ -f "$dir/munged.started" ] && alive /run/munge/munged.pid; then
    kill "$(cat /run/munge/munged.pid)" && say "stopped munged"
  fi
  rm -f "$dir/munged.started"
  exit 0
  ;;
lose)
  [[ "$lost" =~ ^edp-n[1-9]$ ]] && ip netns list | grep -qw "$lost" || usage "no node namespace $lost"
  kill_namespace "$lost"
  rm -f "$dir/slurmd-$lost.pid"
  say "node $lost lost: every process in its namespace killed"
  exit 0
  ;;
esac

# Without --nodes, a running cluster of any shape will do (the tests of one node run on
# two as well); if none is up, one node is started.
if [ -z "$nodes" ] && [ -f "$conf" ] && grep -qF "$marker" "$conf"; then
  nodes=$(sed -n 's/.*(--nodes \([0-9]*\)).*/\1/p' "$conf" | head -n1)
fi
nodes=${nodes:-1}

# The node names this mode has.
if ((nodes == 1)); then
  names=$(hostname -s)
else
  names=$(seq -f 'edp-n%g' 1 "$nodes" | tr '\n' ' ')
fi

# Up when sinfo lists exactly these nodes, each in a state in which jobs can run.
cluster_up() {
  command -v sinfo >/dev/null 2>&1 || return 1
  local listed want
  listed=$(timeout 10 sinfo -N -h -o '%N %T' 2>/dev/null | sort -u) || return 1
  want=$(for n in $names; do echo "$n"; done | sort)
  [ "$(awk '{print $1}' <<<"$listed")" = "$want" ] || return 1
  ! awk '{print $2}' <<<"$listed" | grep -qvE '^(idle|mixed|allocated|completing)'
}
describe() { sinfo -N -h -o '%N %T %c cpus' | tr '\n' ';' | sed 's/;$//; s/;/; /g'; }

if cluster_up; then
  say "Slurm already up ($(describe))"
  exit 0
fi

[ "$(id -u)" -eq 0 ] || cannot "not root (slurmd must run as root to start jobs)"

# Open MPI (which brings libpmix2) must be installed before slurmd starts, or its PMIx
# plugin does not load and `srun --mpi=pmix` hangs. iproute2: the namespaces.
packages=(munge slurmctld slurmd slurm-client openmpi-bin libopenmpi-dev iproute2)
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

mkdir -p "$dir/state" "$dir/spool" /etc/slurm

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
  touch "$dir/munged.started"
  say "munged started"
fi

# Configuration: never overwrite a slurm.conf that someone else wrote.
if [ -f "$conf" ] && ! grep -qF "$marker" "$conf"; then
  cannot "$conf exists and was not written by this script; refusing to replace it"
fi
host=$(hostname -s)
# slurmd -C prints this machine's NodeName line; keep its CPU layout (every node of a
# multi-node cluster has the whole machine's, so "more ranks per node" can be asked),
# and leave some memory to the system (RealMemory a little below what it reports).
node=$(slurmd -C | head -n1)
mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
layout=$(grep -o 'CPUs=[0-9]* Boards=[0-9]* SocketsPerBoard=[0-9]* CoresPerSocket=[0-9]* ThreadsPerCore=[0-9]*' <<<"$node")
if ((nodes == 1)); then
  ctld_addr=127.0.0.1
  node_lines="NodeName=$host NodeAddr=127.0.0.1 $layout RealMemory=$((mem * 9 / 10)) State=UNKNOWN"
  partition_nodes=$host
  # shellcheck disable=SC2016 # written as is into slurm.conf
  per_node='SlurmdSpoolDir=DIR/spool
SlurmdPidFile=DIR/slurmd.pid
SlurmdLogFile=DIR/slurmd.log'
  timeouts=
else
  ctld_addr=$net.1
  node_lines=
  for i in $(seq "$nodes"); do
    node_lines+="NodeName=edp-n$i NodeAddr=$net.$((10 + i)) $layout RealMemory=$((mem * 9 / 10 / nodes)) State=UNKNOWN"$'\n'
  done
  partition_nodes=edp-n[1-$nodes]
  # Several slurmd on one machine: each its own spool, pid and log (%n = node name).
  per_node='SlurmdSpoolDir=DIR/spool/%n
SlurmdPidFile=DIR/slurmd-%n.pid
SlurmdLogFile=DIR/slurmd-%n.log'
  # A lost node is noticed in seconds, not the default 5 minutes, and the steps left
  # on the other nodes are killed 10 s after their SIGTERM.
  timeouts='SlurmdTimeout=10
KillWait=10'
fi
tmp=$(mktemp "$conf.XXXXXX")
cat >"$tmp" <<EOF
$marker (--nodes $nodes)
ClusterName=edptest
SlurmctldHost=$host($ctld_addr)
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
SlurmctldPidFile=$dir/slurmctld.pid
SlurmctldLogFile=$dir/slurmctld.log
${per_node//DIR/$dir}
$timeouts
$node_lines
PartitionName=debug Nodes=$partition_nodes Default=YES MaxTime=INFINITE State=UP
EOF
# Another shape than the running cluster's: stop it and start again with the new one.
if [ -f "$conf" ] && ! cmp -s "$tmp" "$conf"; then
  stop
  ((nodes > 1)) || remove_network
fi
mv "$tmp" "$conf"
chmod 0644 "$conf"

# The nodes' network: a bridge with slurmctld's address, one veth per node namespace.
if ((nodes > 1)); then
  # The subnet must be ours alone: refuse when something else on this machine routes it.
  if ip -4 route show "$net.0/24" | grep -qv "dev $bridge"; then
    cannot "$net.0/24 is already in use on this machine; set EDP_SLURM_NET to a free x.y.z"
  fi
  if ! ip link show "$bridge" >/dev/null 2>&1; then
    ip link add "$bridge" type bridge
    ip addr add "$net.1/24" dev "$bridge"
    ip link set "$bridge" up
    say "made bridge $bridge ($net.1/24)"
  fi
  hosts="127.0.0.1 localhost
$net.1 $host"
  for i in $(seq "$nodes"); do hosts+=$'\n'"$net.$((10 + i)) edp-n$i"; done
  for i in $(seq "$nodes"); do
    ns=edp-n$i
    if ! ip netns list | grep -qw "$ns"; then
      ip netns add "$ns"
      ip link add "$ns-h" type veth peer name eth0 netns "$ns"
      ip link set "$ns-h" master "$bridge"
      ip link set "$ns-h" up
      ip -n "$ns" addr add "$net.$((10 + i))/24" dev eth0
      ip -n "$ns" link set eth0 up
      ip -n "$ns" link set lo up
      say "made node namespace $ns ($net.$((10 + i)))"
    fi
    # Bound over /etc/hosts for the node's slurmd and everything it starts.
    mkdir -p "/etc/netns/$ns"
    echo "$hosts" >"/etc/netns/$ns/hosts"
  done
fi

# Start what is not running. -D keeps them in the foreground of their own session;
# their output goes to files so no caller waits on an inherited pipe.
start() {
  local name=$1
  shift
  alive "$dir/$name.pid" && return 0
  setsid "$@" >"$dir/$name.out" 2>&1 </dev/null &
  echo $! >"$dir/$name.pid"
  say "started $name (pid $!)"
}
# -c: a test cluster starts empty; jobs of a killed earlier session are not recovered.
if ! alive "$dir/slurmctld.pid"; then
  start slurmctld slurmctld -D -c
  for _ in $(seq 100); do
    timeout 5 scontrol ping 2>/dev/null | grep -q UP && break
    sleep 0.2
  done
fi
if ((nodes == 1)); then
  start slurmd slurmd -D
else
  for i in $(seq "$nodes"); do
    # In the node's network namespace (nsenter, not `ip netns exec`, which mounts a
    # /sys without the cgroup tree slurmd 22.05 insists on), in a UTS namespace of its
    # own named after it, and a mount namespace (host mounts still propagate in) that
    # shows the nodes' /etc/hosts and a /tmp of the node's own, as a real node has
    # (PMIx makes per-step directories there, by the same name on every node); exec
    # all the way, so the recorded pid is slurmd's.
    mkdir -p "$dir/spool/edp-n$i" "$dir/tmp/edp-n$i"
    chmod 1777 "$dir/tmp/edp-n$i"
    start "slurmd-edp-n$i" nsenter --net="/run/netns/edp-n$i" unshare --uts --mount --propagation slave \
      sh -c 'mount --bind "/etc/netns/$0/hosts" /etc/hosts && mount --bind "$1" /tmp && hostname "$0" &&
        exec slurmd -D -N "$0"' "edp-n$i" "$dir/tmp/edp-n$i"
  done
fi

for _ in $(seq 300); do
  for f in "$dir"/slurmd*.pid "$dir/slurmctld.pid"; do
    [ ! -f "$f" ] || alive "$f" || { say "$(basename "$f" .pid) exited"; break 2; }
  done
  if cluster_up; then
    say "Slurm up ($(describe))"
    exit 0
  fi
  sleep 0.2
done
say "the nodes did not come up ($(describe 2>&1)); last lines of the logs:"
tail -n 20 "$dir"/*.log "$dir"/*.out >&2 || true
exit 1
