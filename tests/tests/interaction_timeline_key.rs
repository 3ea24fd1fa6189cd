//! The migration that keys the timeline indexes by an integer gives interactions recorded
//! before it their key: each tenant's customers find exactly their own interactions afterwards,
//! beside those recorded since.
#![allow(clippy::unwrap_used)]

mod interaction_support;

use interaction_support::*;
use sea_orm::ConnectionTrait;
use sea_orm_migration::MigratorTrait;
use throughline_harness::{TestDatabase, TestSuite, on_both_databases};
use throughline_interaction::Migrator;
use throughline_proto::common::v1::Channel;
use throughline_proto::interaction::v1::BatchRecordInteractionsRequest;

/// Rows as the service stored them before the key existed: (tenant, id, timeline, seconds).
/// Acme's `profiles/c` has a negative key, so PostgreSQL's signed reading of the hash in the
/// migration is checked too.
const EARLIER: [(&str, &str, &str, i64); 7] = [
    ("acme", "a-1", "profiles/a", 10),
    ("acme", "c-1", "profiles/c", 12),
    ("acme", "a-2", "profiles/a", 30),
    ("acme", "a-3", "profiles/a", 20),
    ("acme", "b-1", "profiles/b", 15),
    ("acme", "b-2", "profiles/b", 25),
    ("globex", "g-1", "profiles/a", 40),
];

async fn names(client: &mut Client, customer: &str) -> Vec<String> {
    timeline(client, customer)
        .await
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

on_both_databases!(
    interactions_recorded_before_the_key_stay_on_their_timelines,
    |test_db: TestDatabase| async move {
        let db = database(&test_db).await;
        // Every migration but the one that adds the key.
        let before_key = u32::try_from(Migrator::migrations().len() - 1).unwrap();
        Migrator::up(&db, Some(before_key)).await.unwrap();
        for (tenant, id, timeline, seconds) in EARLIER {
            db.execute_unprepared(&format!(
                "INSERT INTO interaction_interactions (tenant, id, customer, profile, timeline, \
                 channel, direction, interaction_type, occur_us, record_us, thread, touchpoint, \
                 reason, step, agent, outcome, source, attributes, content_hash) VALUES \
                 ('{tenant}', '{id}', '{timeline}', '{timeline}', '{timeline}', {web}, 1, \
                 'page_view', {occur_us}, 0, '', '', '', '', '', '', '', NULL, 0)",
                web = Channel::Web as i32,
                occur_us = (BASE + seconds) * 1_000_000,
            ))
            .await
            .unwrap();
        }

        let suite = TestSuite::start(&["interaction"], &test_db).await;
        let mut acme = client(&suite, "acme").await;
        let mut globex = client(&suite, "globex").await;
        assert_eq!(
            names(&mut acme, "a").await,
            ["interactions/a-2", "interactions/a-3", "interactions/a-1"]
        );
        assert_eq!(
            names(&mut acme, "b").await,
            ["interactions/b-2", "interactions/b-1"]
        );
        assert_eq!(names(&mut acme, "c").await, ["interactions/c-1"]);
        assert_eq!(names(&mut globex, "a").await, ["interactions/g-1"]);

        // Recorded after the migration, on the same timeline as the migrated rows.
        acme.batch_record_interactions(BatchRecordInteractionsRequest {
            requests: vec![item("a-4", profile("a"), Channel::Email, 50)],
        })
        .await
        .unwrap();
        assert_eq!(
            names(&mut acme, "a").await,
            [
                "interactions/a-4",
                "interactions/a-2",
                "interactions/a-3",
                "interactions/a-1"
            ]
        );
        assert_eq!(names(&mut globex, "a").await, ["interactions/g-1"]);
    }
);
