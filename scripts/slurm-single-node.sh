#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine, to run the pipeline through
# `--profile profiles/slurm` (tests/test_slurm.py starts it). Controller and compute node on
# 127.0.0.1; accounting through slurmdbd on MariaDB, since the Snakemake executor learns job
# states from `sacct`. Two partitions on the one node, as a cluster has one per device kind:
# `cpu` and `gpu` (a gpu GRES is declared so that cuda jobs are scheduled as on a GPU node; on a
# machine without a GPU their cells then report "no CUDA device", as anywhere else).
#
#   scripts/slurm-single-node.sh install   # Debian's packages (root)
#   scripts/slurm-single-node.sh start     # configure and start munge, MariaDB, slurmdbd,
#                                          # slurmctld, slurmd; wait until the node is idle
#   scripts/slurm-single-node.sh stop
#
# Root only: it writes /etc/slurm (where srun inside a job looks; SLURM_CONF alone does not
# reach the job steps) and starts the daemons as root.
set -euo pipefail

CLUSTER=deploybench
NODE=$(hostname -s)
LOGS=/var/log/slurm
PACKAGES=(slurmctld slurmd slurmdbd munge mariadb-server)

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "slurm-single-node: run as root (it configures /etc/slurm and starts daemons)" >&2
    exit 2
  fi
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local seconds=$1 what=$2
  shift 2
  for _ in $(seq "$((seconds * 4))"); do
    if "$@" > /dev/null 2>&1; then return 0; fi
    sleep 0.25
  done
  echo "slurm-single-node: $what did not come up in ${seconds}s; logs in $LOGS" >&2
  exit 1
}

install() {
  need_root
  if command -v slurmctld > /dev/null && command -v slurmdbd > /dev/null \
    && command -v mariadbd > /dev/null && command -v munged > /dev/null; then
    return 0
  fi
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${PACKAGES[@]}"
}

write_config() {
  local memory cpus
  cpus=$(nproc)
  # Leave the operating system 1 GiB; jobs ask for memory (mem_mb) within the rest.
  memory=$(awk '/MemTotal/ {print int($2 / 1024) - 1024}' /proc/meminfo)
  mkdir -p /etc/slurm "$LOGS" /var/spool/slurmctld /var/spool/slurmd
  cat > /etc/slurm/slurm.conf << EOF
# Written by scripts/slurm-single-node.sh: a single-node test cluster.
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
JobAcctGatherType=jobacct_gather/none
# sacct shows each job's comment: the executor writes the rule and wildcards there.
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none
# A job over its time limit or cancelled is killed within seconds.
KillWait=5
OverTimeLimit=0
MinJobAge=600
GresTypes=gpu
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$NODE MaxTime=INFINITE State=UP
EOF
  # A count-only gpu GRES registers as 0; a device file makes it 1 (no GPU behind it here).
  cat > /etc/slurm/gres.conf << EOF
NodeName=$NODE Name=gpu File=/dev/null
EOF
  cat > /etc/slurm/slurmdbd.conf << EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$CLUSTER
StorageLoc=slurm_acct_db
LogFile=$LOGS/slurmdbd.log
PidFile=/run/slurmdbd.pid
EOF
  chmod 600 /etc/slurm/slurmdbd.conf
}

start() {
  need_root
  if sinfo -h -o %T 2> /dev/null | grep -qx idle; then
    echo "slurm-single-node: already running"
    return 0
  fi
  write_config
  mkdir -p /run/munge && chown munge:munge /run/munge
  pgrep -x munged > /dev/null || runuser -u munge -- /usr/sbin/munged
  wait_for 10 munge munge -n
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
  if ! pgrep -x mariadbd > /dev/null; then
    runuser -u mysql -- /usr/sbin/mariadbd --bind-address=127.0.0.1 \
      > "$LOGS/mariadb.log" 2>&1 &
  fi
  wait_for 60 MariaDB mariadb -e "SELECT 1"
  mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$CLUSTER';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
  pgrep -x slurmdbd > /dev/null || slurmdbd
  wait_for 60 slurmdbd sacctmgr -n list cluster
  sacctmgr -i -Q add cluster "$CLUSTER" > /dev/null || true
  pgrep -x slurmctld > /dev/null || slurmctld -i
  pgrep -x slurmd > /dev/null || slurmd
  # A node drained by an earlier registration (its state is kept) comes back.
  wait_for 30 "the node's registration" bash -c "sinfo -h -o %T | grep -qvx unknown"
  scontrol update nodename="$NODE" state=resume 2> /dev/null || true
  wait_for 60 "the node" bash -c "sinfo -h -o %T | grep -qx idle"
  echo "slurm-single-node: $CLUSTER up: node $NODE, partitions cpu and gpu"
}

stop() {
  need_root
  scancel --quiet --user root 2> /dev/null || true
  for daemon in slurmd slurmctld slurmdbd; do
    pkill -x "$daemon" 2> /dev/null || true
  done
  mariadb-admin shutdown 2> /dev/null || true
  pkill -x munged 2> /dev/null || true
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *)
    echo "usage: $0 install|start|stop" >&2
    exit 2
    ;;
esac
