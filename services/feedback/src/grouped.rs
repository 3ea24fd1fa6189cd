//! Uninvited submissions written together (group commit). Each commit costs the database a
//! flush and every statement a round trip, so the submissions that arrive while a writer is
//! busy are written by one transaction with one statement per table: their idempotency keys
//! and results, responses, score and text rows, count changes and events. Nothing waits for a
//! group to fill.
//!
//! A submission whose key is already taken (a retry) is not written here: the caller sends it
//! the usual way, which replays the first result or refuses a different request.

use sea_orm::DatabaseConnection;
use throughline_runtime::Error;
use throughline_runtime::batch::Batcher;
use throughline_runtime::db::write_transaction;
use throughline_runtime::events::Outbox;
use throughline_runtime::idempotency::{Finished, Idempotency, Key};
use tonic::Status;

use crate::store::{follow_ups, responses};
use crate::submit::Prepared;

/// Writers at once; each holds one connection while it writes.
const WRITERS: usize = 2;
/// Submissions per transaction at most.
const GROUP: usize = 128;

/// The method idempotency keys of submissions are recorded under.
pub(crate) const METHOD: &str = "SubmitResponse";

/// A submission ready to write.
#[derive(Debug)]
pub(crate) struct Submission {
    pub tenant: String,
    pub request_id: String,
    pub request_hash: Vec<u8>,
    /// The encoded `SubmitResponseResponse` the key replays.
    pub reply: Vec<u8>,
    pub prepared: Prepared,
}

/// Starts the writers.
pub(crate) fn start_writer(
    db: DatabaseConnection,
    idempotency: Idempotency,
    outbox: Outbox,
) -> Batcher<Submission, bool> {
    Batcher::start(WRITERS, GROUP, move |group| {
        let (db, idempotency, outbox) = (db.clone(), idempotency.clone(), outbox.clone());
        async move {
            write(&db, &idempotency, &outbox, group)
                .await
                .map_err(Status::from)
        }
    })
}

/// Writes `group` in one transaction; answers, per submission, whether it was written (false:
/// its key was taken).
async fn write(
    db: &DatabaseConnection,
    idempotency: &Idempotency,
    outbox: &Outbox,
    mut group: Vec<Submission>,
) -> Result<Vec<bool>, Error> {
    let transaction = write_transaction(db).await?;
    let finished: Vec<Finished<'_>> = group
        .iter_mut()
        .map(|submission| Finished {
            key: Key {
                tenant: &submission.tenant,
                method: METHOD,
                request_id: &submission.request_id,
            },
            request_hash: std::mem::take(&mut submission.request_hash),
            response: std::mem::take(&mut submission.reply),
        })
        .collect();
    let written = idempotency.record_new(&transaction, &finished).await?;
    drop(finished);
    let mut events = Vec::new();
    for (submission, _) in group.iter_mut().zip(&written).filter(|(_, w)| **w) {
        events.append(&mut submission.prepared.events);
    }
    let mut new_responses = Vec::new();
    let mut opened = Vec::new();
    for (submission, _) in group.iter().zip(&written).filter(|(_, w)| **w) {
        let prepared = &submission.prepared;
        if let Some(follow_up) = &prepared.follow_up {
            opened.push((submission.tenant.as_str(), follow_up));
        }
        new_responses.push((
            submission.tenant.as_str(),
            &prepared.stored,
            &prepared.survey,
        ));
    }
    follow_ups::insert_all(&transaction, &opened).await?;
    responses::insert_all(&transaction, &new_responses).await?;
    outbox.append_all(&transaction, &events).await?;
    transaction.commit().await?;
    Ok(written)
}
