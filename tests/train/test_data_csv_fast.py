"""The fast CSV parser (NumPy's reader, a piece at a time) against the reference parser
(csv.reader, cell by cell) that defines the format: wherever the fast path accepts a file
it gives the same header, rows, values (bit for bit) and file lines; everything else it
hands over, so errors keep their messages and locations."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphspec.errors import DataError
from graphspec.train import data_files


def parse_both(data: bytes) -> tuple[data_files._Parsed | None, data_files._Parsed | str]:
    fast = data_files._parse_csv_fast(io.BytesIO(data))
    try:
        reference: data_files._Parsed | str = data_files._parse_csv_cells(
            io.BytesIO(data), "d.csv", None
        )
    except DataError as e:
        reference = str(e)
    return fast, reference


def assert_same(fast: data_files._Parsed, reference: data_files._Parsed | str) -> None:
    assert not isinstance(reference, str), reference
    header, first, width, values, lines, problems = fast
    assert (header, first, width, problems) == reference[:3] + (reference[5],)
    assert values.shape == reference[3].shape and values.dtype == reference[3].dtype
    assert values.tobytes() == reference[3].tobytes()
    assert lines.tolist() == reference[4].tolist()


# Files the fast path reads itself: each is one way the format bends.
ACCEPTED = {
    "header": b"a,b\n1,2\n3,4\n",
    "no header": b"1,2\n3,4\n",
    "crlf": b"a,b\r\n1,2\r\n3,4\r\n",
    "no final newline": b"a,b\n1,2\n3,4",
    "byte-order mark": b"\xef\xbb\xbfx,y\n1,2\n",
    "blank lines": b"\n\na,b\n\n1,2\n\n\n3,4\n\n",
    "blank lines crlf": b"\r\na,b\r\n\r\n1,2\r\n\r\n3,4\r\n",
    "lines of spaces and commas": b" \n,\na,b\n1,2\n  \t\n , \n3,4\n,,\n",
    "spaces around cells": b" a , b \n 1 ,\t2 \n3 , 4\n",
    "one column": b"y\n1\n2\n\n3\n",
    "non-ASCII header": b"\xc3\xa9t\xc3\xa9,b\n1,2\n",
    "header only": b"a,b\n\n",
    "empty": b"",
    "blank only": b"\n \n,\n",
    "numbers": b"1e3,-0.5\n+.25,1E-320\n1.7976931348623157e308,4.9e-324\n0.1,-0\n",
    "long digits": b"0.30000000000000004441,123456789012345678901234567890\n",
    "header with an empty name": b"a,,c\n1,2,3\n",
    "duplicate header": b"a,a\n1,2\n",
    "trailing comma in the header": b"a,b,\n1,2,3\n",
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_fast_path_reads_the_format_as_csv_reader_does(name: str) -> None:
    fast, reference = parse_both(ACCEPTED[name])
    assert fast is not None, "the fast path handed over a file it should read"
    assert_same(fast, reference)


# Files the fast path hands over (the reference parser reads them, or locates their error).
HANDED_OVER = {
    "nan": b"a,b\n1,nan\n",
    "inf": b"a,b\n1,-Infinity\n",
    "overflow": b"a,b\n1e400,1\n",
    "underscores": b"a,b\n1_000,2\n",
    "non-ASCII digits": "a,b\n\u0661,2\n".encode(),
    "quotes": b'a,b\n"1",2\n',
    "quoted comma": b'a,b\n"1,5",2\n',
    "lone cr": b"a,b\r1,2\r",
    "empty cell": b"a,b\n1,\n",
    "text cell": b"a,b\n1,x7\n",
    "ragged": b"a,b\n1,2\n3\n",
    "trailing comma": b"1,2,\n3,4\n",
    "semicolons": b"a;b\n1;2\n",
    "not utf-8": b"a,b\n1,\xff\n",
    "nul": b"a,b\n1,2\x00\n",
    "vertical tab line break": b"1,2\x0b3,4\n",
}


@pytest.mark.parametrize("name", sorted(HANDED_OVER))
def test_fast_path_hands_over_what_it_cannot_vouch_for(name: str, tmp_path) -> None:
    data = HANDED_OVER[name]
    fast, reference = parse_both(data)
    assert fast is None
    # read() gives what the reference parser gives: the same table or the same error
    (tmp_path / "d.csv").write_bytes(data)
    try:
        with data_files.read(tmp_path / "d.csv", "d.csv", None) as table:
            got = (table.header, table.values.tobytes(), table.lines.tolist(), table.problems)
    except DataError as e:
        got = str(e)
    if isinstance(reference, str):
        assert got == reference
    elif not isinstance(got, str):
        assert got == (reference[0], reference[3].tobytes(), reference[4].tolist(), reference[5])


def test_pieces_split_anywhere(monkeypatch) -> None:
    """Pieces a few bytes long cut the file everywhere: inside a line, a CRLF, a
    multi-byte character, the byte-order mark's neighbour, a run of blank lines."""
    data = b"\xef\xbb\xbf\r\n\xc3\xa9t\xc3\xa9,b\r\n\r\n1.5,2\r\n , \r\n-3e2,4\r\n5,6"
    for chunk in range(1, 12):
        monkeypatch.setattr(data_files, "CSV_CHUNK", chunk)
        fast, reference = parse_both(data)
        assert fast is not None
        assert_same(fast, reference)


