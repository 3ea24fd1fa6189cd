//! A statement assembled from text and bound values, with the placeholders of the backend
//! (`$1` on PostgreSQL, `?` on SQLite): services write their hot statements by hand with it, so
//! that a batch of a thousand rows is one statement on either database.

use std::fmt::Write as _;

use sea_orm::{DbBackend, Statement, Value};

#[derive(Debug)]
pub struct Sql {
    backend: DbBackend,
    text: String,
    values: Vec<Value>,
}

impl Sql {
    pub fn new(backend: DbBackend) -> Self {
        Self {
            backend,
            text: String::with_capacity(256),
            values: Vec::new(),
        }
    }

    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder bound to `value`.
    pub fn bind(&mut self, value: impl Into<Value>) -> &mut Self {
        self.values.push(value.into());
        match self.backend {
            DbBackend::Postgres => {
                let _ = write!(self.text, "${}", self.values.len());
            }
            _ => self.text.push('?'),
        }
        self
    }

    /// Appends `(v1, v2, …)`.
    pub fn bind_list<V: Into<Value>>(&mut self, values: impl IntoIterator<Item = V>) -> &mut Self {
        self.text.push('(');
        for (index, value) in values.into_iter().enumerate() {
            if index > 0 {
                self.text.push_str(", ");
            }
            self.bind(value);
        }
        self.text.push(')');
        self
    }

    /// Appends ` AND (sort_column, id) < (…)`: the rows after `token` in a newest-first
    /// keyset page ordered by `sort_column DESC, id DESC`.
    pub fn after_page(&mut self, sort_column: &str, token: &crate::time::PageToken) -> &mut Self {
        self.push(&format!(" AND ({sort_column}, id) < ("))
            .bind(token.sort_us)
            .push(", ")
            .bind(token.id.as_str())
            .push(")")
    }

    pub fn statement(self) -> Statement {
        Statement::from_sql_and_values(self.backend, self.text, self.values)
    }
}

/// `INSERT INTO {table} ({columns})` and `rows` (one value per column each, in order): on
/// PostgreSQL one JSON parameter expanded by `json_populate_recordset`, so the statement's text,
/// and the plan PostgreSQL caches for it, is the same for any number of rows, and each value is
/// read by its column's own input function; elsewhere `VALUES (…), (…)`. The caller appends what
/// follows (`ON CONFLICT …`). Text, integers, floats, booleans, bytes and NULL are supported.
pub fn insert_rows(
    backend: DbBackend,
    table: &str,
    columns: &[&str],
    rows: impl IntoIterator<Item = Vec<Value>>,
) -> Result<Sql, crate::Error> {
    let list = columns.join(", ");
    let mut sql = Sql::new(backend);
    sql.push(&format!("INSERT INTO {table} ({list}) "));
    if backend != DbBackend::Postgres {
        sql.push("VALUES ");
        for (index, row) in rows.into_iter().enumerate() {
            if index > 0 {
                sql.push(", ");
            }
            sql.bind_list(row);
        }
        return Ok(sql);
    }
    let mut json = Vec::new();
    for row in rows {
        let mut object = serde_json::Map::with_capacity(columns.len());
        for (column, value) in columns.iter().zip(row) {
            object.insert((*column).to_owned(), json_value(value)?);
        }
        json.push(serde_json::Value::Object(object));
    }
    let json = serde_json::to_string(&json).map_err(crate::Error::internal)?;
    sql.push(&format!(
        "SELECT {list} FROM json_populate_recordset(NULL::{table}, "
    ))
    .bind(json)
    .push("::json)");
    Ok(sql)
}

/// `value` as `json_populate_recordset` reads it into a column of its type.
fn json_value(value: Value) -> Result<serde_json::Value, crate::Error> {
    use serde_json::Value as Json;
    Ok(match value {
        Value::Bool(v) => v.map_or(Json::Null, Json::from),
        Value::TinyInt(v) => v.map_or(Json::Null, Json::from),
        Value::SmallInt(v) => v.map_or(Json::Null, Json::from),
        Value::Int(v) => v.map_or(Json::Null, Json::from),
        Value::BigInt(v) => v.map_or(Json::Null, Json::from),
        Value::TinyUnsigned(v) => v.map_or(Json::Null, Json::from),
        Value::SmallUnsigned(v) => v.map_or(Json::Null, Json::from),
        Value::Unsigned(v) => v.map_or(Json::Null, Json::from),
        Value::BigUnsigned(v) => v.map_or(Json::Null, Json::from),
        Value::Float(v) => v.map_or(Json::Null, Json::from),
        Value::Double(v) => v.map_or(Json::Null, Json::from),
        Value::String(v) => v.map_or(Json::Null, |s| Json::from(s.to_string())),
        Value::Char(v) => v.map_or(Json::Null, |c| Json::from(c.to_string())),
        Value::Bytes(v) => v.map_or(Json::Null, |b| Json::from(crate::db::bytea_hex(&b))),
        // Never the value itself in the message: it may be personal data.
        _ => return Err(crate::Error::internal("insert_rows cannot carry this type")),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn rows() -> Vec<Vec<Value>> {
        vec![
            vec!["a".into(), 1_i64.into(), vec![0x0a_u8, 0xff].into()],
            vec![
                "b".into(),
                Option::<i64>::None.into(),
                Vec::<u8>::new().into(),
            ],
        ]
    }

    #[test]
    fn sqlite_gets_values_lists() {
        let sql = insert_rows(DbBackend::Sqlite, "t", &["k", "n", "b"], rows()).unwrap();
        let statement = sql.statement();
        assert_eq!(
            statement.sql,
            "INSERT INTO t (k, n, b) VALUES (?, ?, ?), (?, ?, ?)"
        );
        assert_eq!(statement.values.unwrap().0.len(), 6);
    }

    #[test]
    fn postgres_gets_one_json_parameter_whatever_the_rows() {
        let sql = insert_rows(DbBackend::Postgres, "t", &["k", "n", "b"], rows()).unwrap();
        let statement = sql.statement();
        assert_eq!(
            statement.sql,
            "INSERT INTO t (k, n, b) SELECT k, n, b FROM json_populate_recordset(NULL::t, $1::json)"
        );
        let values = statement.values.unwrap().0;
        let Value::String(Some(json)) = &values[0] else {
            panic!("{values:?}")
        };
        let parsed: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!([
                {"k": "a", "n": 1, "b": "\\x0aff"},
                {"k": "b", "n": null, "b": "\\x"},
            ])
        );
    }
}
