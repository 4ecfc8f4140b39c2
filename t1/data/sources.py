"""Where rows come from: a JSONL file read line by line, or anything the `datasets` library reads.

    file.jsonl (or any other suffix)   t1.data.jsonl, errors name `file:line`
    file.json | .parquet | .arrow | .csv
                                       `datasets.load_dataset(<format>, data_files=file)`
    folder written by save_to_disk     `datasets.load_from_disk(folder)`
    owner/name (not a local path)      `datasets.load_dataset(owner/name, subset, split=split)`:
                                       the Hub, or with HF_DATASETS_OFFLINE=1 (or HF_HUB_OFFLINE=1)
                                       the datasets cache alone (HF_DATASETS_CACHE)
    owner/name + files=path/in/repo    that one file of the Hub dataset repo, fetched by
                                       huggingface_hub (offline: from its cache, HF_HUB_CACHE),
                                       then read as a local file of its suffix

Rows read through `datasets` are named `name[split][index]` in errors, the index counting from 0
as `dataset[split][index]` does. By default the first bad row stops the load (before any training
starts); with `skip_bad_rows` bad rows are skipped, counted in `Loaded.skipped` and logged once.
A source where no row survives is always an error.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from t1.data.jsonl import Row, jsonl_rows
from t1.errors import ConfigError, DataError

log = logging.getLogger("t1.data")

T = TypeVar("T")

# local files read by a `datasets` builder; any other suffix is JSONL
BUILDERS = {".json": "json", ".parquet": "parquet", ".arrow": "arrow", ".csv": "csv"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class Source:
    """A data source as the config names it (see the module docstring)."""

    path: str
    split: str | None = None
    subset: str | None = None
    # a file inside a Hub dataset repo
    files: str | None = None
    # the split read when `split` is None and the dataset has several
    default_split: str = "train"


def train_source(data_cfg: Any) -> Source:
    d = data_cfg
    return Source(str(d.train), d.split, d.subset, d.files, "train")


def eval_source(data_cfg: Any) -> Source:
    """data.eval with data.eval_split/_subset/_files; where there is no data.train (`t1 eval`,
    `t1 scale`), data.split/subset/files stand in for those left unset."""
    d = data_cfg
    keys = [d.eval_split, d.eval_subset, d.eval_files]
    if d.train is None:
        keys = [
            own if own is not None else k
            for own, k in zip(keys, (d.split, d.subset, d.files), strict=True)
        ]
    return Source(str(d.eval), *keys, default_split="test")


class Loaded(list, Generic[T]):
    """The records of a source (a plain list) plus what was skipped on the way."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        # the file, folder or Hub id read (its name in messages)
        self.path = path
        # rows dropped by skip_bad_rows, and their error messages (where: why)
        self.skipped = 0
        self.errors: list[str] = []


def is_hub_id(path: str) -> bool:
    """`owner/name` that is not a local path and has no file suffix this module reads."""
    p = Path(path)
    return not p.exists() and bool(_HUB_ID.match(path)) and p.suffix not in (*BUILDERS, ".jsonl")


def source_rows(source: Source, what: str) -> tuple[str | Path, Iterator[Row]]:
    """(the source's name in messages, its rows)."""
    if source.files is not None:
        if not is_hub_id(source.path):
            raise ConfigError(
                f"data files={source.files!r} names a file inside a Hub dataset, but "
                f"{source.path!r} is not a Hub dataset id (owner/name)"
            )
        return source_rows(Source(str(_hub_file(source)), source.split), what)
    p = Path(source.path)
    if p.is_dir():
        return _dataset_rows(source.path, *_load_from_disk(p, source))
    if p.is_file() and p.suffix in BUILDERS:
        return _dataset_rows(source.path, "train", _load_file(p))
    if is_hub_id(source.path):
        return _dataset_rows(source.path, *_load_hub(source))
    return p, jsonl_rows(p, what)


