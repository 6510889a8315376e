#!/usr/bin/env python3
"""Decode a .tri archive with Python libraries only, as our Python services do.

Usage: tri_dump.py FILE.tri [--raw-out PATH]

The Rust tests run this on files our writer made, to prove they are readable
without any of our own code: cramjam does the Snappy framing (stream header,
chunk types, masked CRC-32C checks, several streams concatenated) and msgpack
decodes the records. Exit 0 on success; exit 1 with a message on stderr for a
corrupt or truncated file, a record that is not a map, or a non-str map key.

stdout gets one JSON line per record (sort_keys, ensure_ascii=False), in a
canonical view that the Rust tests can build from their own values too:
  map -> object (keys must be str)   array -> array        str -> string
  bin -> {"$bin": "<hex>"}           int -> number         bool -> true/false
  nil -> null                        float -> number if finite (Python repr),
                                              else {"$float": "NaN"|"inf"|"-inf"}
  ext (any type, incl. the timestamp ext -1) -> {"$ext": [type, "<hex>"]}
  str that is not valid UTF-8 -> {"$badstr": "<hex of its bytes>"}, and as a
                                 map key: "$badstr:<hex of its bytes>"
Hex is lowercase. float32 is widened to a Python float by msgpack.
msgpack always turns ext -1 into a Timestamp, so it is printed from
Timestamp.to_bytes(): an ext -1 not in the spec's shortest form comes out in
that form, and an invalid one (bad length, nanoseconds > 999999999) fails.
"""

import argparse
import json
import math
import sys

import cramjam
import msgpack


class DumpError(Exception):
    pass


def text(s):
    """A str decoded with surrogateescape: as is if it was valid UTF-8."""
    try:
        s.encode("utf-8")
        return s, None
    except UnicodeEncodeError:
        return None, s.encode("utf-8", "surrogateescape").hex()


def canon(v, path="record"):
    # Order matters: bool is an int, and ExtType is a tuple.
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        if math.isfinite(v):
            return v
        return {"$float": "NaN" if math.isnan(v) else ("inf" if v > 0 else "-inf")}
    if isinstance(v, str):
        s, bad = text(v)
        return s if bad is None else {"$badstr": bad}
    if isinstance(v, bytes):
        return {"$bin": v.hex()}
    if isinstance(v, msgpack.ExtType):
        return {"$ext": [v.code, v.data.hex()]}
    if isinstance(v, msgpack.Timestamp):
        return {"$ext": [-1, v.to_bytes().hex()]}
    if isinstance(v, list):
        return [canon(x, f"{path}[{i}]") for i, x in enumerate(v)]
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            if not isinstance(k, str):
                raise DumpError(f"{path}: map key {k!r} is not a str")
            s, bad = text(k)
            key = s if bad is None else "$badstr:" + bad
            out[key] = canon(x, f"{path}.{key}")
        return out
    raise DumpError(f"{path}: unexpected decoded type {type(v).__name__}")


def dump(path, raw_out):
    with open(path, "rb") as f:
        framed = f.read()
    # cramjam.snappy.decompress is the *framing format* decoder (the raw block
    # format is decompress_raw). It requires the stream identifier first,
    # checks every chunk's CRC, and reads concatenated streams in sequence.
    try:
        data = bytes(cramjam.snappy.decompress(framed))
    except Exception as e:  # cramjam.DecompressionError, mostly
        raise DumpError(f"snappy framing: {e}") from e
    if raw_out:
        with open(raw_out, "wb") as f:
            f.write(data)

    unpacker = msgpack.Unpacker(
        raw=False,  # str -> str, bin -> bytes
        strict_map_key=False,  # let any key through; canon() rejects non-str
        unicode_errors="surrogateescape",  # keep invalid UTF-8 recoverable
        ext_hook=msgpack.ExtType,  # ext (other than -1) stays ExtType
        timestamp=0,  # ext -1 -> msgpack.Timestamp, whatever its value
        max_buffer_size=max(len(data), 1),  # whole file in one buffer
    )
    unpacker.feed(data)
    out = sys.stdout.buffer
    n = end = 0
    try:
        for record in unpacker:
            end = unpacker.tell()
            if not isinstance(record, dict):
                raise DumpError(
                    f"record {n} ending at byte {end}: "
                    f"not a map but {type(record).__name__}"
                )
            line = json.dumps(
                canon(record, f"record {n}"),
                sort_keys=True,
                ensure_ascii=False,
                allow_nan=False,
            )
            out.write(line.encode("utf-8") + b"\n")
            n += 1
    except DumpError:
        raise
    except Exception as e:  # msgpack's errors: bad bytes, limits, bad ext -1
        raise DumpError(f"record {n}: msgpack: {type(e).__name__}: {e}") from e
    # The iterator stops quietly when the data ends inside a record (and
    # tell() then counts the partial record too, so use the last good end).
    if end != len(data):
        raise DumpError(
            f"record {n}: data ends mid-record "
            f"(records fill {end} of {len(data)} bytes)"
        )
    out.flush()
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--raw-out", help="also write the decompressed bytes here")
    args = ap.parse_args()
    try:
        dump(args.file, args.raw_out)
    except (DumpError, OSError) as e:
        sys.stdout.flush()
        print(f"tri_dump: {args.file}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
