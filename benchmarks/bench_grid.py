"""What the plugin costs per case besides compute, as the grid grows; and history at scale.

    python benchmarks/bench_grid.py [--sizes 10 100 1000] [--runs 100] [--history-cases 1000]

1. Grids of 10, 100 and 1000 cases on a tiny random Llama (two layers, width 32, a byte-level
   vocabulary of 258 tokens, so compute is milliseconds a case): 1 dense case plus magnitude pruning at 0.1 ... 0.9 under as many
   method names as needed, one 2-fact probe. Each grid runs through pytest in a fresh process
   with no result cache, baselines updated, the history recorded and an HTML report written:
   everything a real session does. Per-case overhead = (pytest's session time - the cases'
   own compute seconds, summed from the results file) / cases. The controller's peak memory
   is the process's maximum resident set. Target: overhead at 1000 cases <= 1.2x that at 10.
2. History at scale: a SQLite history of ``--runs`` runs x ``--history-cases`` cases
   (synthetic records, written as sessions write them), then ``pytest-knowledge history``
   and an HTML report with history over it, timed.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WRAPPER = ("import resource, sys, pytest; code = pytest.main(sys.argv[1:]); "
           "print('MAXRSS_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)")


def save_byte_llama(folder: Path) -> None:
    """A two-layer Llama with a byte-level tokenizer built offline: the LM head is 258 wide, not 49152."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    core = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="</s>")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def grid_suite(source: Path, cases: int) -> str:
    methods = max(1, round((cases - 1) / 9))
    lines = ["name: grid", "models:", f"  - {{name: tiny, source: '{source}'}}", "methods:"]
    lines += [f"  - {{name: prune{i:03d}, method: magnitude}}" for i in range(methods)]
    lines += ["ratios: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]", "benchmarks:",
              "  - {name: caps, benchmark: facts, limit: 2}", "tolerance: {default: {abs: 1.0}}"]
    return "\n".join(lines) + "\n"


def run_grid(work: Path, source: Path, cases: int) -> dict[str, float]:
    folder = work / f"grid{cases}"
    folder.mkdir()
    (folder / "suite.yaml").write_text(grid_suite(source, cases))
    args = ["--knowledge-suite=suite.yaml", "--knowledge-update-baselines", "--knowledge-no-cache",
            "--knowledge-results=results.json", "--knowledge-report=report.html",
            f"--knowledge-history={folder / 'history.db'}", "-q", "-p", "no:cacheprovider"]
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", WRAPPER, *args], cwd=folder, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if run.returncode != 0:
        raise SystemExit(run.stdout[-3000:] + run.stderr[-3000:])
    session = float(re.search(r"passed in ([0-9.]+)s", run.stdout).group(1))
    records = json.loads((folder / "results.json").read_text())["records"]
    compute = sum(r["seconds"] for r in records)
    return {"cases": len(records), "wall": wall, "session": session, "compute": compute,
            "overhead": (session - compute) / len(records),
            "rss_mib": int(re.search(r"MAXRSS_KIB (\d+)", run.stdout).group(1)) / 1024}


def history_at_scale(work: Path, runs: int, cases: int) -> tuple[float, float, float]:
    from pytest_knowledge.gate.record import Record
    from pytest_knowledge.reports.files import write_report
    from pytest_knowledge.stores.history import HistoryStore, RunMeta

    path = work / "history-scale.db"
    store = HistoryStore(f"sqlite:///{path}")
    started = time.perf_counter()
    for run in range(runs):
        records = [Record(suite="grid", case_id=f"tiny-prune{c // 9:03d}-0.{c % 9 + 1}0-caps", model="tiny",
                          method=f"prune{c // 9:03d}", ratio=(c % 9 + 1) / 10, benchmark="caps", metric="p_at_1",
                          higher_is_better=True, n=140, dense=0.4, baseline=0.35, current=0.35 - 0.0001 * run,
                          delta=-0.0001 * run, retention=0.87, status="pass", message="", method_report="",
                          seconds=0.01, entry=None) for c in range(cases)]
        store.record_run(RunMeta(suites=("grid",), device="cpu"), records, exit_status=0)
    filled = time.perf_counter() - started
    started = time.perf_counter()
    cli = subprocess.run([sys.executable, "-m", "pytest_knowledge.cli", "--history", str(path), "history"],
                         capture_output=True, text=True)
    history_s = time.perf_counter() - started
    if cli.returncode not in (0, 1):
        raise SystemExit(cli.stderr[-2000:])
    started = time.perf_counter()
    write_report(work / "history-scale.html", store.run_records(store.resolve("latest")), store)
    report_s = time.perf_counter() - started
    store.close()
    return filled, history_s, report_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--history-cases", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = work / "byte-llama"
        save_byte_llama(source)
        rows = [run_grid(work, source, size) for size in args.sizes]
        print("1. per-case overhead besides compute (collection, scheduling, judging, baselines, history, report)")
        print(f"   {'cases':>6} {'session s':>10} {'compute s':>10} {'overhead ms/case':>17} {'peak RSS MiB':>13}")
        for row in rows:
            print(f"   {row['cases']:>6} {row['session']:>10.1f} {row['compute']:>10.1f} "
                  f"{row['overhead'] * 1000:>17.1f} {row['rss_mib']:>13.0f}")
        print(f"   overhead per case at {rows[-1]['cases']} cases is {rows[-1]['overhead'] / rows[0]['overhead']:.2f}x "
              f"that at {rows[0]['cases']} (target <= 1.2x)")
        filled, history_s, report_s = history_at_scale(work, args.runs, args.history_cases)
        print(f"2. history of {args.runs} runs x {args.history_cases} cases (written in {filled:.0f} s): "
              f"`pytest-knowledge history` {history_s:.1f} s, HTML report with history {report_s:.1f} s")


if __name__ == "__main__":
    main()
