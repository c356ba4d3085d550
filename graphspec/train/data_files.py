"""Data files: ``.npz`` (arrays by name, loaded without pickle) and ``.csv`` (columns by
header name or index).  Errors name the file and, for CSV, the line.

Every file is hostile until read: only a regular file is opened (a FIFO would block, a link
to ``/dev/zero`` would never end), and nothing is read or allocated beyond what its own
declarations allow and :data:`MAX_DATA_BYTES` bounds.  Only the arrays a spec selects are
read: each one's ``.npy`` header is parsed from a bounded prefix of its member, and the size
it declares (shape times item size) is checked against the member's stored size and the
limit before the array is read: a 578-byte file claiming 64 GiB, or a zip bomb, is refused
before any allocation.

Rows are named one way in every error: a CSV row by its file line (1-based, the line where
the record starts, as an editor shows it); an ``.npz`` row by its index along the first axis
(0-based, as ``array[i]`` reads it).
"""

from __future__ import annotations

import array
import csv
import io
import math
import os
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
from numpy.lib import format as npy

from graphspec import regular_file
from graphspec.errors import DataError, Location, did_you_mean

# The numbers one data file may hold once decoded (npz: the arrays a spec selects, as stored;
# csv: 8 bytes a cell), and the size of a CSV file.  Larger data does not fit the in-memory
# training loop anyway; the limit turns a forged header or a zip bomb into an error at once.
MAX_DATA_BYTES = 2 * 2**30
MAX_CSV_BYTES = 512 * 2**20
NPY_PREFIX_BYTES = 64 * 1024  # the most of a member read to parse its .npy header
READ_CHUNK = 16 * 2**20
Columns = str | int | list[str] | list[int]

# Errors a damaged archive raises from zipfile or its decompressors.
_ZIP_ERRORS = (
    OSError,
    EOFError,
    KeyError,
    ValueError,
    RuntimeError,
    NotImplementedError,
    zipfile.BadZipFile,
    zlib.error,
)


@dataclass
class NpyMember:
    """One array of an .npz, known from its header only until selected."""

    member: str  # name inside the archive
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    offset: int  # where the data starts in the member

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


@dataclass
class Table:
    """An opened data file: arrays by name (npz, read when selected) or numbers by column
    (csv, parsed at once, with each column's first unusable cell kept for its error)."""

    name: str
    is_csv: bool = False
    # npz: arrays by name (the member's name without .npy), their headers parsed when selected
    members: dict[str, zipfile.ZipInfo] = field(default_factory=dict)
    archive: zipfile.ZipFile | None = None
    file: IO[bytes] | None = None  # the archive's file (zipfile leaves it open)
    bytes_read: int = 0
    # csv
    header: list[str] | None = None
    values: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # [rows, width]
    lines: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # file line of a row
    problems: dict[int, tuple[int, str]] = field(default_factory=dict)  # column -> (line, cell)

    @property
    def width(self) -> int:
        return int(self.values.shape[1])

    def names(self) -> list[str]:
        return list(self.header or []) if self.is_csv else list(self.members)

    def row(self, i: int) -> str:
        """Where row ``i`` of this file's arrays is, for messages: ``d.csv:7`` (its file
        line) or ``d.npz: row index 6``."""
        if self.is_csv:
            return f"{self.name}:{int(self.lines[i])}"
        return f"{self.name}: row index {i}"

    def close(self) -> None:
        if self.archive is not None:
            self.archive.close()
            self.archive = None
        if self.file is not None:
            self.file.close()
            self.file = None

    def __enter__(self) -> Table:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def read(path: Path, display: str, loc: Location | None) -> Table:
    """Open ``path`` (npz or csv) as a :class:`Table`; close it after use (``with``)."""
    suffix = path.suffix.lower()
    f = open_regular(path, display, loc)
    try:
        if suffix == ".npz":
            return _read_npz(f, display, loc)  # the table keeps the file open until closed
        if suffix == ".csv":
            with f:
                return _read_csv(f, display, loc)
        raise DataError(
            f"unsupported data file type '{suffix}' ({display})",
            loc,
            hint="use a .npz or .csv file",
        )
    except BaseException:
        f.close()
        raise


