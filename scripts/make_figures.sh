#!/usr/bin/env bash
# Regenerate docs/figures from the quickstart, speech and digits graphs: plan pictures (SVG, PNG, Mermaid,
# DOT), a real run of each (about 3 minutes on 2 CPU cores), its run picture, HTML report, Chrome
# trace and a screenshot of the report in headless Chromium. Usage: scripts/make_figures.sh [GRAPH...]
set -euo pipefail
cd "$(dirname "$0")/.."
out=docs/figures
runs=$(mktemp -d)
mkdir -p "$out"
graphs=("$@")
[ ${#graphs[@]} -eq 0 ] && graphs=(quickstart speech digits)
for g in "${graphs[@]}"; do
  for fmt in svg png mmd dot; do taskgraph viz "graphs/$g.yaml" -o "$out/$g.$fmt"; done
  taskgraph run "graphs/$g.yaml" --run-dir "$runs" --no-cache --plain --num-cpus 2 | tee "$runs/$g.log"
  run=$(tail -n 1 "$runs/$g.log" | sed 's/.*run directory: //')
  taskgraph viz "$run" -o "$out/$g-run.png"
  taskgraph viz "$run" -o "$out/$g-run.svg"
  taskgraph viz "$run" --format ascii > "$out/$g-run.txt"
  taskgraph report "$run" -o "$out/$g-report.html"
  cp "$run/trace.json" "$out/$g-trace.json"
  python3 scripts/screenshot.py "$out/$g-report.html" "$out/$g-report.png"
done
