use proptest::prelude::*;
use serde_json::json;

use super::*;

fn scope() -> Scope {
    Scope {
        profile: json!({"given_name": "Ada", "attributes": {"tier": "gold", "orders": 3.0}}),
        trigger: json!({"type": "interaction.recorded", "data": {"attributes": {"total": 42.5}}}),
        vars: json!({"coupon": "SAVE10", "count": 2}),
        now_us: 1_700_000_000_000_000,
        event: Some(json!({"type": "order.placed", "data": {"total": 10}})),
        interactions: Some(json!([
            {"type": "order.placed", "channel": "CHANNEL_WEB", "occur_time": "2023-11-14T20:00:00Z", "attributes": {}}
        ])),
    }
}

#[test]
fn expression_is_send_and_sync() {
    fn assert<T: Send + Sync>() {}
    assert::<Expression>();
    assert::<Arc<Expression>>();
}

#[test]
fn conditions_evaluate() {
    let s = scope();
    let yes = |source: &str, kind: Kind| compile(source, kind).and_then(|e| e.is_true(&s));
    assert_eq!(
        yes("profile.attributes.tier == 'gold'", Kind::Condition),
        Ok(true)
    );
    assert_eq!(
        yes("profile.attributes.orders >= 3", Kind::Condition),
        Ok(true)
    );
    assert_eq!(yes("vars.count + 1 == 3", Kind::Condition), Ok(true));
    assert_eq!(
        yes("trigger.data.attributes.total > 40.0", Kind::Condition),
        Ok(true)
    );
    assert_eq!(yes("event.data.total < 5", Kind::EventCondition), Ok(false));
    assert_eq!(
        yes(
            "interactions.exists(i, i.type == 'order.placed')",
            Kind::Suppression
        ),
        Ok(true)
    );
    assert_eq!(
        yes(
            "now > timestamp('2023-01-01T00:00:00Z') && has(vars.coupon)",
            Kind::Condition
        ),
        Ok(true)
    );
}

#[test]
fn missing_keys_are_errors() {
    let expression = compile("vars.missing == 1", Kind::Condition).unwrap();
    assert!(expression.is_true(&scope()).is_err());
    // Without an event in scope, an event condition cannot be evaluated.
    let expression = compile("event.type == 'x'", Kind::EventCondition).unwrap();
    let mut s = scope();
    s.event = None;
    assert!(expression.is_true(&s).is_err());
}

#[test]
fn values_evaluate_to_json() {
    let s = scope();
    let value = |source: &str| compile(source, Kind::Value).and_then(|e| e.value(&s));
    assert_eq!(value("vars.coupon"), Ok(json!("SAVE10")));
    assert_eq!(value("vars.count * 2"), Ok(json!(4)));
    assert_eq!(
        value("[1, 'a', {'k': true}]"),
        Ok(json!([1, "a", {"k": true}]))
    );
    assert_eq!(value("now"), Ok(json!("2023-11-14T22:13:20Z")));
    assert_eq!(value("profile.given_name + '!'"), Ok(json!("Ada!")));
}

#[test]
fn compile_errors_describe_the_problem() {
    let error = |source: &str, kind: Kind| compile(source, kind).err().unwrap_or_default();
    assert!(error("", Kind::Condition).starts_with("required"));
    assert!(error("   ", Kind::Value).starts_with("required"));
    assert!(error("vars.a ==", Kind::Condition).starts_with("not a valid CEL expression"));
    let unknown = error("foo.bar == 1", Kind::Condition);
    assert!(unknown.contains("`foo`"), "{unknown}");
    assert!(
        unknown.contains("`profile`, `trigger`, `vars`, `now`"),
        "{unknown}"
    );
    assert!(error("event.type == 'x'", Kind::Condition).contains("`event`"));
    assert!(error("size(interactions) > 0", Kind::EventCondition).contains("`interactions`"));
    assert!(error("1 + 2", Kind::Condition).contains("bool"));
    assert!(error("'a'", Kind::Suppression).contains("bool"));
    assert!(error("nosuchfunction(1) == 1", Kind::Condition).contains("nosuchfunction"));
    assert!(error(&"a".repeat(5000), Kind::Value).contains("4096"));
    // Comprehension variables are not unknown names.
    assert!(compile("[1, 2].all(x, x > 0)", Kind::Condition).is_ok());
    assert!(compile("vars.items.map(item, item.price)", Kind::Value).is_ok());
    assert!(compile("type(vars.count) == int", Kind::Condition).is_ok());
    // A missing key on the trial run is no compile error.
    assert!(compile("profile.attributes.vip", Kind::Condition).is_ok());
}

#[test]
fn compiled_programs_are_cached() {
    let first = compile("vars.count == 2", Kind::Condition).unwrap();
    let second = compile("vars.count == 2", Kind::Condition).unwrap();
    assert!(Arc::ptr_eq(&first, &second));
    let value = compile("vars.count == 2", Kind::Value).unwrap();
    assert!(!Arc::ptr_eq(&first, &value));
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        "[a-z]{0,8}".prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::btree_map("[a-z]{1,4}", inner, 0..6)
                .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
        ]
    })
}

/// Expressions made of the pieces journeys use, so that many of them compile and run.
fn expression_source() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        Just("vars".to_owned()),
        Just("profile".to_owned()),
        Just("trigger".to_owned()),
        Just("now".to_owned()),
        "vars\\.[a-z]{1,4}",
        "profile\\.[a-z]{1,4}",
        any::<i64>().prop_map(|i| i.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        "'[a-z]{0,4}'",
        Just("true".to_owned()),
        Just("null".to_owned()),
        Just("duration('1h')".to_owned()),
    ];
    atom.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            (
                inner.clone(),
                prop::sample::select(vec![
                    "+", "-", "*", "/", "%", "==", "!=", "<", ">=", "&&", "||", "in"
                ]),
                inner.clone()
            )
                .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            inner.clone().prop_map(|a| format!("size({a})")),
            inner.clone().prop_map(|a| format!("!{a}")),
            inner.clone().prop_map(|a| format!("[{a}, 1]")),
            inner.clone().prop_map(|a| format!("{a}.exists(x, x == 1)")),
            inner.prop_map(|a| format!("has({a}.k)")),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_expressions_never_panic(
        source in expression_source(),
        vars in json_value(),
        profile in json_value(),
    ) {
        let s = Scope { vars, profile, ..scope() };
        for kind in [Kind::Condition, Kind::Value, Kind::Suppression, Kind::EventCondition] {
            if let Ok(expression) = compile(&source, kind) {
                let _ = expression.is_true(&s);
                let _ = expression.value(&s);
            }
        }
    }

    #[test]
    fn arbitrary_strings_never_panic(source in "\\PC{0,64}") {
        for kind in [Kind::Condition, Kind::Value] {
            if let Ok(expression) = compile(&source, kind) {
                let _ = expression.value(&scope());
            }
        }
    }

    #[test]
    fn json_survives_cel(value in json_value()) {
        let s = Scope { vars: value.clone(), ..scope() };
        let back = compile("vars", Kind::Value).and_then(|e| e.value(&s));
        prop_assert!(back.is_ok());
    }
}
