//! What the interaction tests share: clients, requests and counts of stored rows.
#![allow(dead_code, clippy::unwrap_used)]

use prost_types::Timestamp;
use throughline_harness::{Authenticated, TestDatabase, TestSuite, query_integer, token};
use throughline_proto::common::v1::customer_ref::Customer;
use throughline_proto::common::v1::{Channel, CustomerRef, Direction};
use throughline_proto::interaction::v1::interaction_service_client::InteractionServiceClient;
use throughline_proto::interaction::v1::{
    Interaction, ListInteractionsRequest, RecordInteractionRequest,
};
use throughline_runtime::db;

pub type Client = InteractionServiceClient<Authenticated>;

/// The time every test's interactions are placed after.
pub const BASE: i64 = 1_750_000_000;

pub async fn client(suite: &TestSuite, tenant: &str) -> Client {
    suite
        .clients(&token(tenant, &["interaction:read", "interaction:write"]))
        .await
        .interaction
}

pub fn profile(id: &str) -> CustomerRef {
    CustomerRef {
        customer: Some(Customer::Profile(format!("profiles/{id}"))),
    }
}

pub fn at(seconds: i64) -> Timestamp {
    Timestamp {
        seconds: BASE + seconds,
        nanos: 0,
    }
}

pub fn hours(hours: f64) -> i64 {
    (hours * 3600.0) as i64
}

/// An inbound page view of `customer` on `channel`, `seconds` after [`BASE`].
pub fn item(
    id: &str,
    customer: CustomerRef,
    channel: Channel,
    seconds: i64,
) -> RecordInteractionRequest {
    RecordInteractionRequest {
        interaction_id: id.into(),
        interaction: Some(Interaction {
            customer: Some(customer),
            channel: channel as i32,
            direction: Direction::Inbound as i32,
            r#type: "page_view".into(),
            occur_time: Some(at(seconds)),
            ..Interaction::default()
        }),
    }
}

/// An inbound contact for `reason`.
pub fn contact(
    id: &str,
    customer: &str,
    channel: Channel,
    reason: &str,
    seconds: i64,
) -> RecordInteractionRequest {
    let mut request = item(id, profile(customer), channel, seconds);
    let interaction = request.interaction.as_mut().unwrap();
    interaction.r#type = "contact".into();
    interaction.reason = reason.into();
    request
}

/// The interaction service's own database connection.
pub async fn database(test_db: &TestDatabase) -> sea_orm::DatabaseConnection {
    let config = TestSuite::config(&["interaction"], test_db, &[]);
    db::connect(&config.database, "interaction").await.unwrap()
}

/// The single integer a query answers.
pub async fn count(test_db: &TestDatabase, sql: &str) -> i64 {
    query_integer(&database(test_db).await, sql).await
}

/// The customer's timeline (up to 100), newest first: each interaction's name and profile.
pub async fn timeline(client: &mut Client, customer: &str) -> Vec<(String, String)> {
    client
        .list_interactions(ListInteractionsRequest {
            customer: Some(profile(customer)),
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .interactions
        .into_iter()
        .map(|i| (i.name, i.profile))
        .collect()
}
