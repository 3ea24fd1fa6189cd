//! Identity resolution: the one profile a set of identifiers belongs to.
//!
//! Rules, applied in this order so that the same inputs always give the same result:
//! 1. No profile holds any identifier: a profile is created holding them all.
//! 2. One profile holds some: the others are added to it.
//! 3. Several hold them: they merge into one target, chosen as the first of: a *known*
//!    profile (holding any identifier other than cookie ids) before an anonymous one; one
//!    holding a CRM id; the oldest; the smallest id. Anonymous profiles always merge into the
//!    target; two known profiles merge only when `auto_merge_known_profiles` is on.
//! 4. Never, whatever the options: a merge that would leave one profile with two different
//!    ids of the same CRM. That is an `IDENTITY_CONFLICT` the caller sees.
//!
//! Concurrency: on PostgreSQL each call takes a transaction-scoped advisory lock per
//! identifier (in a fixed order), so calls sharing an identifier take turns; the unique key on
//! identifiers is the backstop, and a call that loses a race is retried from the start.

use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
use throughline_proto::profile::v1::{MergeTrigger, Profile, ProfileState, ResolutionOutcome};
use tonic::Code;

use crate::Service;
use crate::error::{Error, Result, reason};
use crate::identity::Key;
use crate::merge::{self, Cause};
use crate::store::{self, profile};
use crate::writes;

/// What a resolution did.
#[derive(Debug)]
pub struct Resolved {
    pub row: profile::Model,
    pub outcome: ResolutionOutcome,
    pub merge_events: Vec<String>,
}

/// Serialises, on PostgreSQL, the calls that touch any of `keys` until the transaction ends.
pub async fn lock_identifiers<C: ConnectionTrait>(c: &C, tenant: &str, keys: &[Key]) -> Result<()> {
    if !store::is_postgres(c) {
        return Ok(());
    }
    let mut texts: Vec<String> = keys
        .iter()
        .map(|k| format!("{tenant}\u{1f}{}", k.lock_text()))
        .collect();
    texts.sort();
    texts.dedup();
    for text in texts {
        c.execute_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            [text.into()],
        ))
        .await?;
    }
    Ok(())
}

/// The order in which profiles are preferred as the target of a merge (smallest first).
fn rank(row: &profile::Model, keys: &[Key]) -> (bool, bool, i64, String) {
    let known = keys.iter().any(Key::is_known);
    let crm = keys.iter().any(Key::is_crm);
    (!known, !crm, row.created_us, row.id.clone())
}

/// Resolves `keys` to one profile (see the module's rules). `initial` is the data of a
/// profile created by the call.
#[allow(clippy::too_many_arguments)]
pub async fn resolve<C: ConnectionTrait>(
    c: &C,
    service: &Service,
    tenant: &str,
    keys: &[Key],
    lookup_only: bool,
    cause: &Cause,
    initial: &Profile,
) -> Result<Resolved> {
    if !lookup_only {
        lock_identifiers(c, tenant, keys).await?;
    }
    let holders = store::holders(c, tenant, keys).await?;
    let mut ids: Vec<String> = holders.values().cloned().collect();
    ids.sort();
    ids.dedup();

    if ids.is_empty() {
        if lookup_only {
            return Err(Error::not_found("a profile holding these identifiers"));
        }
        let requested: Vec<&Key> = keys.iter().collect();
        merge::check_crm_conflict(&requested, &[])?;
        let row = writes::create(c, service, tenant, initial, keys).await?;
        return Ok(Resolved {
            row,
            outcome: ResolutionOutcome::Created,
            merge_events: Vec::new(),
        });
    }

    // Lock the holders (in id order), then make sure nothing moved meanwhile.
    let mut rows = Vec::new();
    for id in &ids {
        let row = if lookup_only {
            store::find_profile(c, tenant, id).await?
        } else {
            store::lock_profile(c, tenant, id).await?
        };
        match row {
            Some(row) if row.state == ProfileState::Active as i32 => rows.push(row),
            _ => return Err(Error::contention()),
        }
    }
    if !lookup_only && store::holders(c, tenant, keys).await? != holders {
        return Err(Error::contention());
    }

    if rows.len() > 1 && lookup_only {
        return Err(conflict("the identifiers belong to several profiles", &ids));
    }
    let mut held = Vec::new();
    for row in &rows {
        held.push(store::identifiers(c, tenant, &row.id).await?);
    }
    let missing: Vec<Key> = keys
        .iter()
        .filter(|k| !holders.contains_key(*k))
        .cloned()
        .collect();
    if lookup_only {
        let row = rows.remove(0);
        return Ok(Resolved {
            row,
            outcome: ResolutionOutcome::Matched,
            merge_events: Vec::new(),
        });
    }
    let everything: Vec<&Key> = held.iter().flatten().chain(missing.iter()).collect();
    merge::check_crm_conflict(&everything, &ids)?;

    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| rank(&rows[i], &held[i]));
    let target_index = order[0];
    let known = held.iter().filter(|k| k.iter().any(Key::is_known)).count();
    if known > 1 && !service.options().auto_merge_known_profiles {
        return Err(conflict(
            "the identifiers belong to several known profiles and automatic merging of known profiles is off",
            &ids,
        ));
    }
    let mut target = rows[target_index].clone();
    let mut merge_events = Vec::new();
    for &i in order.iter().skip(1) {
        let source = &rows[i];
        let rule = if held[i].iter().any(Key::is_known) {
            "shared-identifier"
        } else {
            "anonymous-into-known"
        };
        let cause = Cause {
            trigger: cause.trigger,
            actor: format!("rule:{rule}"),
            reason: if cause.reason.is_empty() {
                format!("{} by {}", default_reason(cause.trigger), cause.actor)
            } else {
                cause.reason.clone()
            },
        };
        let event = merge::merge(c, service, source, &target, &cause).await?;
        merge_events.push(event.name);
        target = store::require_profile(c, tenant, &target.id, false).await?;
    }

    let total = store::identifiers(c, tenant, &target.id).await?.len() + missing.len();
    if total > service.options().max_identifiers {
        return Err(Error::precondition(
            reason::LIMIT_REACHED,
            format!(
                "a profile holds at most {} identifiers",
                service.options().max_identifiers
            ),
        ));
    }
    if !missing.is_empty() {
        store::add_identifiers(c, tenant, &target.id, &missing).await?;
        target = store::save_profile(c, &target, &store::decode_data(&target.data)?).await?;
        writes::changed(c, service, &target, vec!["identifiers".to_owned()]).await?;
    }
    let outcome = if !merge_events.is_empty() {
        ResolutionOutcome::Merged
    } else if !missing.is_empty() {
        ResolutionOutcome::Extended
    } else {
        ResolutionOutcome::Matched
    };
    Ok(Resolved {
        row: target,
        outcome,
        merge_events,
    })
}

fn default_reason(trigger: MergeTrigger) -> &'static str {
    match trigger {
        MergeTrigger::Upsert => "CRM upsert",
        _ => "identity resolution",
    }
}

fn conflict(message: &str, ids: &[String]) -> Error {
    Error::detailed(
        Code::FailedPrecondition,
        reason::IDENTITY_CONFLICT,
        message,
        vec![(
            "profiles",
            ids.iter()
                .map(|p| store::profile_name(p))
                .collect::<Vec<_>>()
                .join(","),
        )],
    )
}