def open_regular(path: Path, display: str, loc: Location | None) -> IO[bytes]:
    """``path`` opened for reading if it is a regular file, else a DataError."""
    try:
        return regular_file.open_regular(path)
    except FileNotFoundError:
        raise DataError(
            f"data file not found: {display}",
            loc,
            hint="paths in train.data are relative to the spec's folder",
        ) from None
    except regular_file.NotARegularFile as e:
        if e.kind == "a directory":
            raise DataError(f"data path is a directory: {display}", loc) from None
        raise DataError(
            f"{display} is not a regular file ({e.kind})",
            loc,
            hint="train.data reads regular .npz or .csv files, not devices or pipes",
        ) from None
    except OSError as e:
        raise DataError(f"cannot read {display}: {e.strerror or e}", loc) from None


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


# ---- npz ---------------------------------------------------------------------------------


def _read_npz(f: IO[bytes], display: str, loc: Location | None) -> Table:
    magic = f.read(4)
    # np.load would take anything else for a pickle (PK\5\6 starts an archive of no arrays)
    if magic not in (b"PK\x03\x04", b"PK\x05\x06"):
        raise DataError(
            f"{display} is not an .npz archive",
            loc,
            hint="write it with numpy.savez or numpy.savez_compressed",
        )
    f.seek(0)
    try:
        archive = zipfile.ZipFile(f)
    except _ZIP_ERRORS as e:
        raise DataError(f"{display} is not a readable .npz file ({e})", loc) from None
    table = Table(display, archive=archive, file=f)
    for info in archive.infolist():
        if info.filename.endswith(".npy") and not info.is_dir():
            table.members[info.filename[:-4]] = info
    if not table.members:
        table.close()
        raise DataError(f"{display} holds no arrays", loc)
    return table


def _npy_header(table: Table, name: str, loc: Location | None) -> NpyMember:
    """The header of array ``name``, parsed from a bounded prefix of its member (a version 2
    header may claim 4 GiB of header text, which numpy would read before checking its
    size), and checked: the member's unpacked size, no objects, a valid shape, a size
    within the limit and within the member."""
    display, info = table.name, table.members[name]
    assert table.archive is not None
    # The size the archive declares, before inflating anything (zipfile stops there).
    if info.file_size > MAX_DATA_BYTES + NPY_PREFIX_BYTES:
        raise DataError(
            f"{display}: array '{name}' unpacks to {_size(info.file_size)} "
            f"(from {_size(info.compress_size)}); data files are limited to "
            f"{_size(MAX_DATA_BYTES)}",
            loc,
            hint="train on a smaller sample of the data",
        )
    try:
        with table.archive.open(info) as m:
            prefix = io.BytesIO(m.read(NPY_PREFIX_BYTES))
        version = npy.read_magic(prefix)
        if version == (1, 0):
            shape, fortran, dtype = npy.read_array_header_1_0(prefix)
        elif version == (2, 0):
            shape, fortran, dtype = npy.read_array_header_2_0(prefix)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except _ZIP_ERRORS + (SyntaxError, RecursionError) as e:
        raise DataError(
            f"{display}: array '{name}' is not a readable .npy array ({e})", loc
        ) from None
    if dtype.hasobject:
        raise DataError(
            f"{display}: cannot load without pickle (array '{name}' holds Python objects)",
            loc,
            hint="save plain numeric arrays (np.savez with numeric dtypes)",
        )
    if any(d < 0 for d in shape):
        raise DataError(f"{display}: array '{name}' declares the invalid shape {shape}", loc)
    entry = NpyMember(
        info.filename, tuple(int(d) for d in shape), dtype, bool(fortran), prefix.tell()
    )
    if entry.nbytes > MAX_DATA_BYTES:
        raise DataError(
            f"{display}: array '{name}' declares shape {entry.shape} of {dtype} "
            f"({_size(entry.nbytes)}); data files are limited to {_size(MAX_DATA_BYTES)}",
            loc,
            hint="train on a smaller sample of the data",
        )
    if math.prod(d for d in entry.shape if d) > MAX_DATA_BYTES:  # empty, yet numpy refuses
        raise DataError(f"{display}: array '{name}' declares the invalid shape {shape}", loc)
    stored = info.file_size - entry.offset
    if entry.nbytes > stored:
        raise DataError(
            f"{display}: array '{name}' declares shape {entry.shape} of {dtype} "
            f"({_size(entry.nbytes)}) but its member holds {_size(max(stored, 0))}",
            loc,
            hint="the file is truncated or was not written by numpy",
        )
    return entry


