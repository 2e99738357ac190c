#!/usr/bin/env bash
# Screenshots of the static site built from a results store, to look at after changing the pages.
#   benchmarks/screenshots.sh [RESULTS=results] [OUT=/tmp/evalkit-site]
# Writes $OUT/leaderboard.png and $OUT/model.png (1400x1000, like a laptop browser window).
# Needs Debian's chromium (apt-get install -y chromium); --virtual-time-budget lets plotly draw first.
set -euo pipefail
results="${1:-results}"
out="${2:-/tmp/evalkit-site}"
here="$(cd "$(dirname "$0")/.." && pwd)"
"$here/.venv/bin/evalkit" site --results "$results" --out "$out/site"
model_page="$(ls "$out"/site/models/*.html | head -1)"
shoot() {
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --virtual-time-budget=5000 \
    --window-size=1400,1000 --screenshot="$1" "file://$2" 2>/dev/null
}
shoot "$out/leaderboard.png" "$out/site/index.html"
shoot "$out/model.png" "$model_page"
echo "wrote $out/leaderboard.png and $out/model.png"
