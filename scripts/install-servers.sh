#!/usr/bin/env bash
# scripts/install-servers.sh: install every remote backend's server, for the
# remote tier's tests and benchmarks. The list of backends, their install
# scripts and the variables that skip them come from the registry
# (go run ./cmd/catalog -install), so that adding a backend needs no change
# here. A backend whose skip variable is 1 is not installed (CI never sets
# one); any install that fails fails this script.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}

list=$("$GO" run ./cmd/catalog -install)
status=0
while read -r script skip; do
	[ -n "$script" ] || continue
	if [ "${!skip:-}" = 1 ]; then
		echo "install-servers.sh: $skip=1: skipping $script" >&2
		continue
	fi
	"./$script" || status=1
done <<<"$list"
exit $status
