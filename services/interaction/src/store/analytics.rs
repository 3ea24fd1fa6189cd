//! Contact analytics, computed by the database on both backends (window functions and
//! correlated subqueries that SQLite and PostgreSQL both run).
//!
//! A *contact* is an inbound interaction. Definitions:
//! - contact reasons: inbound interactions in the window by channel and reason;
//! - repeat contacts: a contact that carries a reason is *repeated* when the same customer
//!   (timeline, so merged profiles count as one) makes another inbound contact for the same
//!   reason, on any channel, after it and at most `repeat window` later (the follow-up may fall
//!   after the window's end);
//! - channel switches: each contact in the window paired with the customer's next contact
//!   (any channel, ties broken by id) when that one follows within the switch window.

use sea_orm::ConnectionTrait;
use throughline_proto::common::v1::Direction;
use throughline_proto::interaction::v1::{
    ChannelTransition, ContactReasonCount, RepeatContactGroup,
};
use throughline_runtime::Error;

use super::INTERACTIONS;
use crate::sql::Sql;

const INBOUND: i32 = Direction::Inbound as i32;

fn share(part: i64, whole: i64) -> f64 {
    if whole > 0 {
        part as f64 / whole as f64
    } else {
        0.0
    }
}

/// Top reasons per channel (most frequent first, at most `limit` each) and the total contacts.
pub(crate) async fn contact_reasons<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    from_us: i64,
    until_us: i64,
    channels: &[i32],
    limit: i64,
) -> Result<(Vec<ContactReasonCount>, i64), Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(
        "SELECT channel, reason, contacts, channel_total FROM (\
           SELECT channel, reason, contacts, \
             CAST(SUM(contacts) OVER (PARTITION BY channel) AS BIGINT) AS channel_total, \
             ROW_NUMBER() OVER (PARTITION BY channel ORDER BY contacts DESC, reason) AS position \
           FROM (SELECT channel, reason, COUNT(*) AS contacts FROM ",
    )
    .push(INTERACTIONS)
    .push(" WHERE tenant = ")
    .bind(tenant)
    .push(" AND direction = ")
    .bind(INBOUND)
    .push(" AND occur_us >= ")
    .bind(from_us)
    .push(" AND occur_us < ")
    .bind(until_us);
    if !channels.is_empty() {
        sql.push(" AND channel IN ")
            .bind_list(channels.iter().copied());
    }
    sql.push(" GROUP BY channel, reason) AS counted) AS ranked WHERE position <= ")
        .bind(limit)
        .push(" ORDER BY channel, contacts DESC, reason");
    let rows = db.query_all_raw(sql.statement()).await?;
    let mut reasons = Vec::with_capacity(rows.len());
    let mut total = 0;
    let mut last_channel = None;
    for row in rows {
        let channel: i32 = row.try_get("", "channel")?;
        let contacts: i64 = row.try_get("", "contacts")?;
        let channel_total: i64 = row.try_get("", "channel_total")?;
        if last_channel != Some(channel) {
            total += channel_total;
            last_channel = Some(channel);
        }
        reasons.push(ContactReasonCount {
            channel,
            reason: row.try_get("", "reason")?,
            count: contacts,
            share: share(contacts, channel_total),
        });
    }
    Ok((reasons, total))
}

/// Repeat contacts by reason and channel of the first contact, most repeats first.
pub(crate) async fn repeat_contacts<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    from_us: i64,
    until_us: i64,
    window_us: i64,
    channels: &[i32],
    reason: &str,
) -> Result<Vec<RepeatContactGroup>, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(
        "SELECT c.reason AS reason, c.channel AS channel, COUNT(*) AS contacts, \
           CAST(SUM(CASE WHEN EXISTS (SELECT 1 FROM ",
    )
    .push(INTERACTIONS)
    .push(
        " AS n WHERE n.timeline_key = c.timeline_key AND n.tenant = c.tenant \
           AND n.timeline = c.timeline \
           AND n.direction = c.direction AND n.reason = c.reason \
           AND (n.occur_us > c.occur_us OR (n.occur_us = c.occur_us AND n.id > c.id)) \
           AND n.occur_us <= c.occur_us + ",
    )
    .bind(window_us)
    .push(") THEN 1 ELSE 0 END) AS BIGINT) AS repeats FROM ")
    .push(INTERACTIONS)
    .push(" AS c WHERE c.tenant = ")
    .bind(tenant)
    .push(" AND c.direction = ")
    .bind(INBOUND)
    .push(" AND c.reason <> '' AND c.occur_us >= ")
    .bind(from_us)
    .push(" AND c.occur_us < ")
    .bind(until_us);
    if !channels.is_empty() {
        sql.push(" AND c.channel IN ")
            .bind_list(channels.iter().copied());
    }
    if !reason.is_empty() {
        sql.push(" AND c.reason = ").bind(reason);
    }
    sql.push(" GROUP BY c.reason, c.channel ORDER BY repeats DESC, contacts DESC, reason, channel");
    let rows = db.query_all_raw(sql.statement()).await?;
    rows.iter()
        .map(|row| {
            let contacts: i64 = row.try_get("", "contacts")?;
            let repeats: i64 = row.try_get("", "repeats")?;
            Ok(RepeatContactGroup {
                reason: row.try_get("", "reason")?,
                channel: row.try_get("", "channel")?,
                contacts,
                repeats,
                rate: share(repeats, contacts),
            })
        })
        .collect()
}

/// Transitions from each contact's channel to the customer's next contact's, highest first.
pub(crate) async fn channel_switches<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    from_us: i64,
    until_us: i64,
    window_us: i64,
    from_channels: &[i32],
) -> Result<Vec<ChannelTransition>, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(
        "SELECT from_channel, to_channel, COUNT(*) AS transitions FROM (\
           SELECT channel AS from_channel, occur_us, \
             LEAD(channel) OVER (PARTITION BY timeline ORDER BY occur_us, id) AS to_channel, \
             LEAD(occur_us) OVER (PARTITION BY timeline ORDER BY occur_us, id) AS next_us \
           FROM ",
    )
    .push(INTERACTIONS)
    .push(" WHERE tenant = ")
    .bind(tenant)
    .push(" AND direction = ")
    .bind(INBOUND)
    .push(" AND occur_us >= ")
    .bind(from_us)
    // The next contact of one late in the window may fall after its end.
    .push(" AND occur_us < ")
    .bind(until_us.saturating_add(window_us))
    .push(") AS paired WHERE occur_us < ")
    .bind(until_us)
    .push(" AND to_channel IS NOT NULL AND next_us - occur_us <= ")
    .bind(window_us);
    if !from_channels.is_empty() {
        sql.push(" AND from_channel IN ")
            .bind_list(from_channels.iter().copied());
    }
    sql.push(" GROUP BY from_channel, to_channel");
    let rows = db.query_all_raw(sql.statement()).await?;
    let mut transitions = Vec::with_capacity(rows.len());
    for row in rows {
        transitions.push(ChannelTransition {
            from_channel: row.try_get("", "from_channel")?,
            to_channel: row.try_get("", "to_channel")?,
            count: row.try_get("", "transitions")?,
            share: 0.0,
        });
    }
    let mut totals = std::collections::HashMap::new();
    for transition in &transitions {
        *totals.entry(transition.from_channel).or_insert(0) += transition.count;
    }
    for transition in &mut transitions {
        transition.share = share(transition.count, totals[&transition.from_channel]);
    }
    transitions.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(a.from_channel.cmp(&b.from_channel))
            .then(a.to_channel.cmp(&b.to_channel))
    });
    Ok(transitions)
}
