"""Read back what W&B wrote in offline mode: the records of a run's `.wandb` file.

wandb 0.31 ships no Python reader for its transaction log (the writer lives in its Go core), so
the framing is decoded here and each record parsed with wandb's own protobuf schema. The
framing is LevelDB's log format as wandb/sdk/internal/datastore.py (wandb <= 0.22) documents
it: a 7-byte file header (":W&B", 0xBEE1, version 0), then 32 KiB blocks of records, each
`crc32 (u32 LE) | length (u16 LE) | type (u8) | data`, where type is FULL (1), or FIRST (2),
MIDDLE (3), LAST (4) for a record split across blocks; a block tail under 7 bytes is zero padding.
"""

from __future__ import annotations

import json
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BLOCK, HEADER = 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> Iterator[Any]:
    """Every complete `wandb_internal_pb2.Record` in a .wandb file, in order (checksums
    verified)."""
    from wandb.proto import wandb_internal_pb2

    raw = path.read_bytes()
    assert struct.unpack("<4sHB", raw[:HEADER]) == (b":W&B", 0xBEE1, 0), f"{path}: not a log"
    pos, parts = HEADER, b""
    while pos + HEADER <= len(raw):
        left = BLOCK - pos % BLOCK
        if left < HEADER:
            pos += left
            continue
        crc, length, kind = struct.unpack("<IHB", raw[pos : pos + HEADER])
        if (kind == 0 and length == 0) or pos + HEADER + length > len(raw):
            break  # not written yet (zeros, or a record still being written)
        data = raw[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        assert crc == zlib.crc32(data, zlib.crc32(bytes([kind]))), f"{path}: bad checksum"
        parts += data
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(parts)
            parts = b""
            yield record


@dataclass
class OfflineRun:
    """One offline run directory: its id, config, and history rows by step."""

    path: Path
    run_id: str = ""
    project: str = ""
    name: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    history: dict[int, dict[str, Any]] = field(default_factory=dict)

    def table(self, step: int, key: str) -> dict[str, Any]:
        """The table logged under `key` at `step` ({"columns": [...], "data": [[...]]})."""
        ref = self.history[step][key]
        return json.loads((self.path / "files" / ref["path"]).read_text(encoding="utf-8"))


def _nested(items: Any) -> dict[str, Any]:
    """A history record's items as {key: value}; a table's fields come as key/field pairs."""
    out: dict[str, Any] = {}
    for item in items:
        value = json.loads(item.value_json)
        if item.key:
            out[item.key] = value
        else:
            *heads, leaf = item.nested_key
            node = out
            for head in heads:
                node = node.setdefault(head, {})
            node[leaf] = value
    return out


def finished_records(log: Path, timeout_s: float = 60.0) -> list[Any]:
    """The records of a finished run's log. `run.finish()` returns before W&B's service has
    written the file (it was seen holding the header alone right after, complete 0.5 s later),
    so this waits for the run's closing `exit` record."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = list(records(log))
        if any(r.WhichOneof("record_type") == "exit" for r in found):
            return found
        assert time.monotonic() < deadline, f"{log}: no exit record after {timeout_s} s"
        time.sleep(0.1)


def read_run(path: Path) -> OfflineRun:
    """The finished run in an `offline-run-*` directory."""
    run = OfflineRun(path)
    (log,) = path.glob("run-*.wandb")
    for record in finished_records(log):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.run_id, run.project = record.run.run_id, record.run.project
            run.name = record.run.display_name
            run.config.update(_nested(record.run.config.update))
        elif kind == "config":
            run.config.update(_nested(record.config.update))
        elif kind == "history":
            row = _nested(record.history.item)
            run.history[int(row["_step"])] = row
    return run


def offline_runs(wandb_dir: Path) -> list[OfflineRun]:
    """Every offline run under a W&B directory (its `wandb/` folder), oldest first."""
    return [read_run(p) for p in sorted((wandb_dir / "wandb").glob("offline-run-*"))]
