//! The events the service emits, written through the transaction that makes the change.
//!
//! Recording appends one `interaction.recorded` per new interaction. A batch of a thousand
//! goes to the outbox in one statement with one commit notification
//! (`runtime::events::Outbox::append_statements`) rather than a thousand single appends.

use prost::Message;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use throughline_proto::event::v1::Event;
use throughline_runtime::Error;
use throughline_runtime::events::{Outbox, new_event};

use crate::NAME;

/// An event of this service about `subject` (a profile, or empty), carrying `payload`, a
/// message of `throughline.event.v1` named `payload_name`.
pub(crate) fn event<M: Message>(
    tenant: &str,
    event_type: &str,
    subject: &str,
    payload_name: &str,
    payload: &M,
) -> Event {
    new_event(NAME, tenant, event_type, subject, payload_name, payload)
}

/// Appends one event (threads' events, one at a time).
pub(crate) async fn append<C: ConnectionTrait>(db: &C, event: &Event) -> Result<(), Error> {
    Outbox::new(NAME).append(db, event).await
}

/// The statements that append many events in one statement and one commit notification,
/// built to be run later in the recording transaction.
pub(crate) fn append_statements(
    backend: DbBackend,
    events: &[Event],
) -> Result<Vec<Statement>, Error> {
    Outbox::new(NAME).append_statements(backend, events)
}