def _read_npy(table: Table, names: list[str], loc: Location | None) -> list[np.ndarray]:
    """Arrays ``names``, every header checked before any data is read."""
    entries = [_npy_header(table, name, loc) for name in names]
    if len(entries) > 1 and (
        any(len(e.shape) != 1 for e in entries) or len({e.shape for e in entries}) > 1
    ):
        raise DataError(
            f"{table.name}: arrays {names} must be 1-D and of one length to be stacked as columns",
            loc,
        )
    table.bytes_read += sum(e.nbytes for e in entries)
    if table.bytes_read > MAX_DATA_BYTES:
        raise DataError(
            f"{table.name}: the selected arrays hold more than "
            f"{_size(MAX_DATA_BYTES)}, the limit for a data file",
            loc,
        )
    return [_read_member(table, name, entry, loc) for name, entry in zip(names, entries)]


def _read_member(table: Table, name: str, entry: NpyMember, loc: Location | None) -> np.ndarray:
    assert table.archive is not None
    buf = bytearray(entry.nbytes)
    view = memoryview(buf)
    try:
        with table.archive.open(entry.member) as m:
            m.read(entry.offset)
            done = 0
            while done < entry.nbytes:
                chunk = m.read(min(READ_CHUNK, entry.nbytes - done))
                if not chunk:
                    raise EOFError(f"{entry.nbytes - done} bytes missing")
                view[done : done + len(chunk)] = chunk
                done += len(chunk)
    except _ZIP_ERRORS as e:
        raise DataError(f"{table.name}: array '{name}' cannot be read ({e})", loc) from None
    order: Literal["C", "F"] = "F" if entry.fortran_order else "C"
    if entry.nbytes == 0:
        return np.zeros(entry.shape, entry.dtype, order=order)
    flat = np.frombuffer(buf, dtype=entry.dtype, count=math.prod(entry.shape))
    return flat.reshape(entry.shape, order=order)


# ---- csv ---------------------------------------------------------------------------------


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _bounded_lines(f: IO[str], display: str, loc: Location | None) -> Any:
    """The file's lines, refusing to go past MAX_CSV_BYTES characters (the file may grow
    while it is read)."""
    left = MAX_CSV_BYTES
    while True:
        line = f.readline(left + 1)
        if not line:
            return
        left -= len(line)
        if left < 0:
            raise DataError(
                f"{display} is larger than {_size(MAX_CSV_BYTES)}",
                loc,
                hint="convert large data to .npz",
            )
        yield line


# A CSV parsed: (header, first non-blank row with its line, width, values, file lines,
# problems) -- what both parsers below return.
_Parsed = tuple[
    list[str] | None,
    tuple[int, list[str]] | None,
    int,
    np.ndarray,
    np.ndarray,
    dict[int, tuple[int, str]],
]


def _read_csv(f: IO[bytes], display: str, loc: Location | None) -> Table:
    size = os.fstat(f.fileno()).st_size
    if size > MAX_CSV_BYTES:
        raise DataError(
            f"{display} is larger than {_size(MAX_CSV_BYTES)}",
            loc,
            hint="convert large data to .npz",
        )
    parsed = _parse_csv_fast(f)
    if parsed is None:  # anything unusual, or an error to locate: cell by cell
        f.seek(0)
        parsed = _parse_csv_cells(f, display, loc)
    header, first, width, values, lines, problems = parsed
    if first is None:
        raise DataError(f"{display} is empty", loc)
    _refuse_other_delimiters(display, first, width, loc)
    if header is not None:
        dup = [h for i, h in enumerate(header) if h in header[:i]]
        if dup:
            raise DataError(f"{display}: duplicate column name '{dup[0]}' in the header", loc)
    if not len(lines):
        raise DataError(f"{display} has a header but no data rows", loc)
    return Table(display, is_csv=True, header=header, values=values, lines=lines, problems=problems)


