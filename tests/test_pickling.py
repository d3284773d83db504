"""The records that cross between the flow and its worker processes pickle back unchanged."""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from broadsheet.pickling import pickled_by_fields
from broadsheet.pipeline import Batch, BatchFiles, BatchResult
from broadsheet.read_inputs import InputFile
from broadsheet.resolve import READ_PLAN_COLUMNS
from broadsheet.rows import RejectRow
from schemas import FILE_FACTS_SCHEMA

texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    ["", "a\r\nb", "\"quoted\" 'path'", "emoji 📰 path.md", "\x00nul"]
)
optional_texts = st.none() | texts
big_ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
input_files = st.builds(InputFile, texts, big_ints, big_ints)
file_facts = st.tuples(
    optional_texts,
    st.booleans(),
    optional_texts,
    st.none() | big_ints,
    optional_texts,
    st.none() | st.integers(1, 9999),
    st.none() | st.integers(1, 12),
)
reject_rows = st.builds(RejectRow, texts, optional_texts, texts, texts)


def round_trip(value: object) -> object:
    return pickle.loads(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))


@given(st.lists(st.tuples(input_files, optional_texts), max_size=5), st.integers(0, 10))
def test_batch_pickles_back_equal(files: list[tuple[InputFile, str | None]], index: int) -> None:
    batch = Batch(index, tuple(files), index + 1)
    copy = round_trip(batch)
    assert copy == batch
    assert all(type(copied) is InputFile for copied, _ in copy.files)


def read_plan(files: list[tuple[InputFile, str | None]]) -> pa.Table:
    """A read plan's columns (``READ_PLAN_COLUMNS``) for ``files``."""
    columns = [
        [file.path for file, _ in files],
        [file.size for file, _ in files],
        [file.mtime_ns for file, _ in files],
        [known for _, known in files],
        ["article_written"] * len(files),
        [None] * len(files),
    ]
    types = [pa.string(), pa.int64(), pa.int64(), pa.string(), pa.string(), pa.string()]
    return pa.table(
        [pa.array(values, kind) for values, kind in zip(columns, types, strict=True)],
        names=list(READ_PLAN_COLUMNS),
    )


@given(
    st.lists(st.tuples(input_files, optional_texts), max_size=8),
    st.integers(0, 8),
    st.integers(0, 8),
)
def test_batch_files_read_and_pickle_as_their_slice_of_the_plan(
    files: list[tuple[InputFile, str | None]], start: int, length: int
) -> None:
    expected = tuple(files[start : start + length])
    batch_files = BatchFiles(read_plan(files).slice(start, length))
    assert len(batch_files) == len(expected)
    assert tuple(batch_files) == expected
    assert batch_files[: len(expected) // 2] == expected[: len(expected) // 2]
    copy = round_trip(Batch(3, batch_files, 4, after_crash=True))
    assert isinstance(copy, Batch)
    assert isinstance(copy.files, BatchFiles)
    assert copy == Batch(3, expected, 4, after_crash=True)
    assert all(type(copied) is InputFile for copied, _ in copy.files)


def test_a_pickled_batch_carries_its_own_rows_not_its_waves() -> None:
    file = (InputFile("/archive/feed/2024/article.md", 2048, 1_700_000_000 * 10**9), None)
    small_wave, large_wave = read_plan([file] * 10), read_plan([file] * 20_000)
    pickled_small = pickle.dumps(BatchFiles(small_wave.slice(4, 3)))
    pickled_large = pickle.dumps(BatchFiles(large_wave.slice(15_000, 3)))
    assert len(pickled_large) == len(pickled_small) < 2_000


@given(st.lists(file_facts, max_size=5), st.lists(reject_rows, max_size=3), optional_texts)
def test_batch_result_pickles_back_equal(
    files: list[tuple[object, ...]], rejects: list[RejectRow], staged: str | None
) -> None:
    facts = pa.RecordBatch.from_pylist(
        [dict(zip(FILE_FACTS_SCHEMA.names, row, strict=True)) for row in files],
        schema=FILE_FACTS_SCHEMA,
    )
    result = BatchResult(facts, tuple(rejects), staged, ((2024, 2),))
    copy = round_trip(result)
    assert copy == result
    assert copy.facts.to_pylist() == facts.to_pylist()


def test_pickled_by_fields_uses_the_constructor() -> None:
    calls: list[tuple[int, str]] = []

    @pickled_by_fields
    @dataclass(frozen=True, slots=True)
    class Pair:
        number: int
        name: str

        def __post_init__(self) -> None:
            calls.append((self.number, self.name))

    assert Pair(1, "x").__reduce__() == (Pair, (1, "x"))
    assert calls == [(1, "x")]


def test_pickled_by_fields_refuses_what_the_constructor_cannot_rebuild() -> None:
    @dataclass
    class Derived:
        number: int
        doubled: int = field(init=False, default=0)

    @dataclass
    class Single:
        number: int

    with pytest.raises(TypeError, match="Derived: needs two or more fields"):
        pickled_by_fields(Derived)
    with pytest.raises(TypeError, match="Single: needs two or more fields"):
        pickled_by_fields(Single)
