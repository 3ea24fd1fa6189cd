//! Reading `feedback_texts`, the free-text answers with their sentiment, for themes.

use sea_orm::ConnectionTrait;
use throughline_runtime::Error;
use throughline_runtime::sql::Sql;

use super::responses::response_name;
use crate::filter::Filter;
use crate::text::themes::Answer;

/// The newest `limit` free-text answers of `tenant` that `filter` admits, optionally only those
/// to `question_id` or with the sentiment label `label`.
pub(crate) async fn answers(
    db: &impl ConnectionTrait,
    tenant: &str,
    filter: &Filter,
    question_id: Option<&str>,
    label: Option<i32>,
    limit: usize,
) -> Result<Vec<Answer>, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("SELECT t.response_id, t.body, t.sentiment FROM feedback_texts t WHERE t.tenant = ")
        .bind(tenant);
    filter.push_conditions(&mut sql, "t");
    if let Some(question_id) = question_id {
        sql.push(" AND t.question_id = ").bind(question_id);
    }
    if let Some(label) = label {
        sql.push(" AND t.label = ").bind(label);
    }
    sql.push(" ORDER BY t.create_us DESC LIMIT ")
        .bind(i64::try_from(limit).unwrap_or(i64::MAX));
    db.query_all_raw(sql.statement())
        .await?
        .iter()
        .map(|row| {
            let response: String = row.try_get_by_index(0)?;
            Ok(Answer {
                response: response_name(&response),
                text: row.try_get_by_index(1)?,
                sentiment: row.try_get_by_index(2)?,
            })
        })
        .collect()
}
