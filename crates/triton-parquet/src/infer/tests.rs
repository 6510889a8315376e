use triton_core::archive::ArchiveReader;
use triton_core::value::{Record, Str, Timestamp, Value};

use super::*;

fn record(fields: Vec<(&str, Value)>) -> Record {
    let mut r = Record::new();
    for (k, v) in fields {
        r.push(k, v);
    }
    r
}

fn schema_of(records: &[Record]) -> Schema {
    let mut inference = Inference::new();
    for r in records {
        inference.add(r);
    }
    inference.schema()
}

fn ty(schema: &Schema, name: &str) -> ColumnType {
    schema
        .fields
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no field {name} in {schema:?}"))
        .ty
        .clone()
}

fn is_json(t: &ColumnType) -> bool {
    matches!(t, ColumnType::Json { .. })
}

#[test]
fn integers_widen_to_the_type_that_holds_them_all() {
    let s = schema_of(&[
        record(vec![
            ("signed", Value::Int(-5)),
            ("unsigned", Value::UInt(7)),
            ("both_small", Value::Int(3)),
            ("big", Value::Int(1)),
            ("clash", Value::Int(-1)),
        ]),
        record(vec![
            ("signed", Value::Int(i64::MAX)),
            ("unsigned", Value::UInt(u64::MAX)),
            ("both_small", Value::UInt(200)),
            ("big", Value::UInt(u64::MAX)),
            ("clash", Value::UInt(u64::MAX)),
        ]),
    ]);
    assert_eq!(ty(&s, "signed"), ColumnType::Int64);
    assert_eq!(ty(&s, "unsigned"), ColumnType::UInt64);
    assert_eq!(ty(&s, "both_small"), ColumnType::Int64);
    assert_eq!(ty(&s, "big"), ColumnType::UInt64);
    assert!(is_json(&ty(&s, "clash")));
}

#[test]
fn floats_and_integers() {
    let s = schema_of(&[
        record(vec![
            ("f32", Value::F32(1.5)),
            ("f64", Value::F32(1.5)),
            ("mixed", Value::F64(0.5)),
            ("huge", Value::F64(0.5)),
        ]),
        record(vec![
            ("f32", Value::F32(2.5)),
            ("f64", Value::F64(2.5)),
            ("mixed", Value::Int(1 << 53)),
            ("huge", Value::Int((1 << 53) + 1)),
        ]),
    ]);
    assert_eq!(ty(&s, "f32"), ColumnType::Float32);
    assert_eq!(ty(&s, "f64"), ColumnType::Float64);
    assert_eq!(ty(&s, "mixed"), ColumnType::Float64);
    assert!(is_json(&ty(&s, "huge")), "rounding it would mangle it");
}

#[test]
fn absent_and_nil_fields_are_nullable_and_conflicts_are_json() {
    let s = schema_of(&[
        record(vec![("a", Value::Str("x".into())), ("n", Value::Nil)]),
        record(vec![
            ("a", Value::Nil),
            ("b", Value::Int(1)),
            ("n", Value::Nil),
        ]),
        record(vec![("b", Value::Str("one".into()))]),
    ]);
    let a = &s.fields[0];
    assert_eq!(
        (a.name.as_str(), &a.ty, a.nullable),
        ("a", &ColumnType::Utf8, true)
    );
    assert_eq!(ty(&s, "n"), ColumnType::Null);
    assert!(is_json(&ty(&s, "b")));
    let report = s.json_columns();
    assert_eq!(report.len(), 1);
    assert_eq!(report[0].0, "b");
    assert!(report[0].1.contains("number, str"), "{}", report[0].1);
}

#[test]
fn strings_bytes_timestamps_and_extensions() {
    let s = schema_of(&[record(vec![
        ("s", Value::Str("ok".into())),
        ("bad_utf8", Value::Str(Str::from_bytes(&[0xff, 0xfe]))),
        ("b", Value::Bin(vec![0, 1])),
        (
            "t",
            Value::Timestamp(Timestamp::new(1_607_673_168, 123_456_789)),
        ),
        (
            "go_zero",
            Value::Timestamp(Timestamp::new(-62_135_596_800, 0)),
        ),
        ("ext", Value::Ext(7, vec![1])),
    ])]);
    assert_eq!(ty(&s, "s"), ColumnType::Utf8);
    assert_eq!(ty(&s, "bad_utf8"), ColumnType::Binary);
    assert_eq!(ty(&s, "b"), ColumnType::Binary);
    assert_eq!(ty(&s, "t"), ColumnType::TimestampNanos);
    assert!(
        is_json(&ty(&s, "go_zero")),
        "year 1 is not in nanoseconds' range"
    );
    assert!(is_json(&ty(&s, "ext")));
}

