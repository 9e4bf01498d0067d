#!/usr/bin/env bash
# Load test of `ganforge serve` (not run in CI): wrk, 32 connections for 30 s, each request a
# new seed, against a small model (the default mnist preset, 32x32, trained briefly).
# Prints wrk's latency distribution and errors, and the server's resident memory before and after.
# Needs wrk (apt-get install wrk). Usage: bash bench/load.sh [DURATION [CONNECTIONS]]
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-30s}"
connections="${2:-32}"
cargo build --release -p ganforge-cli
bin=target/release/ganforge
work=$(mktemp -d)
run=$($bin train --steps 50 --out "$work" --set train.sample_every=50 --set train.checkpoint_every=50 2>/dev/null | tail -1)
addr=127.0.0.1:8099
$bin serve --run "$run" --addr "$addr" > /dev/null 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do curl -sf "http://$addr/api/model" > /dev/null && break; sleep 0.2; done
curl -sf "http://$addr/api/generate?seed=1" > /dev/null   # the first request loads nothing new, but warms up
rss() { awk '/VmRSS/ {print $2 " kB"}' /proc/$pid/status; }
echo "model: $(curl -s http://$addr/api/model)"
echo "resident memory before: $(rss)"
cat > "$work/seeds.lua" <<'LUA'
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/api/generate?seed=" .. math.random(0, 1000000000))
end
LUA
wrk -t2 -c"$connections" -d"$duration" --latency -s "$work/seeds.lua" "http://$addr"
echo "resident memory after: $(rss)"
