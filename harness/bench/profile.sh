#!/bin/sh
# CPU profiles of our side of the suite, one per workload, with a core that keeps its function
# names (same -O3 --noAssert as the release build, plus --debug for the name section).
#   sh harness/bench/profile.sh [workloads, default c,d,d2,e,b] [outdir, default .cache/prof]
set -e
W=${1:-c,d,d2,e,b}; OUT=${2:-.cache/prof}
mkdir -p "$OUT"
npx asc assembly/index.ts -o "$OUT/named.wasm" --config node_modules/@assemblyscript/wasi-shim/asconfig.json \
  --runtime stub --importMemory --initialMemory 256 --exportStart "" -O3 --noAssert --debug
npx esbuild harness/bench/profile-ours.ts --bundle --platform=node --format=esm --target=node20 \
  --outfile="$OUT/profile-ours.mjs" --log-level=warning
for w in $(echo "$W" | tr , ' '); do
  rm -rf "$OUT/$w"
  node --cpu-prof --cpu-prof-dir="$OUT/$w" "$OUT/profile-ours.mjs" "$w" "$OUT/named.wasm" 2>/dev/null | tail -1
  node harness/bench/profile-top.mjs "$OUT"/$w/*.cpuprofile 16 --under=measureRuns
done
