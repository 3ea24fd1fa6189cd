//! The event log every process serves (`throughline.event.v1.EventLogService`).
//!
//! Subscribing answers UNIMPLEMENTED (the generated default) until the events issue adds the
//! outbox and the gap-free reader; serving the contract now lets clients and tooling see it.

use throughline_proto::event::v1::event_log_service_server::{
    EventLogService, EventLogServiceServer,
};

#[derive(Debug, Clone, Copy, Default)]
pub struct EventLog;

impl EventLogService for EventLog {}

pub fn event_log_server() -> EventLogServiceServer<EventLog> {
    EventLogServiceServer::new(EventLog)
}
