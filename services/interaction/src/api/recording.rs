//! Recording RPCs.
//!
//! - `RecordInteraction` and `BatchRecordInteractions` are all or nothing: any invalid item
//!   (or an id reused for different content) fails the call with INVALID_ARGUMENT naming each
//!   offending field by item (`requests[3].interaction.channel`), and nothing is stored.
//! - `RecordInteractions` acknowledges each batch after its transaction commits. An invalid
//!   item is listed in its batch's acknowledgement and the batch's valid items are stored; only
//!   a malformed batch (empty, over the limit, a sequence that does not increase) ends the
//!   stream with INVALID_ARGUMENT, and batches acknowledged before stay stored.

use std::collections::BTreeSet;

use throughline_proto::interaction::v1::{
    BatchRecordInteractionsRequest, BatchRecordInteractionsResponse, RecordInteractionRequest,
    RecordInteractionResponse, RecordInteractionsRequest, RecordInteractionsResponse,
    RejectedInteraction,
};
use throughline_runtime::{Error, FieldViolation};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use super::{AckStream, Api};
use crate::customer::CustomerKey;
use crate::store::record::{Outcome, record};
use crate::store::write_transaction;
use crate::time::now_us;
use crate::validate::{self, MAX_BATCH, NewInteraction};
use crate::writer::{Commit, Lane};

/// Acknowledgements a stream may have ready before the client reads them.
const ACK_BUFFER: usize = 16;

impl Api {
    /// The profile each item's customer resolves to (one resolver call per batch).
    async fn resolve(
        &self,
        tenant: &str,
        items: &[NewInteraction],
    ) -> Result<Vec<Option<String>>, Error> {
        let keys: Vec<CustomerKey> = items
            .iter()
            .map(|item| item.customer.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let profiles = self.service.resolver.resolve(tenant, &keys).await?;
        if profiles.len() != keys.len() {
            return Err(Error::internal(
                "the customer resolver answered for a different number of customers",
            ));
        }
        Ok(items
            .iter()
            .map(|item| {
                keys.binary_search(&item.customer)
                    .ok()
                    .and_then(|position| profiles[position].clone())
            })
            .collect())
    }

    pub(super) async fn record_one(
        &self,
        tenant: &str,
        request: RecordInteractionRequest,
    ) -> Result<RecordInteractionResponse, Error> {
        let item = validate::interaction(request, now_us()).map_err(|violations| {
            Error::InvalidArgument(violations.iter().map(|v| v.runtime("")).collect())
        })?;
        let items = [item];
        let profiles = self.resolve(tenant, &items).await?;
        let transaction = write_transaction(&self.service.db).await?;
        let outcome = record(&transaction, tenant, &items, &profiles, true)
            .await?
            .into_iter()
            .next();
        let (interaction, duplicate) = match outcome {
            Some(Outcome::Stored(interaction)) => (interaction, false),
            Some(Outcome::Duplicate(interaction)) => (interaction, true),
            Some(Outcome::Rejected(violation)) => {
                return Err(Error::InvalidArgument(vec![violation.runtime("")]));
            }
            None => return Err(Error::internal("no outcome for the recorded interaction")),
        };
        transaction.commit().await?;
        Ok(RecordInteractionResponse {
            interaction,
            duplicate,
        })
    }

    pub(super) async fn record_batch(
        &self,
        tenant: &str,
        request: BatchRecordInteractionsRequest,
    ) -> Result<BatchRecordInteractionsResponse, Error> {
        let count = request.requests.len();
        if count == 0 || count > MAX_BATCH {
            return Err(Error::invalid(
                "requests",
                format!("1 to {MAX_BATCH} items; got {count}"),
            ));
        }
        let now = now_us();
        let mut items = Vec::with_capacity(count);
        let mut violations: Vec<FieldViolation> = Vec::new();
        for (index, item) in request.requests.into_iter().enumerate() {
            match validate::interaction(item, now) {
                Ok(item) => items.push(item),
                Err(problems) => violations.extend(
                    problems
                        .iter()
                        .map(|v| v.runtime(&format!("requests[{index}]."))),
                ),
            }
        }
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations));
        }
        let profiles = self.resolve(tenant, &items).await?;
        let transaction = write_transaction(&self.service.db).await?;
        let outcomes = record(&transaction, tenant, &items, &profiles, true).await?;
        let mut interactions = Vec::with_capacity(count);
        let mut duplicate_count = 0;
        for (index, outcome) in outcomes.into_iter().enumerate() {
            match outcome {
                Outcome::Stored(interaction) => interactions.extend(interaction),
                Outcome::Duplicate(interaction) => {
                    duplicate_count += 1;
                    interactions.extend(interaction);
                }
                Outcome::Rejected(violation) => {
                    violations.push(violation.runtime(&format!("requests[{index}].")));
                }
            }
        }
        if !violations.is_empty() {
            // Dropping the transaction rolls the whole batch back.
            return Err(Error::InvalidArgument(violations));
        }
        transaction.commit().await?;
        Ok(BatchRecordInteractionsResponse {
            interactions,
            duplicate_count,
        })
    }

    /// Two stages per stream: one reads, validates and hands batches to the group-commit
    /// writer without waiting for their commits, the other acknowledges them in order as they
    /// commit. A stream therefore keeps up to [`STREAM_PIPELINE`] batches in the writer's
    /// queue, so a commit carries many streams' batches and the writer never waits for a
    /// stream's round trip before its next batch.
    pub(super) fn record_stream(
        &self,
        tenant: String,
        mut batches: Streaming<RecordInteractionsRequest>,
    ) -> AckStream {
        let (acks, receiver) = mpsc::channel(ACK_BUFFER);
        let (handed_over, mut committing) = mpsc::channel(STREAM_PIPELINE);
        let api = self.clone();
        let lane = self.service.writer().lane();
        tokio::spawn(async move {
            let mut last_sequence = 0;
            loop {
                let batch = match batches.message().await {
                    Ok(Some(batch)) => batch,
                    // The client finished sending: every batch has its acknowledgement.
                    Ok(None) => break,
                    Err(status) => {
                        let _ = handed_over.send(Err(status)).await;
                        break;
                    }
                };
                let submitted = api
                    .submit_streamed_batch(&tenant, batch, &lane, &mut last_sequence)
                    .await
                    .map_err(Status::from);
                let failed = submitted.is_err();
                // The acknowledging stage stopped (the client went away or a batch failed):
                // stop reading. Batches handed over but not acknowledged either commit or
                // not, and a resend is safe either way.
                if handed_over.send(submitted).await.is_err() || failed {
                    break;
                }
            }
        });
        tokio::spawn(async move {
            while let Some(submitted) = committing.recv().await {
                let answer = match submitted {
                    Ok(batch) => batch.acknowledgement().await.map_err(Status::from),
                    Err(status) => Err(status),
                };
                let failed = answer.is_err();
                if acks.send(answer).await.is_err() || failed {
                    break;
                }
            }
        });
        Box::pin(ReceiverStream::new(receiver))
    }

    /// Checks a streamed batch and hands its valid items to the writer.
    async fn submit_streamed_batch(
        &self,
        tenant: &str,
        batch: RecordInteractionsRequest,
        lane: &Lane,
        last_sequence: &mut i64,
    ) -> Result<SubmittedBatch, Error> {
        if batch.sequence <= *last_sequence {
            return Err(Error::invalid(
                "sequence",
                format!(
                    "batch sequence numbers start at 1 and increase; got {} after {}",
                    batch.sequence, last_sequence
                ),
            ));
        }
        let count = batch.requests.len();
        if count == 0 || count > MAX_BATCH {
            return Err(Error::invalid(
                "requests",
                format!(
                    "batch {}: 1 to {MAX_BATCH} items; got {count}",
                    batch.sequence
                ),
            ));
        }
        *last_sequence = batch.sequence;
        let now = now_us();
        let mut items = Vec::with_capacity(count);
        let mut submitted = SubmittedBatch {
            sequence: batch.sequence,
            positions: Vec::with_capacity(count),
            ids: Vec::with_capacity(count),
            rejected: Vec::new(),
            commit: None,
        };
        for (index, item) in batch.requests.into_iter().enumerate() {
            let interaction_id = item.interaction_id.clone();
            match validate::interaction(item, now) {
                Ok(item) => {
                    submitted.ids.push(item.id.clone());
                    items.push(item);
                    submitted.positions.push(index);
                }
                Err(violations) => submitted.rejected.push(RejectedInteraction {
                    index: i32::try_from(index).unwrap_or(i32::MAX),
                    interaction_id,
                    violations: violations.iter().map(|v| v.proto()).collect(),
                }),
            }
        }
        if !items.is_empty() {
            let profiles = self.resolve(tenant, &items).await?;
            submitted.commit = Some(lane.submit(tenant, items, profiles).await?);
        }
        Ok(submitted)
    }
}

