#!/usr/bin/env bash
# Regenerates docs/images/report.png (the default suite) or docs/images/SUITE-report.png
# (`make_report_png.sh SUITE`): the HTML report of a run of suites/SUITE.yaml, rendered by
# headless Chromium. Needs the project's .venv and
# chromium (Debian: apt-get install chromium). Unchanged cases come from the result
# cache in .knowledge/cache, so a rerun takes seconds.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
suite=${1:-default}
image=$root/docs/images/$([ "$suite" = default ] && echo report.png || echo "$suite-report.png")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$root/suites" "$root/baselines" "$work/"   # a clean folder: the report's history is this run only
cd "$work"
"$root/.venv/bin/pytest" -q -p no:cacheprovider --knowledge-suite="suites/$suite.yaml" \
    --knowledge-cache="$root/.knowledge/cache" --knowledge-report=report.html >/dev/null
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome)
sandbox=()
[ "$(id -u)" = 0 ] && sandbox=(--no-sandbox)   # Chromium's sandbox refuses root
HOME="$work" "$browser" --headless --disable-gpu --disable-dev-shm-usage --hide-scrollbars "${sandbox[@]}" \
    --window-size=1280,1500 --screenshot="$work/shot.png" "file://$work/report.html" >/dev/null 2>&1
"$root/.venv/bin/python" - "$work/shot.png" "$image" <<'PY'
import sys
from PIL import Image

shot = Image.open(sys.argv[1]).convert("RGB")
small = shot.resize((shot.width * 3 // 4, shot.height * 3 // 4), Image.LANCZOS)
small.quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(sys.argv[2], optimize=True)
PY
ls -l "$image"
