#!/usr/bin/env bash
# `make test`: unit tests, the e2e suite on the newest minor, the scale test, then the e2e suite
# on the oldest supported minor. That minor's Kubernetes shares no compile with the newest's
# (18 min cold on 2 cores), so it is built in the background, at the lowest CPU priority, while
# the first three run: they spend most of their time waiting on pods, and the build takes the
# idle CPU. A warm cache makes the build a no-op.
# Usage (from the Makefile): MAKE=make OLDEST=1.30.14 OLDEST_E2E_RUN= test/tools/test.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
make=${MAKE:-make}
: "${OLDEST:?OLDEST, the oldest supported Kubernetes release, is required}"

log=$(mktemp "${TMPDIR:-/tmp}/vault-injector-k8s-$OLDEST.XXXXXX")
# setsid: the build and its compilers form one process group, stopped together if a step fails.
KUBERNETES_VERSION=$OLDEST setsid nice -n 19 test/tools/build.sh k8s k8s-scheduler >"$log" 2>&1 &
bg=$!
trap 'kill -- -$bg 2>/dev/null || true' EXIT
echo "test: building Kubernetes $OLDEST in the background (log: $log)"

"$make" unit
"$make" e2e
"$make" scale

echo "test: waiting for the Kubernetes $OLDEST build"
if ! wait "$bg"; then
	cat "$log"
	echo "test: building Kubernetes $OLDEST failed (log above)" >&2
	exit 1
fi
trap - EXIT
cat "$log"
"$make" e2e KUBERNETES_VERSION="$OLDEST" E2E_RUN="${OLDEST_E2E_RUN:-}"