def read_records(
    source: Source | str | Path,
    parse: Callable[[dict, str, int], T],
    what: str,
    skip_bad_rows: bool = False,
    limit: int | None = None,
) -> Loaded[T]:
    """Parse every row of `source` with `parse(row, where, index)`.

    `what` names one record ("problem", "trace") in messages. `limit` stops after that many
    good records (the rest is not read).
    """
    if not isinstance(source, Source):
        source = Source(str(source))
    if limit is not None and limit < 1:
        raise ConfigError(
            f"{source.path}: the row limit must be >= 1 (or null for all), got {limit}"
        )
    name, rows = source_rows(source, what)
    out: Loaded[T] = Loaded(name)
    for where, index, row in rows:
        if limit is not None and len(out) >= limit:
            break
        try:
            if isinstance(row, DataError):
                raise row
            out.append(parse(row, where, index))
        except DataError as e:
            if not skip_bad_rows:
                raise
            out.skipped += 1
            out.errors.append(str(e))
    if out.skipped:
        log.warning("%s: skipped %d bad rows (first: %s)", name, out.skipped, out.errors[0])
    if not out:
        first = f"; first error: {out.errors[0]}" if out.errors else ""
        raise DataError(f"{name}: no valid {what} rows ({out.skipped} bad rows skipped{first})")
    return out


def _dataset_rows(name: str, split: str, ds: Any) -> tuple[str, Iterator[Row]]:
    if len(ds) == 0:
        raise DataError(f"{name}[{split}]: the split has no rows")

    def rows() -> Iterator[Row]:
        for i, row in enumerate(ds):
            yield f"{name}[{split}][{i}]", i, row

    return name, rows()


def _load_file(path: Path) -> Any:
    import datasets  # heavy (pyarrow, pandas): JSONL-only runs never import it

    builder = BUILDERS[path.suffix]
    try:
        return datasets.load_dataset(builder, data_files=str(path), split="train")
    except Exception as e:  # the builders raise many kinds; the user needs the file and why
        raise DataError(f"{path}: could not be read as {builder} ({_why(e)})") from None


def _load_from_disk(path: Path, source: Source) -> tuple[str, Any]:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except FileNotFoundError as e:
        raise DataError(
            f"{path}: a folder that is not a dataset saved with save_to_disk ({_why(e)})"
        ) from None
    return _pick_split(str(path), loaded, source)


def _load_hub(source: Source) -> tuple[str, Any]:
    import datasets

    try:
        loaded = datasets.load_dataset(source.path, source.subset, split=source.split)
    except Exception as e:  # network, offline cache miss, unknown split or subset, gated repo
        offline = " (offline: only datasets in the local cache load)"
        raise DataError(
            f"{source.path}: no such local file or folder, and the Hub dataset could not be "
            f"loaded: {_why(e)}{offline if datasets.config.HF_HUB_OFFLINE else ''}"
        ) from None
    if source.split is not None:
        return source.split, loaded
    return _pick_split(source.path, loaded, source)


def _pick_split(name: str, loaded: Any, source: Source) -> tuple[str, Any]:
    """The split of a DatasetDict: the one asked for, the only one, or the default."""
    if not hasattr(loaded, "keys"):  # a single Dataset
        return str(getattr(loaded, "split", None) or source.split or "train"), loaded
    splits = list(loaded.keys())
    if source.split is not None:
        chosen = source.split
    elif len(splits) == 1:
        chosen = splits[0]
    else:
        chosen = source.default_split
    if chosen not in splits:
        raise DataError(
            f"{name}: no split {chosen!r}; its splits: {', '.join(splits)} (set the split)"
        )
    return chosen, loaded[chosen]


def _hub_file(source: Source) -> Path:
    """The local copy of one file of a Hub dataset repo (downloaded, or from the cache)."""
    import datasets
    from huggingface_hub import hf_hub_download

    offline = datasets.config.HF_HUB_OFFLINE
    try:
        path = hf_hub_download(
            source.path, source.files, repo_type="dataset", local_files_only=offline
        )
    except Exception as e:  # network, cache miss, no such file or repo
        where = "in the local Hugging Face cache (offline)" if offline else "on the Hub"
        raise DataError(
            f"{source.path}: file {source.files!r} not found {where}: {_why(e)}"
        ) from None
    return Path(path)


def _why(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"
