#!/usr/bin/env bash
# scripts/install-redis.sh: make sure redis-server is on PATH, for the Redis
# tier's tests (impls/redis, internal/redisserver).
#
#   - redis-server already on PATH: nothing to do, exit 0.
#   - root, or sudo without a password: install Debian's redis-server package
#     (7.0.x on Debian 12) and stop the service the package starts, because
#     the tests start their own servers on free loopback ports.
#   - otherwise: print how to install it and exit 1.
#
# The tests never need the distro's service; leaving it stopped keeps port
# 6379 free and no server running that nobody asked for.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1; then
	echo "install-redis.sh: $(command -v redis-server) is already installed ($(redis-server --version | head -n1))" >&2
	exit 0
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		SUDO="sudo -n"
	else
		cat >&2 <<'MSG'
install-redis.sh: redis-server is not on PATH, and this script can only install
it as root (or with sudo that needs no password). Install it yourself:

  Debian/Ubuntu:  sudo apt-get update && sudo apt-get install -y --no-install-recommends redis-server
                  sudo service redis-server stop   # the tests start their own servers
  macOS:          brew install redis
  other:          any redis-server 6.2 or later on PATH

or skip the Redis tests with CONTEND_SKIP_REDIS=1 (CI never sets it).
MSG
		exit 1
	fi
fi

echo "install-redis.sh: installing redis-server with apt-get" >&2
$SUDO apt-get update
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server
# The package starts the distro's service where an init system runs it; the
# tests start their own servers, so leave none running.
$SUDO service redis-server stop >/dev/null 2>&1 || true

if ! command -v redis-server >/dev/null 2>&1; then
	echo "install-redis.sh: apt-get finished but redis-server is still not on PATH ($PATH)" >&2
	exit 1
fi
echo "install-redis.sh: installed $(redis-server --version | head -n1)" >&2
