//! The service's tables, one module per group. Every query filters by tenant.

pub(crate) mod entries;
pub(crate) mod instances;
pub(crate) mod journeys;
pub(crate) mod versions;

/// Table names.
pub(crate) const JOURNEYS: &str = "orchestration_journeys";
pub(crate) const VERSIONS: &str = "orchestration_journey_versions";
pub(crate) const INSTANCES: &str = "orchestration_instances";
pub(crate) const STEPS: &str = "orchestration_steps";
pub(crate) const ENTRIES: &str = "orchestration_entries";
pub(crate) const CONTACTS: &str = "orchestration_contacts";
pub(crate) const INBOX: &str = "orchestration_inbox";
