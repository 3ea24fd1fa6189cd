//! What the profile tests share: a suite of the profile service, clients of two tenants,
//! identifiers, and readers of the outbox and of error details.
#![allow(dead_code, clippy::unwrap_used)]

use sea_orm::DatabaseConnection;
use throughline_harness::{Authenticated, TestDatabase, TestSuite, token};
use throughline_proto::common::v1::{AttributeValue, Identifier, IdentifierType, attribute_value};
use throughline_proto::event::v1::Event;
use throughline_proto::profile::v1::profile_service_client::ProfileServiceClient;
use throughline_runtime::db;
use throughline_runtime::events::{Filter, Outbox, Position};
use tonic_types::StatusExt;

pub type Client = ProfileServiceClient<Authenticated>;

/// Every profile scope.
pub const SCOPES: &[&str] = &["profile:read", "profile:write", "profile:admin"];

pub struct Profiles {
    pub suite: TestSuite,
    pub db: TestDatabase,
    /// Tenant `acme`.
    pub client: Client,
}

impl Profiles {
    pub async fn start(db: TestDatabase) -> Self {
        Self::start_with(db, &[]).await
    }

    pub async fn start_with(db: TestDatabase, env: &[(&str, &str)]) -> Self {
        let suite = TestSuite::start_with(&["profile"], &db, env).await;
        let client = suite.clients(&token("acme", SCOPES)).await.profile;
        Self { suite, db, client }
    }

    pub async fn client_of(&self, tenant: &str) -> Client {
        self.suite.clients(&token(tenant, SCOPES)).await.profile
    }

    /// A direct connection to the service's tables (for the outbox).
    pub async fn connection(&self) -> DatabaseConnection {
        let config = TestSuite::config(&["profile"], &self.db, &[]);
        db::connect(&config.database, "profile").await.unwrap()
    }

    /// The events once `settled` holds of them (or after 10 seconds): on PostgreSQL the
    /// reader holds back events while any older transaction of the server is still running,
    /// including other tests' transactions.
    pub async fn events_when(&self, settled: impl Fn(&[Event]) -> bool) -> Vec<Event> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let events = self.events().await;
            if settled(&events) || std::time::Instant::now() > deadline {
                return events;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Every event in the outbox that can be read now, in commit order.
    pub async fn events(&self) -> Vec<Event> {
        let db = self.connection().await;
        let outbox = Outbox::new("profile");
        let mut position = Position::default();
        let mut events = Vec::new();
        loop {
            let batch = outbox
                .read(&db, position, 500, &Filter::default())
                .await
                .unwrap();
            let Some(end) = batch.end else { break };
            position = end;
            events.extend(batch.entries.into_iter().map(|e| e.event));
        }
        events
    }

    /// The types of the events about `profile` (a name), in order, once there are at least
    /// `count` of them.
    pub async fn event_types_of(&self, profile: &str, count: usize) -> Vec<String> {
        self.events_when(|events| events.iter().filter(|e| e.subject == profile).count() >= count)
            .await
            .into_iter()
            .filter(|e| e.subject == profile)
            .map(|e| e.r#type)
            .collect()
    }
}

pub fn identifier(kind: IdentifierType, value: &str, source: &str) -> Identifier {
    Identifier {
        r#type: kind as i32,
        value: value.into(),
        source: source.into(),
    }
}

pub fn email(value: &str) -> Identifier {
    identifier(IdentifierType::Email, value, "")
}

pub fn phone(value: &str) -> Identifier {
    identifier(IdentifierType::Phone, value, "")
}

pub fn cookie(value: &str) -> Identifier {
    identifier(IdentifierType::CookieId, value, "")
}

pub fn crm(system: &str, value: &str) -> Identifier {
    identifier(IdentifierType::CrmId, value, system)
}

pub fn text(value: &str) -> AttributeValue {
    AttributeValue {
        kind: Some(attribute_value::Kind::StringValue(value.into())),
    }
}

pub fn number(value: f64) -> AttributeValue {
    AttributeValue {
        kind: Some(attribute_value::Kind::NumberValue(value)),
    }
}

/// The fields named by an INVALID_ARGUMENT's BadRequest.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

/// The ErrorInfo reason and metadata of a status.
pub fn error_info(status: &tonic::Status) -> (String, std::collections::HashMap<String, String>) {
    let details = status.get_error_details();
    let info = details.error_info().expect("an ErrorInfo");
    (info.reason.clone(), info.metadata.clone())
}

/// The sorted identifiers of a profile as `(type, source, value)`.
pub fn ids(profile: &throughline_proto::profile::v1::Profile) -> Vec<(i32, String, String)> {
    let mut ids: Vec<_> = profile
        .identifiers
        .iter()
        .map(|i| (i.r#type, i.source.clone(), i.value.clone()))
        .collect();
    ids.sort();
    ids
}
