#!/usr/bin/env bash
# Installs what the local clusters need from Debian's archive, if it is missing:
# containerd and runc (the node runtime), the CNI plugins, iptables and nftables
# (kube-proxy and the agent), conntrack, iproute2/util-linux (network namespaces), and the
# real software the e2e suite runs: PostgreSQL 15 and MariaDB (target images, their clients),
# curl and Node.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

# moto's server, a real SQS-compatible server, for the queue splitting tests: found on PATH
# or in a pyenv or user install, else installed with pip; linked as bin/moto_server, which
# the tests and the rig run.
moto=$(command -v moto_server || ls /root/.pyenv/versions/*/bin/moto_server "$HOME"/.local/bin/moto_server 2>/dev/null | head -n 1 || true)
if [ -z "$moto" ]; then
  echo "install-deps: installing moto's server (pip install 'moto[server]')"
  if ! python3 -m pip install --quiet --user 'moto[server]' >&2; then
    echo "install-deps: moto's server is missing and pip could not install it; install 'moto[server]' (Python) so that moto_server is on PATH" >&2
    exit 1
  fi
  moto="$HOME/.local/bin/moto_server"
fi
mkdir -p "$root/bin"
ln -sfn "$moto" "$root/bin/moto_server"

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
