use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Int64Type, TimestampNanosecondType, UInt64Type};
use arrow_array::Array;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use triton_core::archive::ArchiveReader;

use super::*;
use crate::Inference;

fn small() -> Vec<Record> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/data/go-triton/small.tri"
    );
    let mut reader = ArchiveReader::new(std::fs::File::open(path).unwrap());
    let mut out = Vec::new();
    while let Some(r) = reader.next_record().unwrap() {
        out.push(r);
    }
    out
}

fn row_of(records: &[Record], kind: &str) -> usize {
    records
        .iter()
        .position(
            |r| matches!(r.get("kind"), Some(Value::Str(s)) if s.as_bytes() == kind.as_bytes()),
        )
        .unwrap()
}

/// go-triton's small.tri through the inferred schema into Parquet (two
/// row groups), read back with the parquet crate's own reader: types and
/// values as the records hold them.
#[test]
fn small_tri_round_trips_through_parquet() {
    let records = small();
    let mut inference = Inference::new();
    records.iter().for_each(|r| inference.add(r));
    let schema = inference.schema();
    for codec in [Codec::Snappy, Codec::Zstd] {
        let mut writer = ParquetWriter::new(Vec::new(), schema.clone(), codec).unwrap();
        let (a, b) = records.split_at(records.len() / 2);
        writer.write(a).unwrap();
        writer.write(b).unwrap();
        let bytes = bytes::Bytes::from(writer.finish().unwrap());
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        let all = arrow_select::concat::concat_batches(&batches[0].schema(), &batches).unwrap();
        assert_eq!(all.num_rows(), records.len());
        let ints = row_of(&records, "ints");
        let min64 = all
            .column_by_name("min64")
            .unwrap()
            .as_primitive::<Int64Type>();
        assert_eq!(min64.value(ints), i64::MIN);
        assert!(min64.is_null(0), "absent elsewhere");
        let uints = row_of(&records, "uints");
        let umax = all
            .column_by_name("u64_max")
            .unwrap()
            .as_primitive::<UInt64Type>();
        assert_eq!(umax.value(uints), u64::MAX);
        let floats = row_of(&records, "floats");
        let f32s = all
            .column_by_name("f32")
            .unwrap()
            .as_primitive::<Float32Type>();
        assert_eq!(
            f32s.value(floats).to_bits(),
            0x4048_f5c3,
            "go-triton's float32 3.14"
        );
        let time = row_of(&records, "time");
        let t = all
            .column_by_name("t_utc")
            .unwrap()
            .as_primitive::<TimestampNanosecondType>();
        assert_eq!(t.value(time), 1_607_673_168_123_456_789);
        let binary = row_of(&records, "binary");
        let b = all.column_by_name("b").unwrap().as_binary::<i32>();
        assert_eq!(b.value(binary), [0, 1, 2, 0xff]);
        // The nested map, and its only-empty map as JSON text.
        let nested = row_of(&records, "nested_map");
        let m = all.column_by_name("m").unwrap().as_struct();
        let empty = m.column_by_name("empty").unwrap().as_string::<i32>();
        assert_eq!(empty.value(nested), "{}");
        let a = m.column_by_name("a").unwrap().as_primitive::<Int64Type>();
        assert_eq!(a.value(nested), 1);
    }
}

/// A schema given by hand that a record does not fit: the error names the
/// record and the field.
#[test]
fn a_value_that_does_not_fit_a_pinned_schema_is_named() {
    let schema = Schema {
        fields: vec![Field {
            name: "n".into(),
            ty: ColumnType::Int64,
            nullable: true,
        }],
    };
    let mut ok = Record::new();
    ok.push("n", Value::Int(1));
    let mut bad = Record::new();
    bad.push("n", Value::Str("one".into()));
    let err = batch(&schema, &[ok, bad]).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("record 1") && text.contains("field n") && text.contains("str"),
        "{text}"
    );
}

/// A schema given by hand without a field some record has, at the top or
/// nested: refused with the field's path and the record's place, never
/// dropped; an inferred schema's writer does not check.
#[test]
fn a_field_a_pinned_schema_lacks_is_refused_not_dropped() {
    let schema = Schema {
        fields: vec![Field {
            name: "m".into(),
            ty: ColumnType::Struct {
                fields: vec![Field {
                    name: "a".into(),
                    ty: ColumnType::Int64,
                    nullable: true,
                }],
            },
            nullable: true,
        }],
    };
    let map = |keys: &[&str]| {
        let mut r = Record::new();
        r.push(
            "m",
            Value::Map(
                keys.iter()
                    .map(|k| (Value::Str((*k).into()), Value::Int(1)))
                    .collect(),
            ),
        );
        r
    };
    let mut top = map(&["a"]);
    top.push("extra", Value::Bool(true));
    for (records, path) in [
        (vec![map(&["a"]), map(&["a", "b"])], "m.b"),
        (vec![map(&["a"]), top], "extra"),
    ] {
        let err = check_fields(&schema, &records).unwrap_err();
        assert!(
            matches!(&err, WriteError::Unknown { record: 1, path: p, .. } if p == path),
            "{err}"
        );
        let located = err
            .locate(|i| ("20241030/s-c-1.tri".into(), 40 + i))
            .to_string();
        assert!(
            located.starts_with("20241030/s-c-1.tri record 41: field ") && located.contains(path),
            "{located}"
        );
        let mut strict = ParquetWriter::new(Vec::new(), schema.clone(), Codec::Snappy)
            .unwrap()
            .reject_unknown_fields(true);
        assert!(strict.write(&records).is_err());
        let mut lenient = ParquetWriter::new(Vec::new(), schema.clone(), Codec::Snappy).unwrap();
        lenient.write(&records).unwrap();
    }
}

/// A bad value inside a list names its record, not its place among the
/// batch's list items.
#[test]
fn a_bad_list_item_names_its_record() {
    let schema = Schema {
        fields: vec![Field {
            name: "tags".into(),
            ty: ColumnType::List {
                item: Box::new(ColumnType::Int64),
            },
            nullable: true,
        }],
    };
    let row = |items: Vec<Value>| {
        let mut r = Record::new();
        r.push("tags", Value::Array(items));
        r
    };
    let records = [
        row(vec![Value::Int(1), Value::Int(2)]),
        row(vec![]),
        row(vec![Value::Int(3), Value::Int(4), Value::Str("x".into())]),
    ];
    let err = batch(&schema, &records).unwrap_err();
    assert!(
        matches!(err, WriteError::Mismatch { record: 2, .. }),
        "{err}"
    );
}
