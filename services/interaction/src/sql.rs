//! The statement builder the service's hot statements use (see `throughline_runtime::sql`).

pub(crate) use throughline_runtime::db::bytea_hex;
pub(crate) use throughline_runtime::sql::Sql;
