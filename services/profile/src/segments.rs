//! Segments: CEL rules over a profile, and the membership they imply, kept up to date when a
//! profile changes (`refresh`) and computed for every profile when a rule is set (`backfill`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use cel::{Context, Env, ExecutionError, Program, Value};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use throughline_proto::common::v1::attribute_value::Kind;
use throughline_proto::common::v1::{AttributeValue, Channel, IdentifierType};
use throughline_proto::event::v1::{SegmentEntered, SegmentExited};
use throughline_proto::profile::v1::{Profile, ProfileState};

use crate::error::Result;
use crate::events;
use crate::identity::Key;
use crate::store::{self, SEGMENTS, member, profile, segment};

fn env() -> Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(Env::stdlib())).clone()
}

/// Compiles a rule, or says why it is not one: a syntax error, a name other than `profile`,
/// or a result that is not a bool (found by a trial run on an empty profile).
pub fn compile(rule: &str) -> std::result::Result<Program, String> {
    if rule.trim().is_empty() {
        return Err("required: a CEL expression over `profile`".into());
    }
    if rule.len() > 4096 {
        return Err("at most 4096 bytes".into());
    }
    let program = env()
        .compile(rule)
        .map_err(|e| format!("not a valid CEL expression: {e}"))?;
    match run(&program, &value(&Profile::default(), &[])) {
        Ok(Value::Bool(_)) => Ok(program),
        Ok(other) => Err(format!(
            "must evaluate to a bool, not {:?}",
            other.type_of()
        )),
        Err(ExecutionError::UndeclaredReference(name)) => Err(format!(
            "unknown name `{name}`: rules read the variable `profile`"
        )),
        Err(ExecutionError::NoSuchOverload(_) | ExecutionError::FunctionError { .. }) => {
            Err("calls a function that does not exist or with wrong arguments".into())
        }
        // An attribute missing from the empty trial profile, for example: fine.
        Err(_) => Ok(program),
    }
}

fn run(program: &Program, profile: &Value) -> std::result::Result<Value, ExecutionError> {
    let mut context = Context::with_env(env());
    context.add_variable_from_value("profile", profile.clone());
    program.execute(&context)
}

/// Whether the rule holds; an evaluation error (such as a missing attribute) means no.
pub fn matches(program: &Program, profile: &Value) -> bool {
    matches!(run(program, profile), Ok(Value::Bool(true)))
}

/// The `profile` variable of rules and list filters.
pub fn value(profile: &Profile, identifiers: &[Key]) -> Value {
    let mut map: HashMap<String, Value> = HashMap::new();
    let text = |s: &str| Value::from(s.to_owned());
    map.insert("name".into(), text(&profile.name));
    map.insert(
        "state".into(),
        text(
            ProfileState::try_from(profile.state)
                .unwrap_or(ProfileState::Unspecified)
                .as_str_name(),
        ),
    );
    for (key, field) in [
        ("given_name", &profile.given_name),
        ("family_name", &profile.family_name),
        ("email", &profile.email),
        ("phone", &profile.phone),
    ] {
        map.insert(key.into(), text(field));
    }
    let attributes: HashMap<String, Value> = profile
        .attributes
        .iter()
        .map(|(key, value)| (key.clone(), attribute(value)))
        .collect();
    map.insert("attributes".into(), attributes.into());
    let identifiers: Vec<Value> = identifiers
        .iter()
        .map(|key| {
            let mut id: HashMap<String, Value> = HashMap::new();
            id.insert(
                "type".into(),
                text(
                    IdentifierType::try_from(key.kind)
                        .unwrap_or(IdentifierType::Unspecified)
                        .as_str_name(),
                ),
            );
            id.insert("value".into(), text(&key.value));
            id.insert("source".into(), text(&key.source));
            Value::from(id)
        })
        .collect();
    map.insert("identifiers".into(), identifiers.into());
    let preferences = profile.preferences.clone().unwrap_or_default();
    let mut prefs: HashMap<String, Value> = HashMap::new();
    prefs.insert("language".into(), text(&preferences.language));
    prefs.insert("time_zone".into(), text(&preferences.time_zone));
    let ranking: Vec<Value> = preferences
        .channel_ranking
        .iter()
        .map(|c| {
            text(
                Channel::try_from(*c)
                    .unwrap_or(Channel::Unspecified)
                    .as_str_name(),
            )
        })
        .collect();
    prefs.insert("channel_ranking".into(), ranking.into());
    map.insert("preferences".into(), prefs.into());
    map.into()
}

