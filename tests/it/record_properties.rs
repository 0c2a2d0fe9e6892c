//! Property tests of the recorder's message handling: any bytes, and any JSON value, never
//! make it panic, and a message is either one complete row or nothing.

use netpipe_fast::record::flatten::{flatten_message, Columns, Rows};
use netpipe_fast::record::unwrap_envelope;
use proptest::prelude::*;

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        "[a-z,\"\\n ]{0,8}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map("[a-z.]{0,4}", inner, 0..5)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A well-formed packet message's `data`: one to four layers, each an object of one to five
/// scalar fields (the shape the engine writes); every such message must give a row.
fn well_formed_data() -> impl Strategy<Value = serde_json::Value> {
    let scalar = prop_oneof![
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        "[a-z,\"\n ]{0,8}".prop_map(serde_json::Value::from),
    ];
    let layer = prop::collection::btree_map("[a-z_]{1,6}", scalar, 1..6)
        .prop_map(|m| serde_json::Value::Object(m.into_iter().collect()));
    prop::collection::btree_map("[a-z0-9]{1,6}", layer, 1..5)
        .prop_map(|m| serde_json::Value::Object(m.into_iter().collect()))
}

/// Feeds one message; it must add exactly one non-empty row or leave the rows untouched, and
/// when `well_formed` it must add the row.
fn check(bytes: &[u8], well_formed: bool, columns: &mut Columns, rows: &mut Rows) {
    let before = (rows.len(), rows.cells.len(), rows.text.len());
    let mut body = Vec::new();
    let outcome = match unwrap_envelope(bytes, &mut body) {
        Ok(payload) => flatten_message(payload, columns, rows).map(|_| ()),
        Err(e) => Err(format!("envelope: {e}")),
    };
    if well_formed {
        if let Err(e) = &outcome {
            panic!(
                "a well-formed message gave no row ({e}): {}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
    if outcome.is_ok() {
        assert_eq!(rows.len(), before.0 + 1);
        assert!(!rows.row(before.0).is_empty());
    } else {
        assert_eq!((rows.len(), rows.cells.len(), rows.text.len()), before);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_bytes_are_a_row_or_nothing(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let (mut columns, mut rows) = (Columns::default(), Rows::default());
        check(&bytes, false, &mut columns, &mut rows);
    }

    #[test]
    fn any_json_data_is_a_row_or_nothing(data in json_value(), envelope in any::<bool>()) {
        let msg = serde_json::json!({ "data": data, "created": "x" }).to_string();
        let bytes = if envelope {
            serde_json::json!({ "body": msg, "content-type": "application/json" })
                .to_string()
                .into_bytes()
        } else {
            msg.into_bytes()
        };
        let (mut columns, mut rows) = (Columns::default(), Rows::default());
        check(&bytes, false, &mut columns, &mut rows);
        check(&bytes, false, &mut columns, &mut rows);
    }

    #[test]
    fn every_well_formed_message_is_a_row(data in well_formed_data(), envelope in any::<bool>()) {
        let msg = serde_json::json!({ "data": data, "created": "x" }).to_string();
        let bytes = if envelope {
            serde_json::json!({ "body": msg, "content-type": "application/json" })
                .to_string()
                .into_bytes()
        } else {
            msg.into_bytes()
        };
        let (mut columns, mut rows) = (Columns::default(), Rows::default());
        check(&bytes, true, &mut columns, &mut rows);
        check(&bytes, true, &mut columns, &mut rows);
        prop_assert_eq!(rows.len(), 2);
    }
}
