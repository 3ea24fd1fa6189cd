//! `google.protobuf.Struct` ⇄ JSON, for the fields (template variables, exported documents)
//! that carry free-form data.

use std::collections::BTreeMap;

use prost_types::value::Kind;
use serde_json::Value;

/// A `Struct` as a JSON object.
pub fn struct_to_json(value: &prost_types::Struct) -> Value {
    Value::Object(
        value
            .fields
            .iter()
            .map(|(key, value)| (key.clone(), value_to_json(value)))
            .collect(),
    )
}

/// A protobuf `Value` as JSON. A number with no fraction that fits an `i64` becomes an integer
/// (Struct numbers are doubles, so `3` arrives as `3.0`); NaN and infinities, which JSON
/// cannot carry, become null, as does a `Value` with no kind.
pub fn value_to_json(value: &prost_types::Value) -> Value {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::NumberValue(n)) => number_to_json(*n),
        Some(Kind::StringValue(s)) => Value::String(s.clone()),
        Some(Kind::ListValue(list)) => {
            Value::Array(list.values.iter().map(value_to_json).collect())
        }
        Some(Kind::StructValue(s)) => struct_to_json(s),
    }
}

// 2^63 as f64: integral doubles in [-2^63, 2^63) convert exactly.
const I64_BOUND: f64 = 9_223_372_036_854_775_808.0;

fn number_to_json(n: f64) -> Value {
    if n.fract() == 0.0 && (-I64_BOUND..I64_BOUND).contains(&n) {
        #[allow(clippy::cast_possible_truncation)]
        return Value::from(n as i64);
    }
    serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
}

/// A JSON object as a `Struct`; anything other than an object gives an empty `Struct`.
pub fn json_to_struct(value: Value) -> prost_types::Struct {
    match json_to_value(value).kind {
        Some(Kind::StructValue(s)) => s,
        _ => prost_types::Struct::default(),
    }
}

/// JSON as a protobuf `Value`; numbers become doubles.
pub fn json_to_value(value: Value) -> prost_types::Value {
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        Value::String(s) => Kind::StringValue(s),
        Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.into_iter().map(json_to_value).collect(),
        }),
        Value::Object(map) => Kind::StructValue(prost_types::Struct {
            fields: map
                .into_iter()
                .map(|(k, v)| (k, json_to_value(v)))
                .collect::<BTreeMap<_, _>>(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn round_trips() {
        let document = json!({
            "name": "Ada",
            "age": 36,
            "ratio": 0.5,
            "tags": ["a", null, true],
            "nested": {"empty": {}},
        });
        assert_eq!(struct_to_json(&json_to_struct(document.clone())), document);
    }

    #[test]
    fn odd_values() {
        assert_eq!(
            json_to_struct(json!([1, 2])),
            prost_types::Struct::default()
        );
        assert_eq!(number_to_json(f64::NAN), Value::Null);
        assert_eq!(number_to_json(1e300), json!(1e300));
        assert_eq!(
            value_to_json(&prost_types::Value { kind: None }),
            Value::Null
        );
    }
}