fn attribute(value: &AttributeValue) -> Value {
    match &value.kind {
        Some(Kind::StringValue(s)) => Value::from(s.clone()),
        Some(Kind::NumberValue(n)) => Value::Float(*n),
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::TimestampValue(t)) => {
            chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0))
                .map_or(Value::Null, |time| Value::Timestamp(time.fixed_offset()))
        }
        Some(Kind::ListValue(list)) => {
            Value::from(list.values.iter().map(attribute).collect::<Vec<_>>())
        }
        None => Value::Null,
    }
}

/// Compiled rules by (tenant, segment, version): a rule compiles once per version.
#[derive(Debug, Clone, Default)]
pub struct Cache(Arc<Mutex<HashMap<RuleKey, Arc<Program>>>>);

/// (tenant, segment id, segment version)
type RuleKey = (String, String, i64);

impl Cache {
    pub fn program(&self, row: &segment::Model) -> Option<Arc<Program>> {
        let key = (row.tenant.clone(), row.id.clone(), row.version);
        if let Ok(cache) = self.0.lock()
            && let Some(program) = cache.get(&key)
        {
            return Some(program.clone());
        }
        // A stored rule compiled when it was set; one that no longer does matches nobody.
        let program = Arc::new(compile(&row.rule).ok()?);
        if let Ok(mut cache) = self.0.lock() {
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(key, program.clone());
        }
        Some(program)
    }
}

pub async fn tenant_segments<C: ConnectionTrait>(
    c: &C,
    tenant: &str,
) -> Result<Vec<segment::Model>> {
    Ok(segment::Entity::find()
        .filter(segment::Column::Tenant.eq(tenant))
        .all(c)
        .await?)
}

/// Brings a profile's memberships in line with its current data (`None`: it is no longer
/// active, so it belongs to no segment), emitting `segment.entered` / `segment.exited`.
pub async fn refresh<C: ConnectionTrait>(
    c: &C,
    cache: &Cache,
    tenant: &str,
    profile_id: &str,
    current: Option<(&Profile, &[Key])>,
) -> Result<()> {
    let wanted: BTreeSet<String> = match current {
        None => BTreeSet::new(),
        Some((profile, identifiers)) => {
            let value = value(profile, identifiers);
            tenant_segments(c, tenant)
                .await?
                .iter()
                .filter(|row| cache.program(row).is_some_and(|p| matches(&p, &value)))
                .map(|row| row.id.clone())
                .collect()
        }
    };
    let held: BTreeSet<String> = store::segments_of(c, tenant, profile_id)
        .await?
        .into_iter()
        .map(|m| m.segment_id)
        .collect();
    for segment_id in wanted.difference(&held) {
        enter(c, tenant, segment_id, profile_id, store::now_us()).await?;
    }
    for segment_id in held.difference(&wanted) {
        exit(c, tenant, segment_id, profile_id).await?;
    }
    Ok(())
}

async fn enter<C: ConnectionTrait>(
    c: &C,
    tenant: &str,
    segment_id: &str,
    profile_id: &str,
    now: i64,
) -> Result<()> {
    member::Entity::insert(member::ActiveModel {
        tenant: sea_orm::Set(tenant.to_owned()),
        segment_id: sea_orm::Set(segment_id.to_owned()),
        profile_id: sea_orm::Set(profile_id.to_owned()),
        enter_us: sea_orm::Set(now),
    })
    .exec(c)
    .await?;
    events::segment_entered(
        c,
        tenant,
        profile_id,
        SegmentEntered {
            segment: format!("{SEGMENTS}{segment_id}"),
            profile: store::profile_name(profile_id),
        },
    )
    .await
}

async fn exit<C: ConnectionTrait>(
    c: &C,
    tenant: &str,
    segment_id: &str,
    profile_id: &str,
) -> Result<()> {
    member::Entity::delete_many()
        .filter(member::Column::Tenant.eq(tenant))
        .filter(member::Column::SegmentId.eq(segment_id))
        .filter(member::Column::ProfileId.eq(profile_id))
        .exec(c)
        .await?;
    events::segment_exited(
        c,
        tenant,
        profile_id,
        SegmentExited {
            segment: format!("{SEGMENTS}{segment_id}"),
            profile: store::profile_name(profile_id),
        },
    )
    .await
}

