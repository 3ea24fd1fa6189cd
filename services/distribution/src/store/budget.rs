//! `distribution_budget_usage`: how many contacts each customer has had in each period of each
//! limit. A message takes its counts in the transaction that queues it, so two concurrent sends
//! cannot both take the last contact of a period.

use sea_orm::ConnectionTrait;
use throughline_runtime::Error;
use throughline_runtime::sql::Sql;

const USAGE: &str = "distribution_budget_usage";

/// One counter: a limit's key and the first day of its period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Counter {
    pub limit_key: String,
    pub period_start: i32,
    pub max: i32,
}

impl Counter {
    /// How a message remembers whose counters it took and which:
    /// `customer|limit_key@period_start,…`; empty when none.
    pub(crate) fn encode(customer: &str, counters: &[Counter]) -> String {
        if counters.is_empty() {
            return String::new();
        }
        let taken: Vec<String> = counters
            .iter()
            .map(|c| format!("{}@{}", c.limit_key, c.period_start))
            .collect();
        format!("{customer}|{}", taken.join(","))
    }

    fn decode(text: &str) -> Option<(&str, Vec<(String, i32)>)> {
        let (customer, list) = text.rsplit_once('|')?;
        let counters = list
            .split(',')
            .filter_map(|part| {
                let (key, period) = part.split_once('@')?;
                Some((key.to_owned(), period.parse().ok()?))
            })
            .collect();
        Some((customer, counters))
    }
}

/// Takes one contact from every counter, all or none: `false` when one is spent.
pub(crate) async fn take<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    customer: &str,
    counters: &[Counter],
) -> Result<bool, Error> {
    let mut taken = Vec::with_capacity(counters.len());
    for counter in counters {
        if counter.max <= 0 || !take_one(db, tenant, customer, counter).await? {
            give_back(db, tenant, customer, &taken).await?;
            return Ok(false);
        }
        taken.push((counter.limit_key.clone(), counter.period_start));
    }
    Ok(true)
}

async fn take_one<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    customer: &str,
    counter: &Counter,
) -> Result<bool, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "INSERT INTO {USAGE} (tenant, customer, limit_key, period_start, used) VALUES "
    ))
    .bind_list::<sea_orm::Value>([
        tenant.into(),
        customer.into(),
        counter.limit_key.clone().into(),
        counter.period_start.into(),
        1i32.into(),
    ])
    .push(&format!(
        " ON CONFLICT (tenant, customer, limit_key, period_start) DO UPDATE SET used = \
         {USAGE}.used + 1 WHERE {USAGE}.used < "
    ))
    .bind(counter.max);
    Ok(db.execute_raw(sql.statement()).await?.rows_affected() == 1)
}

/// Gives back the counts a message took (`Counter::encode`d), when it is cancelled.
pub(crate) async fn give_back_encoded<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    encoded: &str,
) -> Result<(), Error> {
    match Counter::decode(encoded) {
        Some((customer, counters)) => give_back(db, tenant, customer, &counters).await,
        None => Ok(()),
    }
}

async fn give_back<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    customer: &str,
    counters: &[(String, i32)],
) -> Result<(), Error> {
    for (limit_key, period_start) in counters {
        let mut sql = Sql::new(db.get_database_backend());
        sql.push(&format!(
            "UPDATE {USAGE} SET used = used - 1 WHERE tenant = "
        ))
        .bind(tenant)
        .push(" AND customer = ")
        .bind(customer)
        .push(" AND limit_key = ")
        .bind(limit_key.as_str())
        .push(" AND period_start = ")
        .bind(*period_start)
        .push(" AND used > 0");
        db.execute_raw(sql.statement()).await?;
    }
    Ok(())
}

/// Contacts counted in one period of one limit.
pub(crate) async fn used<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    customer: &str,
    limit_key: &str,
    period_start: i32,
) -> Result<i32, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!("SELECT used FROM {USAGE} WHERE tenant = "))
        .bind(tenant)
        .push(" AND customer = ")
        .bind(customer)
        .push(" AND limit_key = ")
        .bind(limit_key)
        .push(" AND period_start = ")
        .bind(period_start);
    Ok(match db.query_one_raw(sql.statement()).await? {
        Some(row) => row.try_get_by_index(0)?,
        None => 0,
    })
}
