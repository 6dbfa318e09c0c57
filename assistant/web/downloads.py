"""The referral summaries a user downloads from the page: written per conversation, kept for at most two hours.

They hold what the user wrote, so the privacy note promises they go: files older than an hour are deleted
by the hourly purge (so none lives past two hours), and deleting the conversation deletes its files at once,
the copies Gradio keeps in its own cache to serve them included.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from pathlib import Path

KEPT_S = 3600
CONVERSATION_ID = re.compile(r"[0-9a-f]{32}")
SUMMARY_NAMES = ("referral-summary.md", "referral-summary.json")


class Downloads:
    def __init__(self, folder: Path, gradio_cache: Path | None = None) -> None:
        self.folder = folder
        self.gradio_cache = gradio_cache if gradio_cache is not None else gradio_cache_folder()

    def write(self, conversation_id: str, markdown: str, summary_json: str) -> tuple[str, str]:
        """The two files of one preview, in a fresh folder under the conversation's own."""
        parent = self.conversation_folder(conversation_id)
        parent.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="preview-", dir=parent))
        files = [folder / name for name in SUMMARY_NAMES]
        files[0].write_text(markdown, encoding="utf-8")
        files[1].write_text(summary_json, encoding="utf-8")
        return str(files[0]), str(files[1])

    def forget(self, conversation_id: str) -> int:
        """Delete a conversation's files and Gradio's copies of them; returns how many files went."""
        parent = self.conversation_folder(conversation_id)
        contents = {path.read_bytes() for path in parent.rglob("referral-summary.*")} if parent.is_dir() else set()
        removed = len(list(parent.rglob("*.*"))) if parent.is_dir() else 0
        shutil.rmtree(parent, ignore_errors=True)
        for copy in self._gradio_copies():
            if copy.read_bytes() in contents:
                copy.unlink(missing_ok=True)
                removed += 1
        return removed

    def purge(self, older_than_s: float = KEPT_S) -> int:
        """Delete every summary file older than `older_than_s`, ours and Gradio's copies."""
        cutoff = time.time() - older_than_s
        old = [path for path in [*self.folder.rglob("referral-summary.*"), *self._gradio_copies()]
               if path.stat().st_mtime < cutoff]
        for path in old:
            path.unlink(missing_ok=True)
        for folder in sorted(self.folder.glob("*/*"), reverse=True) + sorted(self.folder.glob("*")):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        return len(old)

    def conversation_folder(self, conversation_id: str) -> Path:
        """A conversation id is 32 hex digits; anything else never becomes a path ("../" included)."""
        if not CONVERSATION_ID.fullmatch(conversation_id):
            raise ValueError("not a conversation id")
        return self.folder / conversation_id

    def _gradio_copies(self) -> list[Path]:
        if self.gradio_cache is None or not self.gradio_cache.is_dir():
            return []
        return [path for name in SUMMARY_NAMES for path in self.gradio_cache.rglob(name)]


def gradio_cache_folder() -> Path | None:
    """Where Gradio copies files it serves (`GRADIO_TEMP_DIR`, set by the app factory)."""
    folder = os.environ.get("GRADIO_TEMP_DIR")
    return Path(folder) if folder else None
