"""`app.py` as `make run` starts it, in its own process, for the tests that need a real server (or two)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from assistant.settings import PROJECT_ROOT
from benchmarks.serve import healthz_answers, wait_until_ready


def data_dir_with_models(data_dir: Path, models_dir: Path) -> Path:
    """A data directory whose models were trained already, as `make run` finds one after `make index`: the server
    then starts in seconds."""
    shutil.copytree(models_dir, data_dir / models_dir.name)
    return data_dir


def start_app(data_dir: Path, database: Path, port: int, knowledge_dir: Path, **env: str) -> subprocess.Popen:
    """The server with the hashing embedder (what these tests check does not depend on meaning) and rate limits
    off unless `env` says otherwise; returns once /healthz answers. `knowledge_dir` is the knowledge the models in
    `data_dir` learned from: with any other the server would train its own first."""
    environment = {**os.environ, "CARE_DATA_DIR": str(data_dir), "CARE_KNOWLEDGE_DIR": str(knowledge_dir),
                   "CARE_DATABASE_URL": f"sqlite:///{database}",
                   "CARE_EMBEDDER": "hashing", "CARE_RATE_LIMITS__ENABLED": "false", "HOST": "127.0.0.1",
                   "PORT": str(port), "GRADIO_TEMP_DIR": str(database.parent), **env}
    process = subprocess.Popen([sys.executable, "app.py"], cwd=PROJECT_ROOT, env=environment,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until_ready(process, healthz_answers(f"http://127.0.0.1:{port}"), limit_s=180)
    return process