/// Batches a stream may have in the writer's queue, not yet acknowledged.
const STREAM_PIPELINE: usize = 8;

/// A streamed batch handed to the writer: what its acknowledgement needs once it commits.
struct SubmittedBatch {
    sequence: i64,
    /// The batch position and id of each item handed to the writer, in order.
    positions: Vec<usize>,
    ids: Vec<String>,
    /// The items refused before the writer.
    rejected: Vec<RejectedInteraction>,
    /// The writer's answer; `None` when no item was valid.
    commit: Option<Commit>,
}

impl SubmittedBatch {
    /// Waits for the batch's commit and tells what became of each item.
    async fn acknowledgement(self) -> Result<RecordInteractionsResponse, Error> {
        let mut rejected = self.rejected;
        let mut stored_count = 0;
        let mut duplicate_count = 0;
        if let Some(commit) = self.commit {
            for (position, outcome) in commit.outcomes().await?.into_iter().enumerate() {
                match outcome {
                    Outcome::Stored(_) => stored_count += 1,
                    Outcome::Duplicate(_) => duplicate_count += 1,
                    Outcome::Rejected(violation) => rejected.push(RejectedInteraction {
                        index: i32::try_from(self.positions[position]).unwrap_or(i32::MAX),
                        interaction_id: self.ids[position].clone(),
                        violations: vec![violation.proto()],
                    }),
                }
            }
        }
        rejected.sort_by_key(|r| r.index);
        Ok(RecordInteractionsResponse {
            sequence: self.sequence,
            stored_count,
            duplicate_count,
            rejected,
        })
    }
}
