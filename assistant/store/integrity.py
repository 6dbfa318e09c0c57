"""Is a SQLite database what it was? Checks before the first connection, and while serving.

SQLite forgives too much for a store of referrals: an empty file opens as a new database (every referral
and key gone), and a write-ahead log with damaged frames is silently cut at the first bad checksum, so
every commit after it vanishes. Neither is an error to SQLite, so both are looked for here, before SQLite
opens the file; `PRAGMA quick_check` covers the pages themselves.

The WAL format (https://www.sqlite.org/fileformat.html#the_write_ahead_log): a 32-byte header (magic,
version, page size, checkpoint sequence, two salts, a checksum), then frames of a 24-byte header (page
number, database size for a commit frame, the two salts, a cumulative checksum) and one page. Frames left
over from an earlier generation carry other salts and are ignored by SQLite, rightly; a frame with the
current salts after a checksum failure is a commit SQLite would drop.
"""

from __future__ import annotations

import sqlite3
import struct
from contextlib import closing
from pathlib import Path

WAL_HEADER = 32
FRAME_HEADER = 24
WAL_MAGIC = {0x377F0682: "<", 0x377F0683: ">"}  # the checksum's word order: little- or big-endian


class StoreDamaged(Exception):
    """The database is damaged or emptied: the service refuses to start, or reports not ready."""


def sqlite_damage(path: Path) -> str | None:
    """What is wrong with an SQLite database's files (a new one, not yet created, has nothing wrong)."""
    if (damage := damage_before_opening(path)) is not None or not path.exists():
        return damage
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
            problems = [row[0] for row in connection.execute("PRAGMA quick_check").fetchall()]
    except sqlite3.DatabaseError as error:
        return f"{path}: {error}"
    return None if problems == ["ok"] else f"{path}: {'; '.join(problems[:3])}"


def damage_before_opening(database: Path) -> str | None:
    """What is wrong with the files of an SQLite database nobody has open, or None."""
    if database.exists() and database.stat().st_size == 0:
        return (f"{database} is empty (0 bytes): a database existed here and lost its content; restore it from a "
                "backup, or delete the file to start an empty one")
    wal = database.with_name(database.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        return wal_damage(wal.read_bytes(), wal)
    return None


def wal_damage(data: bytes, wal: Path) -> str | None:
    if len(data) < WAL_HEADER:
        return f"{wal} is cut short ({len(data)} bytes, less than its header)"
    magic, _version, page_size, _sequence, _salt1, _salt2, check1, check2 = struct.unpack(">8I", data[:WAL_HEADER])
    if magic not in WAL_MAGIC:
        return f"{wal} does not start like a write-ahead log"
    order = WAL_MAGIC[magic]
    if (check1, check2) != checksum(data[:24], order, 0, 0):
        return f"{wal}: its header fails its checksum"
    frame_size = FRAME_HEADER + page_size
    frames = range(WAL_HEADER, len(data) - frame_size + 1, frame_size)
    salts = data[16:24]
    sums = (check1, check2)
    for offset in frames:
        header = data[offset:offset + FRAME_HEADER]
        if header[8:16] == salts:
            sums = checksum(header[:8] + data[offset + FRAME_HEADER:offset + frame_size], order, *sums)
            if sums == struct.unpack(">2I", header[16:24]):
                continue
        # The log ends here for SQLite: an earlier generation's frame, or a torn last write, is a clean end;
        # a frame of this generation further on means commits after a damaged frame.
        later = sum(1 for o in frames if o > offset and data[o + 8:o + 16] == salts)
        if later:
            return (f"{wal}: the frame at byte {offset} is damaged and {later} later frame(s) of the same log "
                    "follow it, commits SQLite would drop silently; restore the database from a backup")
        return None
    return None


def checksum(data: bytes, order: str, s0: int, s1: int) -> tuple[int, int]:
    """SQLite's WAL checksum: two running 32-bit sums over pairs of 32-bit words."""
    words = struct.unpack(f"{order}{len(data) // 4}I", data)
    for first, second in zip(words[::2], words[1::2], strict=True):
        s0 = (s0 + first + s1) & 0xFFFFFFFF
        s1 = (s1 + second + s0) & 0xFFFFFFFF
    return s0, s1
