//! `distribution_templates`: one row per template, its variants kept as a `Template` message.

use sea_orm::ConnectionTrait;
use throughline_proto::distribution::v1::Template;
use throughline_runtime::Error;

/// Stand-in until the template store lands.
pub(crate) async fn find(
    _db: &impl ConnectionTrait,
    _tenant: &str,
    _id: &str,
) -> Result<Option<Template>, Error> {
    Ok(None)
}
