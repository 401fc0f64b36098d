#!/usr/bin/env bash
# scripts/install-zookeeper.sh: make sure ZooKeeper and a Java runtime are
# installed, for the ZooKeeper tier's tests (internal/zkserver, remote/zk*).
#
#   - java on PATH and /usr/share/java/zookeeper.jar present: nothing to do,
#     exit 0.
#   - root, or sudo without a password: install Debian's zookeeper package
#     (3.8.x on Debian 12; it depends on default-jre, OpenJDK 17, and on
#     libslf4j-java, whose slf4j-simple.jar the tests log with) and stop the
#     service if the package started one, because the tests start their own
#     servers on free loopback ports.
#   - otherwise: print how to install it and exit 1.
#
# The tests run the server from the package's jars
# (ZooKeeperServerMain / QuorumPeerMain); they never need the distro's
# service, and leaving it stopped keeps port 2181 free.
set -euo pipefail

JAR=/usr/share/java/zookeeper.jar
LOGGER=/usr/share/java/slf4j-simple.jar

installed() {
	command -v java >/dev/null 2>&1 && [ -r "$JAR" ] && [ -r "$LOGGER" ]
}

version() {
	dpkg-query -W -f='zookeeper ${Version}\n' zookeeper 2>/dev/null || echo "zookeeper (not from a Debian package)"
}

if installed; then
	echo "install-zookeeper.sh: $JAR and $(command -v java) are already installed ($(version))" >&2
	exit 0
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		SUDO="sudo -n"
	else
		cat >&2 <<MSG
install-zookeeper.sh: ZooKeeper is not installed (need java on PATH, $JAR
and $LOGGER), and this script can only install it as root (or with sudo that
needs no password). Install it yourself:

  Debian/Ubuntu:  sudo apt-get update && sudo apt-get install -y --no-install-recommends zookeeper
                  sudo service zookeeper stop   # the tests start their own servers

or skip the ZooKeeper tests with CONTEND_SKIP_ZOOKEEPER=1 (CI never sets it).
MSG
		exit 1
	fi
fi

echo "install-zookeeper.sh: installing zookeeper and a Java runtime with apt-get" >&2
$SUDO apt-get update
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends zookeeper
# Debian's package starts no daemon today; stop one if a future package
# version (or another distribution's) does.
$SUDO service zookeeper stop >/dev/null 2>&1 || true

if ! installed; then
	echo "install-zookeeper.sh: apt-get finished but java or $JAR or $LOGGER is still missing" >&2
	exit 1
fi
echo "install-zookeeper.sh: installed $(version) with $(java -version 2>&1 | head -n1)" >&2