/// Evaluates every active profile of the tenant against a segment's rule and adds or removes
/// members accordingly, a page of profiles at a time.
pub async fn backfill<C: ConnectionTrait>(
    c: &C,
    tenant: &str,
    segment_id: &str,
    program: &Program,
) -> Result<u64> {
    const PAGE: u64 = 500;
    let held: BTreeSet<String> = member::Entity::find()
        .filter(member::Column::Tenant.eq(tenant))
        .filter(member::Column::SegmentId.eq(segment_id))
        .all(c)
        .await?
        .into_iter()
        .map(|m| m.profile_id)
        .collect();
    let mut members = 0;
    let mut after = String::new();
    loop {
        let rows = profile::Entity::find()
            .filter(profile::Column::Tenant.eq(tenant))
            .filter(profile::Column::State.eq(ProfileState::Active as i32))
            .filter(profile::Column::Id.gt(&after))
            .order_by_asc(profile::Column::Id)
            .limit(PAGE)
            .all(c)
            .await?;
        let Some(last) = rows.last() else { break };
        after = last.id.clone();
        let identifiers = identifiers_of(c, tenant, rows.iter().map(|r| r.id.clone())).await?;
        let now = store::now_us();
        for row in &rows {
            let mut data = store::decode_data(&row.data)?;
            data.name = store::profile_name(&row.id);
            data.state = row.state;
            let keys = identifiers.get(&row.id).map(Vec::as_slice).unwrap_or(&[]);
            let member = matches(program, &value(&data, keys));
            match (member, held.contains(&row.id)) {
                (true, false) => enter(c, tenant, segment_id, &row.id, now).await?,
                (false, true) => exit(c, tenant, segment_id, &row.id).await?,
                _ => {}
            }
            members += u64::from(member);
        }
        if (rows.len() as u64) < PAGE {
            break;
        }
    }
    Ok(members)
}

/// The identifiers of several profiles in one query.
pub async fn identifiers_of<C: ConnectionTrait>(
    c: &C,
    tenant: &str,
    ids: impl IntoIterator<Item = String>,
) -> Result<BTreeMap<String, Vec<Key>>> {
    let ids: Vec<String> = ids.into_iter().collect();
    let rows = store::identifier::Entity::find()
        .filter(store::identifier::Column::Tenant.eq(tenant))
        .filter(store::identifier::Column::ProfileId.is_in(ids))
        .all(c)
        .await?;
    let mut by_profile: BTreeMap<String, Vec<Key>> = BTreeMap::new();
    for row in rows {
        by_profile.entry(row.profile_id).or_default().push(Key {
            kind: row.kind,
            source: row.source,
            value: row.value,
        });
    }
    Ok(by_profile)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use throughline_proto::common::v1::AttributeList;
    use throughline_proto::profile::v1::Preferences;

    use super::*;

    fn number(n: f64) -> AttributeValue {
        AttributeValue {
            kind: Some(Kind::NumberValue(n)),
        }
    }

    fn profile() -> Value {
        let profile = Profile {
            email: "ada@example.com".into(),
            attributes: [
                ("lifetime_value".to_owned(), number(1500.0)),
                (
                    "categories".to_owned(),
                    AttributeValue {
                        kind: Some(Kind::ListValue(AttributeList {
                            values: vec![AttributeValue {
                                kind: Some(Kind::StringValue("shoes".into())),
                            }],
                        })),
                    },
                ),
            ]
            .into(),
            preferences: Some(Preferences {
                channel_ranking: vec![Channel::Sms as i32],
                ..Default::default()
            }),
            ..Default::default()
        };
        let keys = [Key {
            kind: IdentifierType::Email as i32,
            source: String::new(),
            value: "ada@example.com".into(),
        }];
        value(&profile, &keys)
    }

    #[test]
    fn rules_see_typed_attributes_and_enum_names() {
        for (rule, expected) in [
            ("profile.attributes.lifetime_value > 1000.0", true),
            ("profile.attributes.lifetime_value > 2000.0", false),
            ("profile.attributes.lifetime_value > 1000", true),
            (
                r#""CHANNEL_SMS" in profile.preferences.channel_ranking"#,
                true,
            ),
            (r#""shoes" in profile.attributes.categories"#, true),
            (
                r#"profile.identifiers.exists(i, i.type == "IDENTIFIER_TYPE_EMAIL")"#,
                true,
            ),
            (r#"profile.email.endsWith("@example.com")"#, true),
            // A missing attribute is not an error of the rule: the profile is not a member.
            ("profile.attributes.missing == 1.0", false),
            (r#"has(profile.attributes.missing)"#, false),
        ] {
            let program = compile(rule).unwrap_or_else(|e| panic!("{rule}: {e}"));
            assert_eq!(matches(&program, &profile()), expected, "{rule}");
        }
    }

    #[test]
    fn bad_rules_are_refused() {
        for rule in [
            "",
            "profile.attributes.x >",
            "customer.tier == 'gold'",
            "profile.email",
            "nosuchfunction(profile)",
        ] {
            assert!(compile(rule).is_err(), "{rule}");
        }
    }
}