def _parse_csv_cells(f: IO[bytes], display: str, loc: Location | None) -> _Parsed:
    """The reference parser: csv.reader, one cell at a time.  It defines the format (quotes,
    records spanning lines, blank rows skipped, cells stripped, a first row holding a
    non-number is the header) and locates every error; :func:`_parse_csv_fast` gives the
    same result on the files it accepts."""
    text = io.TextIOWrapper(f, encoding="utf-8-sig", newline="")  # spreadsheets write a BOM
    values = array.array("d")
    lines = array.array("q")
    max_cells = MAX_DATA_BYTES // 8
    header: list[str] | None = None
    problems: dict[int, tuple[int, str]] = {}
    width = -1
    first: tuple[int, list[str]] | None = None
    try:
        reader = csv.reader(_bounded_lines(text, display, loc))
        start = 1
        for raw in reader:
            line, start = start, reader.line_num + 1  # a record may span lines: its first
            row = [c.strip() for c in raw]
            if not any(row):
                continue
            if width < 0:
                first = (line, row)
                width = len(row)
                if not all(_is_number(c) for c in row):
                    header = row
                    continue
            if len(row) != width:
                raise DataError(
                    f"{display}:{line}: row has {len(row)} fields, expected {width}", loc
                )
            for j, cell in enumerate(row):
                try:
                    value = float(cell)
                except ValueError:
                    value = math.nan
                if not math.isfinite(value):
                    problems.setdefault(j, (line, cell))
                values.append(value)
            lines.append(line)
            if len(values) > max_cells:
                raise DataError(
                    f"{display} holds more than {max_cells:,} numbers "
                    f"({_size(MAX_DATA_BYTES)} as float64)",
                    loc,
                    hint="train on a smaller sample of the data",
                )
    except UnicodeDecodeError:
        raise DataError(f"{display} is not UTF-8 text", loc) from None
    except OSError as e:
        raise DataError(f"cannot read {display}: {e.strerror or e}", loc) from None
    except csv.Error as e:
        raise DataError(f"{display}: malformed CSV ({e})", loc) from None
    finally:
        text.detach()  # the caller closes the binary file
    rows = len(lines)
    return (
        header,
        first,
        width,
        np.frombuffer(values, dtype=np.float64).reshape(rows, max(width, 0)),
        np.frombuffer(lines, dtype=np.int64),
        problems,
    )


# The fast path reads this much at a time: its temporaries (the decoded text, the parsed
# piece) stay a few MiB whatever the file's size.
CSV_CHUNK = 2**18
_BOM = b"\xef\xbb\xbf"
# A byte that makes a CSV row non-blank: anything but ASCII whitespace and the delimiter
# (csv.reader's cells of a row of those, stripped, are all empty: the row is skipped).
_INK = re.compile(rb"[^ \t\n\r\v\f\x1c-\x1f,]")
_INK_TABLE = np.ones(256, dtype=bool)
_INK_TABLE[list(b" \t\n\r\v\f\x1c\x1d\x1e\x1f,")] = False
# Bytes the fast path leaves to csv.reader: quotes (a quoted field may hold commas and
# newlines) and control characters Python reads as line breaks (a lone \r is checked
# separately: \r\n is a line end to both readers).
_HANDS_OFF = tuple(bytes([c]) for c in b'"\x00\x0b\x0c\x1c\x1d\x1e\x1f')


class _Unusual(Exception):
    """The fast parser cannot vouch for this file: the reference parser reads it."""


def _line_pieces(f: IO[bytes]) -> Any:
    """The file in pieces of whole lines (the last may lack its newline), about CSV_CHUNK
    bytes each, the byte-order mark dropped; at most MAX_CSV_BYTES in all."""
    left = MAX_CSV_BYTES
    parts: list[bytes] = []  # a line longer than a chunk, joined once it ends
    head = True
    while True:
        block = f.read(min(CSV_CHUNK, left + 1))
        left -= len(block)
        if left < 0:
            raise _Unusual  # the file grew past the limit: the reference parser refuses it
        cut = block.rfind(b"\n") + 1
        if block and not cut:
            parts.append(block)
            continue
        piece = b"".join([*parts, block[:cut]]) if block else b"".join(parts)
        parts = [block[cut:]] if cut < len(block) else []
        if head:  # the first line is whole in the first piece, and with it the mark
            piece, head = piece.removeprefix(_BOM), False
        if piece:
            yield piece
        if not block:
            return


