"""KPL aggregates by an independent implementation (the PyPI package
aws-kinesis-agg), for triton-kpl's cross-check.

  kpl.py aggregate    stdin: user records, one per line:
                      partition key TAB explicit hash key or - TAB hex data
                      stdout: one aggregate per line, in hex
  kpl.py deaggregate  stdin: one Kinesis record per line, in hex
                      stdout: its user records, as above (a plain record
                      comes back as itself, with partition key "plain")
"""
import base64
import sys

from aws_kinesis_agg.aggregator import RecordAggregator
from aws_kinesis_agg.deaggregator import deaggregate_records


def aggregate():
    agg = RecordAggregator()
    out = []
    for line in sys.stdin:
        pk, ehk, data = line.rstrip("\n").split("\t")
        full = agg.add_user_record(pk, bytes.fromhex(data), None if ehk == "-" else ehk)
        if full is not None:
            out.append(full)
    last = agg.clear_and_get()
    if last is not None:
        out.append(last)
    for record in out:
        _, _, data = record.get_contents()
        print(data.hex())


def deaggregate():
    for line in sys.stdin:
        blob = bytes.fromhex(line.strip())
        outer = {
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "sequenceNumber": "1",
                "approximateArrivalTimestamp": 0,
                "partitionKey": "plain",
                "data": base64.b64encode(blob),
            }
        }
        for r in deaggregate_records([outer]):
            k = r["kinesis"]
            ehk = k.get("explicitHashKey") or "-"
            print(k["partitionKey"], ehk, base64.b64decode(k["data"]).hex(), sep="\t")


{"aggregate": aggregate, "deaggregate": deaggregate}[sys.argv[1]]()
