//! `distribution_templates`: one row per template, its variants kept as a `Template` message.
//!
//! The body is the `Template` without its name, times and etag, which are columns; the
//! `channels` column lists the channels its variants cover as `,1,2,` so that ListTemplates
//! can filter with a LIKE on either database. Every query filters by tenant.

use std::collections::BTreeSet;

use prost::Message;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Order, Query, SelectStatement};
use sea_orm::{ConnectionTrait, QueryResult};
use throughline_proto::distribution::v1::Template;
use throughline_runtime::Error;
use throughline_runtime::time::timestamp;

const TABLE: &str = "distribution_templates";
const COLUMNS: [&str; 6] = [
    "id",
    "display_name",
    "body",
    "revision",
    "create_us",
    "update_us",
];

/// `templates/{id}`.
pub(crate) fn template_name(id: &str) -> String {
    format!("templates/{id}")
}

fn col(name: &str) -> Expr {
    Expr::col(Alias::new(name))
}

fn select(tenant: &str) -> SelectStatement {
    Query::select()
        .columns(COLUMNS.map(Alias::new))
        .from(Alias::new(TABLE))
        .and_where(col("tenant").eq(tenant))
        .to_owned()
}

/// The template as stored: without what the columns carry.
fn body(template: &Template) -> Vec<u8> {
    Template {
        name: String::new(),
        create_time: None,
        update_time: None,
        etag: String::new(),
        ..template.clone()
    }
    .encode_to_vec()
}

/// `,1,2,`: the channels of the variants, each once, in order.
fn channels(template: &Template) -> String {
    let channels: BTreeSet<i32> = template.variants.iter().map(|v| v.channel).collect();
    let mut list = String::from(",");
    for channel in channels {
        list.push_str(&format!("{channel},"));
    }
    list
}

fn from_row(row: &QueryResult) -> Result<Template, Error> {
    let id: String = row.try_get("", "id")?;
    let body: Vec<u8> = row.try_get("", "body")?;
    let revision: i64 = row.try_get("", "revision")?;
    let create_us: i64 = row.try_get("", "create_us")?;
    let update_us: i64 = row.try_get("", "update_us")?;
    let mut template = Template::decode(body.as_slice()).map_err(Error::internal)?;
    template.name = template_name(&id);
    template.create_time = Some(timestamp(create_us));
    template.update_time = Some(timestamp(update_us));
    template.etag = revision.to_string();
    Ok(template)
}

/// The template `id` of `tenant`, with its name, times and etag (its revision).
pub(crate) async fn find(
    db: &impl ConnectionTrait,
    tenant: &str,
    id: &str,
) -> Result<Option<Template>, Error> {
    let query = select(tenant).and_where(col("id").eq(id)).to_owned();
    db.query_one(&query)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// Saves a new template at revision 1; ALREADY_EXISTS when `id` is taken.
pub(crate) async fn insert(
    db: &impl ConnectionTrait,
    tenant: &str,
    id: &str,
    template: &Template,
    now_us: i64,
) -> Result<Template, Error> {
    let insert = Query::insert()
        .into_table(Alias::new(TABLE))
        .columns(
            [
                "tenant",
                "id",
                "display_name",
                "channels",
                "body",
                "revision",
                "create_us",
                "update_us",
            ]
            .map(Alias::new),
        )
        .values_panic([
            tenant.into(),
            id.into(),
            template.display_name.clone().into(),
            channels(template).into(),
            body(template).into(),
            1i64.into(),
            now_us.into(),
            now_us.into(),
        ])
        .on_conflict(
            sea_orm::sea_query::OnConflict::columns(["tenant", "id"].map(Alias::new))
                .do_nothing()
                .to_owned(),
        )
        .to_owned();
    if db.execute(&insert).await?.rows_affected() == 0 {
        return Err(Error::AlreadyExists(template_name(id)));
    }
    let mut saved = template.clone();
    saved.name = template_name(id);
    saved.create_time = Some(timestamp(now_us));
    saved.update_time = Some(timestamp(now_us));
    saved.etag = "1".into();
    Ok(saved)
}

/// Replaces the template `id` if it is still at `revision`; `None` when it is not (changed or
/// deleted meanwhile).
pub(crate) async fn update(
    db: &impl ConnectionTrait,
    tenant: &str,
    id: &str,
    revision: i64,
    template: &Template,
    now_us: i64,
) -> Result<Option<Template>, Error> {
    let update = Query::update()
        .table(Alias::new(TABLE))
        .value(Alias::new("display_name"), template.display_name.clone())
        .value(Alias::new("channels"), channels(template))
        .value(Alias::new("body"), body(template))
        .value(Alias::new("revision"), revision + 1)
        .value(Alias::new("update_us"), now_us)
        .and_where(col("tenant").eq(tenant))
        .and_where(col("id").eq(id))
        .and_where(col("revision").eq(revision))
        .to_owned();
    if db.execute(&update).await?.rows_affected() == 0 {
        return Ok(None);
    }
    let mut saved = template.clone();
    saved.name = template_name(id);
    saved.update_time = Some(timestamp(now_us));
    saved.etag = (revision + 1).to_string();
    Ok(Some(saved))
}

/// Deletes the template `id` if it is at `revision` (any revision when `None`); whether a row
/// went.
pub(crate) async fn delete(
    db: &impl ConnectionTrait,
    tenant: &str,
    id: &str,
    revision: Option<i64>,
) -> Result<bool, Error> {
    let mut delete = Query::delete()
        .from_table(Alias::new(TABLE))
        .and_where(col("tenant").eq(tenant))
        .and_where(col("id").eq(id))
        .to_owned();
    if let Some(revision) = revision {
        delete.and_where(col("revision").eq(revision));
    }
    Ok(db.execute(&delete).await?.rows_affected() > 0)
}

/// Up to `limit` templates by display name then id, after `(display_name, id)` when given,
/// only those with a variant for `channel` when given.
pub(crate) async fn list(
    db: &impl ConnectionTrait,
    tenant: &str,
    channel: Option<i32>,
    after: Option<(&str, &str)>,
    limit: usize,
) -> Result<Vec<Template>, Error> {
    let mut query = select(tenant);
    if let Some(channel) = channel {
        query.and_where(col("channels").like(format!("%,{channel},%")));
    }
    if let Some((display_name, id)) = after {
        query.and_where(
            col("display_name")
                .gt(display_name)
                .or(col("display_name").eq(display_name).and(col("id").gt(id))),
        );
    }
    query
        .order_by(Alias::new("display_name"), Order::Asc)
        .order_by(Alias::new("id"), Order::Asc)
        .limit(u64::try_from(limit).unwrap_or(u64::MAX));
    db.query_all(&query).await?.iter().map(from_row).collect()
}