#[test]
fn nested_maps_become_structs_and_arrays_lists() {
    let inner = |v: Value| Value::Map(vec![(Value::Str("x".into()), v)]);
    let s = schema_of(&[
        record(vec![
            ("m", inner(Value::Int(1))),
            ("empty", Value::Map(Vec::new())),
            ("l", Value::Array(vec![Value::Int(1), Value::Int(2)])),
            ("none", Value::Array(Vec::new())),
            ("intkeys", Value::Map(vec![(Value::Int(1), Value::Nil)])),
        ]),
        record(vec![(
            "m",
            Value::Map(vec![(Value::Str("y".into()), Value::Bool(true))]),
        )]),
    ]);
    let ColumnType::Struct { fields } = ty(&s, "m") else {
        panic!("{s:?}")
    };
    assert_eq!(
        fields,
        vec![
            Field {
                name: "x".into(),
                ty: ColumnType::Int64,
                nullable: true
            },
            Field {
                name: "y".into(),
                ty: ColumnType::Bool,
                nullable: true
            },
        ]
    );
    assert!(is_json(&ty(&s, "empty")));
    assert_eq!(
        ty(&s, "l"),
        ColumnType::List {
            item: Box::new(ColumnType::Int64)
        }
    );
    assert_eq!(
        ty(&s, "none"),
        ColumnType::List {
            item: Box::new(ColumnType::Null)
        }
    );
    assert!(is_json(&ty(&s, "intkeys")));
}

/// go-triton's small.tri, every type it writes: the awkward cases come out
/// as documented.
#[test]
fn go_tritons_fixture() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/data/go-triton/small.tri"
    );
    let mut reader = ArchiveReader::new(std::fs::File::open(path).unwrap());
    let mut inference = Inference::new();
    while let Some(r) = reader.next_record().unwrap() {
        inference.add(&r);
    }
    let s = inference.schema();
    // Each record holds other fields under the same names ("s" is a string
    // in several, "m" a map of other shapes): the shared ones resolve over
    // all of them.
    assert_eq!(ty(&s, "kind"), ColumnType::Utf8);
    assert_eq!(ty(&s, "min64"), ColumnType::Int64);
    assert_eq!(ty(&s, "u64_max"), ColumnType::UInt64);
    assert_eq!(
        ty(&s, "u_fix"),
        ColumnType::Int64,
        "go-triton writes int 5 as a fixint"
    );
    assert_eq!(ty(&s, "f32_max"), ColumnType::Float32);
    assert_eq!(ty(&s, "f64_tiny"), ColumnType::Float64);
    assert_eq!(ty(&s, "t_utc"), ColumnType::TimestampNanos);
    assert_eq!(ty(&s, "t_pre_epoch"), ColumnType::TimestampNanos);
    assert_eq!(ty(&s, ""), ColumnType::Utf8, "the empty key is a column");
    // "mixed" holds ints, a string, a float, a bool, nil and a list.
    let ColumnType::List { item } = ty(&s, "mixed") else {
        panic!("{s:?}")
    };
    assert!(is_json(&item));
    // "m": a struct in one record, a struct of strings in another, and
    // nested_map's "empty" is only ever an empty map.
    let ColumnType::Struct { fields } = ty(&s, "m") else {
        panic!("{s:?}")
    };
    let empty = fields.iter().find(|f| f.name == "empty").unwrap();
    assert!(is_json(&empty.ty));
    assert!(
        s.fields.iter().all(|f| f.nullable || f.name == "kind"),
        "only kind is in every record"
    );
    assert!(inference.records() > 20);
}

/// The schema as JSON (what `triton schema` will print and `--schema`
/// read) says each column's type by name and reads back the same.
#[test]
fn the_schema_round_trips_as_json() {
    let s = schema_of(&[record(vec![
        ("n", Value::UInt(1)),
        (
            "m",
            Value::Map(vec![(Value::Str("x".into()), Value::F32(1.0))]),
        ),
        ("l", Value::Array(vec![Value::Str("a".into())])),
        ("j", Value::Map(Vec::new())),
    ])]);
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(
        json["fields"][0],
        serde_json::json!({"name": "n", "type": "uint64", "nullable": false})
    );
    assert_eq!(json["fields"][1]["fields"][0]["type"], "float32");
    assert_eq!(json["fields"][2]["item"]["type"], "utf8");
    assert_eq!(json["fields"][3]["type"], "json");
    let back: Schema = serde_json::from_value(json).unwrap();
    assert_eq!(back, s);
}
