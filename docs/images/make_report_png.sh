#!/usr/bin/env bash
# Regenerates docs/images/report.png: the HTML report of a run of the default suite
# (suites/default.yaml), rendered by headless Chromium. Needs the project's .venv and
# chromium (Debian: apt-get install chromium). Unchanged cases come from the result
# cache in .knowledge/cache, so a rerun takes seconds.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$root/suites" "$root/baselines" "$work/"   # a clean folder: the report's history is this run only
export PYTEST_KNOWLEDGE_FIXTURES=${PYTEST_KNOWLEDGE_FIXTURES:-$root/.knowledge/fixtures}
cd "$work"
"$root/.venv/bin/pytest" -q -p no:cacheprovider --knowledge-suite=suites/default.yaml \
    --knowledge-cache="$root/.knowledge/cache" --knowledge-report=report.html >/dev/null
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome)
sandbox=()
[ "$(id -u)" = 0 ] && sandbox=(--no-sandbox)   # Chromium's sandbox refuses root
HOME="$work" "$browser" --headless --disable-gpu --disable-dev-shm-usage --hide-scrollbars "${sandbox[@]}" \
    --window-size=1280,1500 --screenshot="$work/shot.png" "file://$work/report.html" >/dev/null 2>&1
"$root/.venv/bin/python" - "$work/shot.png" "$root/docs/images/report.png" <<'PY'
import sys
from PIL import Image

shot = Image.open(sys.argv[1]).convert("RGB")
small = shot.resize((shot.width * 3 // 4, shot.height * 3 // 4), Image.LANCZOS)
small.quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(sys.argv[2], optimize=True)
PY
ls -l "$root/docs/images/report.png"
