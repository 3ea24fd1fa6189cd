//! The events the service emits, written through the transaction that makes the change.
//!
//! Recording appends one `interaction.recorded` per new interaction. A batch of a thousand
//! goes to the outbox as one multi-row insert with one commit notification rather than a
//! thousand single appends; the rows are exactly those `runtime::events::Outbox::append`
//! writes (same table, columns and encoding), so the event log reads them alike.

use prost::Message;
use sea_orm::{ConnectionTrait, DbBackend};
use serde::Serialize;
use throughline_proto::event::v1::Event;
use throughline_runtime::Error;
use throughline_runtime::events::Outbox;

use crate::NAME;
use crate::sql::{Sql, bytea_hex};

const OUTBOX_TABLE: &str = "interaction_outbox";
/// The channel `runtime::events` listens on for this service's commits (PostgreSQL).
const NOTIFY_CHANNEL: &str = "throughline_events_interaction";

/// An event of this service about `subject` (a profile, or empty), carrying `payload`, a
/// message of `throughline.event.v1` named `payload_name`.
pub(crate) fn event<M: Message>(
    tenant: &str,
    event_type: &str,
    subject: &str,
    payload_name: &str,
    payload: &M,
) -> Event {
    let now = chrono::Utc::now();
    Event {
        id: uuid::Uuid::now_v7().to_string(),
        source: NAME.to_owned(),
        spec_version: "1.0".to_owned(),
        r#type: event_type.to_owned(),
        subject: subject.to_owned(),
        time: Some(prost_types::Timestamp {
            seconds: now.timestamp(),
            nanos: i32::try_from(now.timestamp_subsec_nanos()).unwrap_or(0),
        }),
        data_content_type: "application/protobuf".to_owned(),
        data: Some(prost_types::Any {
            type_url: format!("type.googleapis.com/throughline.event.v1.{payload_name}"),
            value: payload.encode_to_vec(),
        }),
        tenant: tenant.to_owned(),
        traceparent: String::new(),
    }
}

/// Appends one event (threads' events, one at a time).
pub(crate) async fn append<C: ConnectionTrait>(db: &C, event: &Event) -> Result<(), Error> {
    Outbox::new(NAME).append(db, event).await
}

/// An outbox row as `json_populate_recordset` reads it.
#[derive(Serialize)]
struct JsonRow<'a> {
    event_id: &'a str,
    tenant: &'a str,
    event_type: &'a str,
    subject: &'a str,
    recorded_at: &'a str,
    event: String,
}

/// Appends many events in one statement and one commit notification (on PostgreSQL the rows
/// travel as one JSON parameter, as recorded interactions do).
pub(crate) async fn append_all<C: ConnectionTrait>(db: &C, events: &[Event]) -> Result<(), Error> {
    if events.is_empty() {
        return Ok(());
    }
    let backend = db.get_database_backend();
    let now = chrono::Utc::now();
    let mut sql = Sql::new(backend);
    let columns = "event_id, tenant, event_type, subject, recorded_at, event";
    if backend == DbBackend::Postgres {
        let recorded_at = now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let rows: Vec<JsonRow<'_>> = events
            .iter()
            .map(|event| JsonRow {
                event_id: &event.id,
                tenant: &event.tenant,
                event_type: &event.r#type,
                subject: &event.subject,
                recorded_at: &recorded_at,
                event: bytea_hex(&event.encode_to_vec()),
            })
            .collect();
        sql.push(&format!(
            "INSERT INTO {OUTBOX_TABLE} ({columns}) SELECT {columns} \
             FROM json_populate_recordset(NULL::{OUTBOX_TABLE}, "
        ))
        .bind(serde_json::to_string(&rows).map_err(Error::internal)?)
        .push("::json)");
    } else {
        sql.push(&format!("INSERT INTO {OUTBOX_TABLE} ({columns}) VALUES "));
        for (index, event) in events.iter().enumerate() {
            if index > 0 {
                sql.push(", ");
            }
            sql.bind_list([
                sea_orm::Value::from(event.id.as_str()),
                event.tenant.as_str().into(),
                event.r#type.as_str().into(),
                event.subject.as_str().into(),
                now.into(),
                event.encode_to_vec().into(),
            ]);
        }
    }
    db.execute_raw(sql.statement()).await?;
    if backend == DbBackend::Postgres {
        // Delivered to listening event logs when (and only if) the transaction commits.
        db.execute_unprepared(&format!("SELECT pg_notify('{NOTIFY_CHANNEL}', '')"))
            .await?;
    }
    Ok(())
}
