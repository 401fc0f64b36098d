#!/usr/bin/env bash
# scripts/install-etcd.sh: make sure etcd (the server) is on PATH, for the
# etcd tier's tests (internal/etcdserver, remote/etcdlab, remote/etcdref).
#
#   - etcd already on PATH: nothing to do, exit 0.
#   - root, or sudo without a password: install Debian's etcd-server package
#     (3.4.x on Debian 12; etcd-client brings etcdctl, handy for poking at a
#     test's cluster) and stop the service the package may start, because the
#     tests start their own servers on free loopback ports.
#   - otherwise: print how to install it and exit 1.
#
# The tests never need the distro's service; leaving it stopped keeps ports
# 2379/2380 free and no server running that nobody asked for.
set -euo pipefail

if command -v etcd >/dev/null 2>&1; then
	echo "install-etcd.sh: $(command -v etcd) is already installed ($(etcd --version | head -n1))" >&2
	exit 0
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		SUDO="sudo -n"
	else
		cat >&2 <<'MSG'
install-etcd.sh: etcd is not on PATH, and this script can only install it as
root (or with sudo that needs no password). Install it yourself:

  Debian/Ubuntu:  sudo apt-get update && sudo apt-get install -y --no-install-recommends etcd-server etcd-client
                  sudo service etcd stop   # the tests start their own servers
  macOS:          brew install etcd
  other:          any etcd 3.4 or later on PATH (https://github.com/etcd-io/etcd/releases)

or skip the etcd tests with CONTEND_SKIP_ETCD=1 (CI never sets it).
MSG
		exit 1
	fi
fi

echo "install-etcd.sh: installing etcd-server with apt-get" >&2
$SUDO apt-get update
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends etcd-server etcd-client
# The package starts the distro's service where an init system runs it; the
# tests start their own servers, so leave none running.
$SUDO service etcd stop >/dev/null 2>&1 || true

if ! command -v etcd >/dev/null 2>&1; then
	echo "install-etcd.sh: apt-get finished but etcd is still not on PATH ($PATH)" >&2
	exit 1
fi
echo "install-etcd.sh: installed $(etcd --version | head -n1)" >&2