def _parse_csv_fast(f: IO[bytes]) -> _Parsed | None:
    """The file parsed a piece at a time by NumPy's C reader, or None where the reference
    parser must read it: quotes, a lone \r, control characters, a byte that is not UTF-8,
    rows of other widths, a cell NumPy does not read as a finite number (NumPy hands a
    stripped ASCII cell to the function Python's float() uses; float() also reads
    ``1_000`` and non-ASCII digits) or rows NumPy skips where csv.reader does not.  Two
    passes over the file: the first counts its lines, so the result is allocated once, at
    its final size (bar blank lines)."""
    try:
        capacity = sum(piece.count(b"\n") + 1 for piece in _line_pieces(f))
        f.seek(0)
        return _parse_pieces(_line_pieces(f), capacity)
    except _Unusual:
        return None


def _loadtxt(text: str) -> np.ndarray | None:
    try:
        return np.loadtxt(
            io.StringIO(text),
            dtype=np.float64,
            delimiter=",",
            comments=None,
            quotechar=None,
            ndmin=2,
        )
    except ValueError:  # a cell, a row's width, a decoding error: not this path's to say
        return None


def _parse_pieces(pieces: Any, capacity: int) -> _Parsed:
    header: list[str] | None = None
    first: tuple[int, list[str]] | None = None
    width = -1
    values = np.zeros((0, 0))
    lines = np.zeros(capacity, dtype=np.int64)
    rows = 0  # data rows so far
    base = 1  # the file line of the piece's first line
    for piece in pieces:
        if any(c in piece for c in _HANDS_OFF) or (
            b"\r" in piece and piece.count(b"\r") != piece.count(b"\r\n")
        ):
            raise _Unusual
        start = 0  # where the piece's data lines start (past blank lines and the header)
        if first is None:
            ink = _INK.search(piece)
            if ink is None:
                base += piece.count(b"\n")
                continue
            start = piece.rfind(b"\n", 0, ink.start()) + 1
            end = piece.find(b"\n", ink.start())
            end = len(piece) if end < 0 else end
            try:
                row = [c.strip() for c in piece[start:end].decode("utf-8").split(",")]
            except UnicodeDecodeError:
                raise _Unusual from None
            first, width = (base + piece.count(b"\n", 0, start), row), len(row)
            values = np.empty((capacity, width), dtype=np.float64)
            if not all(_is_number(c) for c in row):
                header, start = row, min(end + 1, len(piece))
        data = piece[start:]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise _Unusual from None
        line0 = base + piece.count(b"\n", 0, start)  # the file line of data's first line
        newlines = data.count(b"\n")
        base = line0 + newlines
        part = _loadtxt(text) if _INK.search(data) else np.zeros((0, width))
        count = newlines + (not data.endswith(b"\n") and len(data) > 0)  # lines in data
        if part is not None and len(part) == count:  # no blank line: one row a line
            at = line0 + np.arange(count)
        else:
            part, full = _with_blank_lines(data, part)
            at = line0 + full
        n = len(part)
        if part.shape[1] != width or rows + n > capacity or not np.isfinite(part).all():
            raise _Unusual
        if (rows + n) * width > MAX_DATA_BYTES // 8:
            raise _Unusual  # the reference parser says how many numbers are allowed
        values[rows : rows + n] = part
        lines[rows : rows + n] = at
        rows += n
    if first is None:
        return None, None, -1, values, lines[:0], {}
    if rows < capacity * 7 // 8:  # many blank lines: do not keep their room
        return header, first, width, values[:rows].copy(), lines[:rows].copy(), {}
    return header, first, width, values[:rows], lines[:rows], {}