def test_many_blank_lines_do_not_keep_their_room() -> None:
    fast, reference = parse_both(b"a,b\n" + b"\n" * 1000 + b"1,2\n")
    assert fast is not None and fast[3].shape == (1, 2)
    assert fast[3].base is None  # copied out of the room the blank lines took
    assert_same(fast, reference)


def test_limits_are_the_reference_parsers(monkeypatch, tmp_path) -> None:
    """Past the number limit the fast path hands over and the reference parser refuses
    with its message."""
    monkeypatch.setattr(data_files, "MAX_DATA_BYTES", 8 * 5)
    (tmp_path / "d.csv").write_bytes(b"1,2\n3,4\n5,6\n")
    assert data_files._parse_csv_fast(io.BytesIO(b"1,2\n3,4\n5,6\n")) is None
    with pytest.raises(DataError, match="d.csv holds more than 5 numbers"):
        data_files.read(tmp_path / "d.csv", "d.csv", None)


CELLS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.floats(-1e6, 1e6, allow_nan=False).map(lambda x: f"{x:.5f}"),
    st.integers(-(10**20), 10**20).map(str),
    st.sampled_from(["0", "-0", "+1", ".5", "5.", "1e5", "1E-5", " 7 ", "\t8"]),
)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.lists(CELLS, min_size=3, max_size=3), min_size=1, max_size=8),
    header=st.booleans(),
    newline=st.sampled_from(["\n", "\r\n"]),
    blanks=st.lists(st.sampled_from(["", " ", ",,", "\t,"]), max_size=4),
    final_newline=st.booleans(),
    chunk=st.integers(1, 64),
)
def test_random_numeric_tables_agree(
    rows: list[list[str]],
    header: bool,
    newline: str,
    blanks: list[str],
    final_newline: bool,
    chunk: int,
) -> None:
    lines = [",".join(r) for r in rows]
    for k, blank in enumerate(blanks):  # blank lines spread through the file
        lines.insert((k * 3) % (len(lines) + 1), blank)
    if header:
        lines.insert(0, "x, y ,z")
    data = (newline.join(lines) + (newline if final_newline else "")).encode()
    old = data_files.CSV_CHUNK
    data_files.CSV_CHUNK = chunk
    try:
        fast, reference = parse_both(data)
    finally:
        data_files.CSV_CHUNK = old
    assert fast is not None
    assert_same(fast, reference)
