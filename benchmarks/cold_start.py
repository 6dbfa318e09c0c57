"""Cold start: process start to first answer, with the index built from scratch and reused.

Each run is a fresh interpreter, so imports, model load and index open are all counted.
Run: `python -m benchmarks.cold_start`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.results import write_results

RUNS = 3
FIRST_ANSWER = """
import json, time
started = time.perf_counter()
from assistant.build import build_assistant
from assistant.settings import Settings
import sys
assistant = build_assistant(Settings(data_dir=sys.argv[1]))
loaded = time.perf_counter()
assistant.reply(assistant.start(), "I'm 62 and my multiple myeloma relapsed twice")
stats = assistant.engine.index_stats
print(json.dumps({"import_and_load_s": loaded - started, "first_reply_s": time.perf_counter() - loaded,
                  "index_s": stats.seconds, "reused": stats.reused}))
"""


def one_run(data_dir: Path) -> dict:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", FIRST_ANSWER, str(data_dir)], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).parent.parent)
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    measured["process_to_first_answer_s"] = time.perf_counter() - started
    return measured


def main() -> None:
    rows = {"cold (index built)": [], "warm (index reused)": []}
    for _ in range(RUNS):
        data_dir = Path(tempfile.mkdtemp(prefix="bench-cold-"))
        try:
            rows["cold (index built)"].append(one_run(data_dir))
            rows["warm (index reused)"].append(one_run(data_dir))
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
    summary = {}
    for name, runs in rows.items():
        summary[name] = {key: round(sorted(r[key] for r in runs)[len(runs) // 2], 2)
                         for key in ("process_to_first_answer_s", "import_and_load_s", "index_s", "first_reply_s")}
    cold, warm = summary["cold (index built)"], summary["warm (index reused)"]
    summary["index build cold / reused"] = round(cold["index_s"] / max(warm["index_s"], 1e-6), 1)
    lines = ["| start | process to first answer (s) | import + load (s) | index open (s) | first reply (s) |",
             "| --- | --- | --- | --- | --- |"]
    for name in rows:
        r = summary[name]
        lines.append(f"| {name} | {r['process_to_first_answer_s']} | {r['import_and_load_s']} | {r['index_s']} | "
                     f"{r['first_reply_s']} |")
    lines.append(f"\nIndex build cold vs reused: {summary['index build cold / reused']}x (median of {RUNS} runs).")
    write_results("cold_start", "Cold start", summary, lines)


if __name__ == "__main__":
    main()
