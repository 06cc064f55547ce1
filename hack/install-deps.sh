#!/usr/bin/env bash
# Installs what the local clusters need from Debian's archive, if it is missing:
# containerd and runc (the node runtime), the CNI plugins, iptables and nftables
# (kube-proxy and the agent), conntrack, iproute2/util-linux (network namespaces), and the
# real software the e2e suite runs: PostgreSQL 15 and MariaDB (target images, their clients),
# curl and Node.
set -euo pipefail
need=()
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
command -v iptables >/dev/null || need+=(iptables)
command -v nft >/dev/null || need+=(nftables)
command -v conntrack >/dev/null || need+=(conntrack)
command -v ip >/dev/null || need+=(iproute2)
command -v nsenter >/dev/null || need+=(util-linux)
[ -x /usr/lib/postgresql/15/bin/postgres ] || need+=(postgresql-15)
command -v psql >/dev/null || need+=(postgresql-client-15)
[ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
command -v mariadb >/dev/null || need+=(mariadb-client)
command -v curl >/dev/null || need+=(curl)
command -v node >/dev/null || need+=(nodejs)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing ${need[*]}; run as root (or: sudo apt-get install ${need[*]})" >&2
  exit 1
fi
echo "install-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# RUNLEVEL=1: the packages' scripts start no service (PostgreSQL's cluster, say).
RUNLEVEL=1 apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# On machines with systemd the package also starts a system containerd; the rig never
# uses it: every rig node runs its own containerd with its own socket and state.
