"""Turn latency against its floor, measured in one process.

The floor is one embedding of the same text with the same packaged model: every turn needs it,
so a turn can never be faster. We report `match` and a whole `reply` (template composer) as
p50/p95 and as ratios to the floor. Run: `python -m benchmarks.turn_latency`.
"""

from __future__ import annotations

import time

from assistant.build import build_assistant
from benchmarks.results import write_results
from evals.metrics import percentile

MESSAGES = [
    "I'm 62 and my multiple myeloma relapsed twice, I want CAR-T",
    "my 8 month old daughter has biliary atresia and needs a liver transplant",
    "I'm 45 with a glioma and want neurosurgery",
    "my 4 year old has beta thalassemia and needs transfusions",
    "I'm 58 with lung cancer, EGFR positive",
    "I'm 72 with cataracts in both eyes",
    "我爸爸68岁，多发性骨髓瘤复发了",
    "I'm 30 and my knee gives way after a football injury",
    "we want IVF after four years of trying",
    "I'm 31 with depression and anxiety",
]
ROUNDS = 5



def timed(function, text: str) -> float:
    started = time.perf_counter()
    function(text)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    assistant = build_assistant()
    engine = assistant.engine
    for text in MESSAGES:  # warm-up: first calls pay for lazy initialisation
        engine.match(text)
        assistant.reply(assistant.start(), text)
    floor, match, reply = [], [], []
    for _ in range(ROUNDS):
        for text in MESSAGES:
            floor.append(timed(lambda t: engine.embedder.embed([t]), text))
            match.append(timed(engine.match, text))
            reply.append(timed(lambda t: assistant.reply(assistant.start(), t), text))
    rows = {name: {"p50_ms": percentile(values, 0.5), "p95_ms": percentile(values, 0.95)}
            for name, values in (("embedding (floor)", floor), ("match", match), ("reply (template)", reply))}
    floor_p50 = rows["embedding (floor)"]["p50_ms"]
    for row in rows.values():
        row["ratio_to_floor_p50"] = round(row["p50_ms"] / floor_p50, 2)
    lines = ["| measure | p50 ms | p95 ms | p50 / floor |", "| --- | --- | --- | --- |"]
    lines += [f"| {name} | {r['p50_ms']} | {r['p95_ms']} | {r['ratio_to_floor_p50']}x |" for name, r in rows.items()]
    lines.append(f"\n{len(MESSAGES)} messages x {ROUNDS} rounds, {len(engine.kb.departments)} departments.")
    write_results("turn_latency", "Turn latency against one embedding", rows, lines)


if __name__ == "__main__":
    main()
