//! Times as the store keeps them and page tokens (see `throughline_runtime::time`).

pub(crate) use throughline_runtime::time::*;
