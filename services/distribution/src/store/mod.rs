//! The service's tables (see `migration`): each submodule reads and writes one of them. Every
//! statement filters by tenant, except the delivery queue's claim, which serves every tenant.

pub(crate) mod budget;
pub(crate) mod messages;
pub(crate) mod policies;
pub(crate) mod suppressions;
pub(crate) mod templates;