def _with_blank_lines(data: bytes, part: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The rows of ``data`` (lines of which some are blank) and the index of each one's
    line: NumPy skips empty lines and refuses lines of spaces or commas, which csv.reader
    skips, so where there are such lines NumPy reads the non-blank lines alone."""
    codes = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(codes == ord("\n"))
    if not data.endswith(b"\n"):
        ends = np.append(ends, len(codes))
    starts = np.concatenate(([0], ends[:-1] + 1))
    ink = np.zeros(len(codes) + 1, dtype=np.int32)  # ink bytes before each offset
    np.cumsum(_INK_TABLE[codes], out=ink[1:])
    full = np.flatnonzero(ink[ends] > ink[starts])
    if part is None:
        length = ends - starts
        crlf = (length > 0) & (codes[np.maximum(ends - 1, 0)] == ord("\r"))
        if not np.any((ink[ends] == ink[starts]) & (length > crlf)):
            raise _Unusual  # no line of spaces or commas: NumPy refused a row
        part = _loadtxt("\n".join(data[starts[j] : ends[j]].decode("utf-8") for j in full))
    if part is None or len(part) != len(full):
        raise _Unusual
    return part, full


def _refuse_other_delimiters(
    display: str, first: tuple[int, list[str]], width: int, loc: Location | None
) -> None:
    """One column whose first line holds ';' or tabs: the file is not comma-separated."""
    if width != 1:
        return
    line, row = first
    for delimiter, shown, name in ((";", "';'", "semicolon"), ("\t", "tabs", "tab")):
        if delimiter in row[0]:
            raise DataError(
                f"{display}:{line}: the file has one column, but the line contains {shown}: "
                f"it looks {name}-separated",
                loc,
                hint="graphspec reads comma-separated files: save it with ',' as the delimiter",
            )


# ---- selecting an input's columns ----------------------------------------------------------


def select(table: Table, columns: Columns, loc: Location | None) -> np.ndarray:
    """The array for one input: ``[n]`` for a single column or array name, ``[n, k]`` for a
    list of columns."""
    if table.is_csv:
        return _select_csv(table, columns, loc)
    names = [columns] if isinstance(columns, str) else columns
    if isinstance(names, int) or not all(isinstance(c, str) for c in names):
        raise DataError(
            f"{table.name}: .npz arrays are selected by name, not index",
            loc,
            hint="arrays: " + ", ".join(table.members),
        )
    for name in names:
        if name not in table.members:
            raise DataError(
                f"{table.name} has no array '{name}'",
                loc,
                hint=did_you_mean(str(name), table.members)
                or "arrays: " + ", ".join(table.members),
            )
    picked = _read_npy(table, [str(n) for n in names], loc)
    if isinstance(columns, str):
        return _numeric(table.name, columns, picked[0], loc)
    return _numeric(table.name, ",".join(map(str, names)), np.stack(picked, axis=1), loc)


def _numeric(file: str, name: str, a: np.ndarray, loc: Location | None) -> np.ndarray:
    if a.dtype == bool:
        a = a.astype(np.float64)
    if a.dtype.kind not in "iuf":
        raise DataError(f"{file}: array '{name}' has non-numeric dtype {a.dtype}", loc)
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        bad = np.argwhere(~np.isfinite(a))[0]
        raise DataError(
            f"{file}: array '{name}' holds NaN or Inf (first at index "
            f"{tuple(int(i) for i in bad)})",
            loc,
            hint="clean the data first",
        )
    return a


def _column_index(table: Table, col: str | int, loc: Location | None) -> int:
    if isinstance(col, int) and not isinstance(col, bool):
        if not -table.width <= col < table.width:
            raise DataError(
                f"{table.name} has {table.width} columns; index {col} is out of range", loc
            )
        return col % table.width
    if table.header is None:
        raise DataError(
            f"{table.name} has no header row, so column '{col}' cannot be found",
            loc,
            hint="select columns by index (0-based) or add a header row",
        )
    if col not in table.header:
        raise DataError(
            f"{table.name} has no column '{col}'",
            loc,
            hint=did_you_mean(str(col), table.header) or "columns: " + ", ".join(table.header),
        )
    return table.header.index(str(col))


def _select_csv(table: Table, columns: Columns, loc: Location | None) -> np.ndarray:
    cols = columns if isinstance(columns, list) else [columns]
    idx = [_column_index(table, c, loc) for c in cols]
    for ci in idx:
        if ci not in table.problems:
            continue
        line, cell = table.problems[ci]
        label = table.header[ci] if table.header else f"column {ci}"
        where = f"{table.name}:{line}: {label}"
        if not cell:
            raise DataError(
                f"{where} is empty (a missing value)",
                loc,
                hint="fill or drop rows with missing values",
            )
        if _is_number(cell):
            raise DataError(
                f"{where} is {cell}",
                loc,
                hint="clean the data first: NaN and Inf cannot be trained on",
            )
        raise DataError(f"{where}: '{cell[:40]}' is not a number", loc)
    out = table.values[:, idx]
    return out if isinstance(columns, list) else out[:, 0]
