"""Checks Parquet written by `triton convert` with independent readers:
pyarrow reads every value, which must equal the record as `triton decode`
prints it (types included), and DuckDB counts rows per value of a column,
which must equal the counts in the JSON lines.

    parquet_check.py OUT.parquet RECORDS.jsonl GROUP_COLUMN
    parquet_check.py DEST_DIR RECORDS.jsonl GROUP_COLUMN [--sample N]

With a directory (a dataset of `convert --to`), its files are read in
path order (dt=, hour=, part-NNNNN: the order of the archives), must share
one schema, and DuckDB reads them with one glob and Hive partitioning; the
rows per partition are printed as a JSON line `partitions {...}` for the
caller to compare. --sample N compares every Nth row only (a big day; the
counts still cover every row).

Prints one summary line; exits non-zero naming the first difference.
"""

import base64
import glob
import json
import os
import math
import struct
import sys
from collections import Counter
from datetime import datetime

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq


def fail(msg):
    print(f"parquet_check: {msg}", file=sys.stderr)
    sys.exit(1)


def ns_of_rfc3339(text):
    """Nanoseconds since the epoch of triton's RFC 3339 UTC text."""
    whole, _, frac = text.rstrip("Z").partition(".")
    secs = int(datetime.fromisoformat(whole + "+00:00").timestamp())
    return secs * 1_000_000_000 + int((frac + "000000000")[:9])


def as_f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def special(x):
    """triton's JSON view writes NaN and infinities as strings."""
    if isinstance(x, float):
        if math.isnan(x):
            return "NaN"
        if math.isinf(x):
            return "+Inf" if x > 0 else "-Inf"
    return x


def same(ty, got, want, path):
    """`got` (pyarrow's value) against `want` (the JSON view's)."""
    if want is None:
        if got is not None:
            fail(f"{path}: {got!r} where the record has null or nothing")
        return
    if got is None:
        fail(f"{path}: null where the record has {want!r}")
    if pa.types.is_struct(ty):
        for i in range(ty.num_fields):
            f = ty.field(i)
            same(f.type, got.get(f.name), want.get(f.name), f"{path}.{f.name}")
        extra = set(want) - {ty.field(i).name for i in range(ty.num_fields)}
        if extra:
            fail(f"{path}: fields {sorted(extra)} missing from the struct")
    elif pa.types.is_list(ty):
        if len(got) != len(want):
            fail(f"{path}: {len(got)} items, the record has {len(want)}")
        for i, (g, w) in enumerate(zip(got, want)):
            same(ty.value_type, g, w, f"{path}[{i}]")
    elif pa.types.is_timestamp(ty):
        if got != ns_of_rfc3339(want):
            fail(f"{path}: {got} ns, the record has {want}")
    elif pa.types.is_binary(ty):
        w = base64.b64decode(want) if isinstance(want, str) else want
        if got != w and got.decode("utf-8", "replace") != want:
            fail(f"{path}: {got!r}, the record has {want!r}")
    elif pa.types.is_float32(ty):
        if special(got) != want and as_f32(float(want)) != got:
            fail(f"{path}: float32 {got!r}, the record has {want!r}")
    elif pa.types.is_floating(ty):
        if special(got) != want and float(want) != got:
            fail(f"{path}: {got!r}, the record has {want!r}")
    elif pa.types.is_integer(ty):
        if type(want) is not int or got != want:
            fail(f"{path}: {ty} {got!r}, the record has {want!r}")
    elif pa.types.is_string(ty):
        # A string column holds the string; a JSON text column the value's
        # JSON (a string value too, quoted).
        if got != want:
            try:
                parsed = json.loads(got)
            except ValueError:
                fail(f"{path}: {got!r}, the record has {want!r}")
            if parsed != want:
                fail(f"{path}: JSON {got!r}, the record has {want!r}")
    elif pa.types.is_boolean(ty):
        if got is not want:
            fail(f"{path}: {got!r}, the record has {want!r}")
    elif pa.types.is_null(ty):
        fail(f"{path}: a null column, the record has {want!r}")
    else:
        fail(f"{path}: unexpected column type {ty}")


