#!/usr/bin/env bash
# Starts an S3-compatible server on 127.0.0.1 for the tests (moto's server mode, from
# PyPI), idempotently: an already running one on the port is reused. Prints the endpoint
# URL on stdout. `scripts/s3-up.sh --stop` stops the server this script started.
# Env: EDP_TEST_S3_PORT (default 5057).
set -euo pipefail
port="${EDP_TEST_S3_PORT:-5057}"
endpoint="http://127.0.0.1:${port}"
state="${TMPDIR:-/tmp}/edp-moto-${port}"
py="${PYTHON:-python3}"

is_s3() {
  # An S3 server answers ListBuckets (unsigned: moto does not check signatures); any
  # other server on the port does not count.
  "$py" - "$endpoint" <<'PY' >/dev/null 2>&1
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1] + "/", timeout=2) as r:
    sys.exit(0 if r.status == 200 and b"ListAllMyBucketsResult" in r.read() else 1)
PY
}

if [ "${1:-}" = "--stop" ]; then
  if [ -f "$state.pid" ]; then
    pid="$(cat "$state.pid")"
    # Only the process this script started, and only if it is still moto.
    if grep -qs moto "/proc/$pid/cmdline"; then kill "$pid"; fi
    rm -f "$state.pid"
  fi
  exit 0
fi

if is_s3; then echo "$endpoint"; exit 0; fi

if ! "$py" -c "import moto.server, flask, flask_cors" >/dev/null 2>&1; then
  echo "s3-up: installing moto[server] from PyPI" >&2
  "$py" -m pip install --quiet --disable-pip-version-check 'moto[server]' >&2
fi

nohup "$py" -m moto.server -H 127.0.0.1 -p "$port" >"$state.log" 2>&1 &
echo $! >"$state.pid"
for _ in $(seq 1 100); do
  if is_s3; then echo "$endpoint"; exit 0; fi
  if ! kill -0 "$(cat "$state.pid")" 2>/dev/null; then break; fi
  sleep 0.2
done
echo "s3-up: moto did not start on $endpoint; its log ($state.log):" >&2
tail -n 20 "$state.log" >&2 || true
exit 1
