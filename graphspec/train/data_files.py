"""Data files: ``.npz`` (arrays by name, loaded without pickle) and ``.csv`` (columns by
header name or index).  Errors name the file and, for CSV, the line and column."""

from __future__ import annotations

import csv
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from graphspec.errors import DataError, Location, did_you_mean

MAX_CSV_BYTES = 512 * 1024 * 1024
Columns = str | int | list[str] | list[int]


@dataclass
class Table:
    """A loaded file: named arrays (npz) or string cells with their line numbers (csv)."""

    name: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    header: list[str] | None = None
    rows: list[list[str]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # file line of each row
    is_csv: bool = False

    @property
    def width(self) -> int:
        return len(self.header) if self.header else (len(self.rows[0]) if self.rows else 0)

    def names(self) -> list[str]:
        return list(self.header or []) if self.is_csv else list(self.arrays)


def read(path: Path, display: str, loc: Location | None) -> Table:
    if not path.exists():
        raise DataError(f"data file not found: {display}", loc,
                        hint="paths in train.data are relative to the spec's folder")
    if path.is_dir():
        raise DataError(f"data path is a directory: {display}", loc)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _read_npz(path, display, loc)
    if suffix == ".csv":
        return _read_csv(path, display, loc)
    raise DataError(f"unsupported data file type '{suffix}' ({display})", loc,
                    hint="use a .npz or .csv file")


def _read_npz(path: Path, display: str, loc: Location | None) -> Table:
    arrays: dict[str, np.ndarray] = {}
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise DataError(f"cannot read {display}: {e.strerror or e}", loc) from None
    # np.load would take anything else for a pickle (PK\5\6 starts an archive of no arrays)
    if magic not in (b"PK\x03\x04", b"PK\x05\x06"):
        raise DataError(f"{display} is not an .npz archive", loc,
                        hint="write it with numpy.savez or numpy.savez_compressed")
    try:
        with np.load(path, allow_pickle=False) as f:
            for key in f.files:
                arrays[key] = np.asarray(f[key])
    except ValueError as e:  # object arrays need pickle, which we never allow
        raise DataError(f"{display}: cannot load without pickle ({e})", loc,
                        hint="save plain numeric arrays (np.savez with numeric dtypes)") from None
    except (OSError, zipfile.BadZipFile, EOFError, KeyError) as e:
        raise DataError(f"{display} is not a readable .npz file ({e})", loc) from None
    if not arrays:
        raise DataError(f"{display} holds no arrays", loc)
    return Table(display, arrays=arrays)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_csv(path: Path, display: str, loc: Location | None) -> Table:
    if path.stat().st_size > MAX_CSV_BYTES:
        raise DataError(f"{display} is larger than {MAX_CSV_BYTES // 2**20} MiB", loc,
                        hint="convert large data to .npz")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            records = [(r.line_num, row) for r in [csv.reader(f)] for row in r]
    except UnicodeDecodeError:
        raise DataError(f"{display} is not UTF-8 text", loc) from None
    except OSError as e:
        raise DataError(f"cannot read {display}: {e.strerror or e}", loc) from None
    except csv.Error as e:
        raise DataError(f"{display}: malformed CSV ({e})", loc) from None
    # csv.reader's line_num is read after the row, so it is the row's last line
    records = [(ln, [c.strip() for c in row]) for ln, row in records if any(c.strip() for c in row)]
    if not records:
        raise DataError(f"{display} is empty", loc)
    header = None
    if not all(_is_number(c) for c in records[0][1]):
        header = records[0][1]
        records = records[1:]
        dup = [h for i, h in enumerate(header) if h in header[:i]]
        if dup:
            raise DataError(f"{display}: duplicate column name '{dup[0]}' in the header", loc)
    if not records:
        raise DataError(f"{display} has a header but no data rows", loc)
    width = len(header) if header else len(records[0][1])
    for ln, row in records:
        if len(row) != width:
            raise DataError(
                f"{display}:{ln}: row has {len(row)} fields, expected {width}", loc)
    return Table(display, header=header, rows=[r for _, r in records],
                 lines=[ln for ln, _ in records], is_csv=True)


def select(table: Table, columns: Columns, loc: Location | None) -> np.ndarray:
    """The array for one input: ``[n]`` for a single column or array name, ``[n, k]`` for a
    list of columns."""
    if table.is_csv:
        return _select_csv(table, columns, loc)
    names = [columns] if isinstance(columns, str) else columns
    if isinstance(names, int) or not all(isinstance(c, str) for c in names):
        raise DataError(f"{table.name}: .npz arrays are selected by name, not index", loc,
                        hint="arrays: " + ", ".join(table.arrays))
    picked = []
    for name in names:
        if name not in table.arrays:
            raise DataError(f"{table.name} has no array '{name}'", loc,
                            hint=did_you_mean(str(name), table.arrays)
                            or "arrays: " + ", ".join(table.arrays))
        picked.append(table.arrays[name])
    if isinstance(columns, str):
        return _numeric(table.name, str(columns), picked[0], loc)
    if any(a.ndim != 1 for a in picked) or len({len(a) for a in picked}) > 1:
        raise DataError(f"{table.name}: arrays {names} must be 1-D and of one length to be "
                        "stacked as columns", loc)
    return _numeric(table.name, ",".join(map(str, names)), np.stack(picked, axis=1), loc)


def _numeric(file: str, name: str, a: np.ndarray, loc: Location | None) -> np.ndarray:
    if a.dtype == bool:
        a = a.astype(np.float64)
    if a.dtype.kind not in "iuf":
        raise DataError(f"{file}: array '{name}' has non-numeric dtype {a.dtype}", loc)
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        bad = np.argwhere(~np.isfinite(a))[0]
        raise DataError(f"{file}: array '{name}' holds NaN or Inf (first at index "
                        f"{tuple(int(i) for i in bad)})", loc, hint="clean the data first")
    return a


def _column_index(table: Table, col: str | int, loc: Location | None) -> int:
    if isinstance(col, int) and not isinstance(col, bool):
        if not -table.width <= col < table.width:
            raise DataError(f"{table.name} has {table.width} columns; index {col} is out of range",
                            loc)
        return col % table.width
    if table.header is None:
        raise DataError(f"{table.name} has no header row, so column '{col}' cannot be found",
                        loc, hint="select columns by index (0-based) or add a header row")
    if col not in table.header:
        raise DataError(f"{table.name} has no column '{col}'", loc,
                        hint=did_you_mean(str(col), table.header)
                        or "columns: " + ", ".join(table.header))
    return table.header.index(str(col))


def _select_csv(table: Table, columns: Columns, loc: Location | None) -> np.ndarray:
    cols = columns if isinstance(columns, list) else [columns]
    idx = [_column_index(table, c, loc) for c in cols]
    out = np.empty((len(table.rows), len(idx)))
    for j, ci in enumerate(idx):
        label = table.header[ci] if table.header else f"column {ci}"
        for i, row in enumerate(table.rows):
            cell = row[ci]
            if not cell:
                raise DataError(f"{table.name}:{table.lines[i]}: {label} is empty (a missing "
                                "value)", loc, hint="fill or drop rows with missing values")
            try:
                value = float(cell)
            except ValueError:
                raise DataError(f"{table.name}:{table.lines[i]}: {label}: '{cell[:40]}' is not a "
                                "number", loc) from None
            if not math.isfinite(value):
                raise DataError(f"{table.name}:{table.lines[i]}: {label} is {cell}", loc,
                                hint="clean the data first: NaN and Inf cannot be trained on")
            out[i, j] = value
    return out if isinstance(columns, list) else out[:, 0]
