//! Voice-of-customer feedback service: surveys, invitations within the fatigue rule and the
//! contact budget, idempotent responses, metrics with confidence, sentiment and themes of free
//! text, and closed-loop follow-up of detractors.
//!
//! - `survey`: survey definitions, checked when saved and published; `answers`: answers
//!   checked against the version they answer.
//! - `api`: one module per group of RPCs; `store`: one module per table group.
//! - `metrics`: NPS, CSAT and CES with confidence intervals, trends, breakdowns and drivers.
//! - [`text`]: sentiment of free-text answers and recurring themes.
//! - `events`: the profile service's identity and segment events, applied to what the service
//!   holds.
//!
//! See docs/feedback.md.

mod answers;
mod api;
mod context;
mod events;
mod filter;
mod grouped;
mod invite;
mod metrics;
mod migration;
mod store;
mod submit;
mod survey;
pub mod text;

use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};
use throughline_proto::feedback::v1::feedback_service_server::FeedbackServiceServer;
use throughline_runtime::batch::Batcher;
use throughline_runtime::cache::TtlCache;
use throughline_runtime::config::Validate;
use throughline_runtime::customer::{ResolveProfiles, StoreAsGiven};
use throughline_runtime::events::Outbox;
use throughline_runtime::idempotency::Idempotency;
use throughline_runtime::peers::Peers;

pub use events::{
    PROFILE_EVENT_TYPES, PROFILE_EVENTS_CONSUMER, PROFILE_EVENTS_SOURCE, REPLIES_CONSUMER,
    REPLIES_SOURCE, REPLY_EVENT_TYPES, profile_events_handler, replies_handler,
};
pub use migration::Migrator;
pub use store::counts::recount as recount_daily_counts;

/// How stale a cached survey may be when another replica published or archived it.
const SURVEY_CACHE_TTL: Duration = Duration::from_secs(1);

/// The service's name in `server.services`, its configuration section and its table prefix.
pub const NAME: &str = "feedback";

/// `[feedback]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// A database of its own for this service; the shared `[database]` when unset.
    #[serde(deserialize_with = "throughline_runtime::config::empty_as_none")]
    pub database_url: Option<String>,
    /// No more than one invitation per customer per this interval, across all surveys; a
    /// survey's `fatigue_interval` replaces it. Zero disables the rule.
    #[serde(with = "humantime_serde")]
    pub fatigue_interval: Duration,
    /// How long an invitation stays open when its survey does not say.
    #[serde(with = "humantime_serde")]
    pub invitation_ttl: Duration,
    /// Survey URLs are this followed by the invitation's token.
    pub survey_base_url: String,
    /// Groups with fewer responses are flagged `small_sample` when the request does not say.
    pub min_sample_size: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            database_url: None,
            fatigue_interval: Duration::from_secs(30 * 24 * 3600),
            invitation_ttl: Duration::from_secs(7 * 24 * 3600),
            survey_base_url: "http://localhost:8080/s/".to_owned(),
            min_sample_size: 30,
        }
    }
}

impl Validate for Options {
    fn validate(&self, prefix: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if self.invitation_ttl.is_zero() {
            problems.push(format!(
                "{prefix}.invitation_ttl: must be longer than zero, for example \"7days\""
            ));
        }
        if !self.survey_base_url.starts_with("https://")
            && !self.survey_base_url.starts_with("http://")
        {
            problems.push(format!(
                "{prefix}.survey_base_url: must be an http(s) URL, for example \
                 \"https://surveys.example.com/s/\""
            ));
        }
        if self.min_sample_size == 0 {
            problems.push(format!("{prefix}.min_sample_size: must be at least 1"));
        }
        problems
    }
}

/// The running service: what its handlers share.
#[derive(Debug, Clone)]
pub struct Service {
    db: DatabaseConnection,
    options: Options,
    idempotency: Idempotency,
    outbox: Outbox,
    peers: Peers,
    resolver: Arc<dyn ResolveProfiles>,
    sentiment: Arc<dyn text::SentimentAnalyser>,
    /// Published surveys by tenant, id and version (0: the latest), read by every response and
    /// invitation.
    surveys: Arc<TtlCache<(String, String, i32), store::surveys::Lookup>>,
    /// The group-commit writers of uninvited submissions, started on first use.
    submissions: Arc<std::sync::OnceLock<Batcher<grouped::Submission, bool>>>,
}

impl Service {
    /// The service on its own: customers stored as given, invitations not sent by message.
    pub fn new(db: DatabaseConnection, options: Options) -> Self {
        Self {
            db,
            options,
            idempotency: Idempotency::new(NAME),
            outbox: Outbox::new(NAME),
            peers: Peers::default(),
            resolver: Arc::new(StoreAsGiven),
            sentiment: Arc::new(text::Vader::default()),
            surveys: Arc::new(TtlCache::new(SURVEY_CACHE_TTL)),
            submissions: Arc::default(),
        }
    }

    /// The group-commit writers of uninvited submissions.
    fn submissions(&self) -> &Batcher<grouped::Submission, bool> {
        self.submissions.get_or_init(|| {
            grouped::start_writer(
                self.db.clone(),
                self.idempotency.clone(),
                self.outbox.clone(),
            )
        })
    }

    /// Folds the changes writers append into the daily counts metrics read (see
    /// `store::counts`); every replica runs one.
    pub fn counts_worker(&self) -> throughline_runtime::server::Worker {
        let db = self.db.clone();
        Box::new(move |stopping| Box::pin(store::counts::fold_worker(db, stopping)))
    }

    /// Sends invitations through the distribution service among `peers`.
    pub fn with_peers(mut self, peers: Peers) -> Self {
        self.peers = peers;
        self
    }

    /// Resolves customers named by an identifier to their profile.
    pub fn with_resolver(mut self, resolver: Arc<dyn ResolveProfiles>) -> Self {
        self.resolver = resolver;
        self
    }

    /// Version `version` of a survey (0: the latest), as of at most a second ago, read through
    /// `db` when not cached: a caller inside a transaction passes it, so that a burst of calls
    /// never waits for a second pooled connection while holding one.
    async fn published_survey(
        &self,
        db: &impl sea_orm::ConnectionTrait,
        tenant: &str,
        id: &str,
        version: i32,
    ) -> Result<store::surveys::Lookup, throughline_runtime::Error> {
        self.surveys
            .get_or_load(&(tenant.to_owned(), id.to_owned(), version), || {
                store::surveys::published(db, tenant, id, version)
            })
            .await
    }

    /// Forgets what this process cached of a survey after publishing, archiving or deleting it.
    fn forget_survey(&self, tenant: &str, id: &str, version: i32) {
        for version in [0, version] {
            self.surveys
                .invalidate(&(tenant.to_owned(), id.to_owned(), version));
        }
    }

    /// The tonic server to add to the process's gRPC server.
    pub fn grpc(&self) -> FeedbackServiceServer<api::Api> {
        FeedbackServiceServer::new(api::Api::new(self.clone()))
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    pub fn options(&self) -> &Options {
        &self.options
    }
}
