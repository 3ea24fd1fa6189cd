//! The service's tables (see `migration`): each submodule reads and writes one of them.

pub(crate) mod templates;