def timestamps_as_ns(table):
    """Top-level timestamp columns as int64 nanoseconds (Python's datetime
    holds only microseconds)."""
    cols = []
    for i, f in enumerate(table.schema):
        col = table.column(i)
        if pa.types.is_timestamp(f.type):
            col = col.cast(pa.int64())
        cols.append(col)
    return pa.Table.from_arrays(cols, names=table.schema.names)


def read_dataset(root):
    """Every file under `root`, in path order, as one table (they must
    share a schema), and DuckDB's glob over them."""
    files = sorted(glob.glob(os.path.join(root, "**", "*.parquet"), recursive=True))
    if not files:
        fail(f"no Parquet files under {root}")
    tables = [pq.read_table(f) for f in files]
    for f, t in zip(files, tables):
        if t.schema != tables[0].schema:
            fail(f"{f}: another schema than {files[0]}")
    return pa.concat_tables(tables), os.path.join(root, "**", "*.parquet")


def main():
    parquet, jsonl, group = sys.argv[1:4]
    sample = 1
    if "--sample" in sys.argv:
        sample = int(sys.argv[sys.argv.index("--sample") + 1])
    dataset = os.path.isdir(parquet)
    if dataset:
        table, glob_path = read_dataset(parquet)
        source = f"read_parquet('{glob_path}', hive_partitioning = 1)"
    else:
        table = pq.read_table(parquet)
        source = f"read_parquet('{parquet}')"
    want = Counter()
    schema = table.schema
    rows = timestamps_as_ns(table)
    n = -1
    # Every row: Python values a chunk at a time (one slice per row is
    # ten times slower); a sample: only the rows compared.
    chunk, chunk_start = [], 0
    with open(jsonl, encoding="utf-8") as lines:
        for n, line in enumerate(lines):
            record = json.loads(line)
            want[record.get(group)] += 1
            if n % sample:
                continue
            if n >= rows.num_rows:
                fail(f"{rows.num_rows} rows, more records")
            if sample == 1:
                if n >= chunk_start + len(chunk):
                    chunk_start = n
                    chunk = rows.slice(n, 65536).to_pylist()
                row = chunk[n - chunk_start]
            else:
                row = rows.slice(n, 1).to_pylist()[0]
            extra = set(record) - set(schema.names)
            if extra:
                fail(f"row {n}: fields {sorted(extra)} have no column")
            for f in schema:
                same(f.type, row[f.name], record.get(f.name), f"row {n}: {f.name}")
    records = n + 1
    if table.num_rows != records:
        fail(f"{table.num_rows} rows, {records} records")
    got = dict(
        duckdb.sql(f"SELECT \"{group}\", count(*) FROM {source} GROUP BY 1").fetchall()
    )
    if got != dict(want):
        fail(f"DuckDB counts per {group}: {got}, the records: {dict(want)}")
    if dataset:
        # As the directories spell them (hour=07, not 7).
        raw = f"read_parquet('{glob_path}', hive_partitioning = 1, hive_types_autocast = 0)"
        columns = duckdb.sql(f"SELECT * FROM {raw} LIMIT 0").columns
        keys = [k for k in ("dt", "hour") if k in columns]
        path = " || '/' || ".join(f"'{k}=' || {k}" for k in keys)
        parts = duckdb.sql(
            f"SELECT {path}, count(*) FROM {raw} GROUP BY 1 ORDER BY 1"
        ).fetchall()
        print("partitions " + json.dumps(dict(parts)))
    types = Counter(str(f.type).split("<")[0] for f in schema)
    print(
        f"parquet_check: {records} rows, {len(schema)} columns "
        f"({', '.join(f'{k} {v}' for k, v in sorted(types.items()))}) match; "
        f"DuckDB: {len(got)} groups of {group} match"
    )


if __name__ == "__main__":
    main()
