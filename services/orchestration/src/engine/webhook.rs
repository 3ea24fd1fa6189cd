//! The webhook node: one HTTP call to a CRM or any endpoint, signed with a configured
//! credential, guarded against internal addresses. The engine retries with backoff.

use serde::{Deserialize, Serialize};
use throughline_runtime::config::Validate;

/// `[orchestration.webhooks]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookOptions {}

impl Validate for WebhookOptions {
    fn validate(&self, _prefix: &str) -> Vec<String> {
        Vec::new()
    }
}
