//! JSON ⇄ CEL values. Instances keep their variables, triggers and profiles as JSON; CEL
//! sees objects as maps, arrays as lists, and numbers as ints when integral (so `3` from a
//! `Struct`, stored as `3.0`, compares equal to the literal `3`), otherwise doubles.

use std::collections::HashMap;
use std::sync::Arc;

use cel::Value;
use cel::objects::Key;

// 2^63 as f64: integral doubles in [-2^63, 2^63) convert to i64 exactly.
const I64_BOUND: f64 = 9_223_372_036_854_775_808.0;

/// JSON as a CEL value.
pub(crate) fn to_cel(value: &serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => number(n),
        serde_json::Value::String(s) => Value::String(Arc::new(s.clone())),
        serde_json::Value::Array(items) => {
            Value::List(Arc::new(items.iter().map(to_cel).collect()))
        }
        serde_json::Value::Object(map) => {
            let map: HashMap<Key, Value> = map
                .iter()
                .map(|(key, value)| (Key::String(Arc::new(key.clone())), to_cel(value)))
                .collect();
            Value::Map(map.into())
        }
    }
}

fn number(n: &serde_json::Number) -> Value {
    if let Some(i) = n.as_i64() {
        return Value::Int(i);
    }
    let f = n.as_f64().unwrap_or(f64::NAN);
    if f.fract() == 0.0 && (-I64_BOUND..I64_BOUND).contains(&f) {
        #[allow(clippy::cast_possible_truncation)]
        return Value::Int(f as i64);
    }
    Value::Float(f)
}

/// `now` and other instants: a CEL timestamp in UTC.
pub(crate) fn timestamp(us: i64) -> Value {
    let time = chrono::DateTime::from_timestamp_micros(us).unwrap_or_default();
    Value::Timestamp(time.fixed_offset())
}

/// A CEL value as JSON, or why it has none (functions, bytes and opaque values).
pub(crate) fn to_json(value: &Value) -> Result<serde_json::Value, String> {
    Ok(match value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Int(i) => serde_json::Value::from(*i),
        Value::UInt(u) => serde_json::Value::from(*u),
        // NaN and infinities have no JSON form.
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        Value::String(s) => serde_json::Value::String(s.to_string()),
        Value::List(items) => {
            serde_json::Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?)
        }
        Value::Map(map) => {
            let mut object = serde_json::Map::new();
            for (key, value) in map.map.iter() {
                let key = match key {
                    Key::String(s) => s.to_string(),
                    Key::Int(i) => i.to_string(),
                    Key::Uint(u) => u.to_string(),
                    Key::Bool(b) => b.to_string(),
                };
                object.insert(key, to_json(value)?);
            }
            serde_json::Value::Object(object)
        }
        Value::Timestamp(time) => serde_json::Value::String(
            time.to_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        ),
        // The protobuf JSON form of a Duration.
        Value::Duration(duration) => {
            let seconds = duration.num_milliseconds() as f64 / 1000.0;
            serde_json::Value::String(format!("{seconds}s"))
        }
        other => return Err(format!("a {} has no JSON form", other.type_of())),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn round_trips_json() {
        let document = json!({
            "name": "Ada",
            "age": 36,
            "ratio": 0.5,
            "tags": ["a", null, true],
            "nested": {"empty": {}, "list": []},
        });
        assert_eq!(to_json(&to_cel(&document)), Ok(document));
    }

    #[test]
    fn integral_doubles_are_ints() {
        assert_eq!(to_cel(&json!(3.0)), Value::Int(3));
        assert_eq!(to_cel(&json!(2.5)), Value::Float(2.5));
        assert_eq!(to_cel(&json!(u64::MAX)), Value::Float(u64::MAX as f64));
    }

    #[test]
    fn timestamps_and_durations() {
        assert_eq!(
            to_json(&timestamp(1_700_000_000_000_000)),
            Ok(json!("2023-11-14T22:13:20Z"))
        );
        assert_eq!(
            to_json(&Value::Duration(chrono::Duration::seconds(90))),
            Ok(json!("90s"))
        );
        assert!(to_json(&Value::Bytes(Arc::new(vec![1]))).is_err());
        assert_eq!(
            to_json(&Value::Float(f64::NAN)),
            Ok(serde_json::Value::Null)
        );
    }
}
