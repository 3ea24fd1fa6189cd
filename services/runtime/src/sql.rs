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

    /// How many values are bound so far.
    pub fn bound(&self) -> usize {
        self.values.len()
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
    // Written straight out rather than built as `serde_json::Value`s: a map per row allocated
    // every column's name and value again, a few percent of a busy sender's time.
    let keys: Vec<String> = columns
        .iter()
        .map(|column| format!("{}:", serde_json::Value::from(*column)))
        .collect();
    let mut json = Vec::with_capacity(1024);
    json.push(b'[');
    for (index, row) in rows.into_iter().enumerate() {
        if index > 0 {
            json.push(b',');
        }
        json.push(b'{');
        for (position, (key, value)) in keys.iter().zip(row).enumerate() {
            if position > 0 {
                json.push(b',');
            }
            json.extend_from_slice(key.as_bytes());
            write_json_value(&mut json, value)?;
        }
        json.push(b'}');
    }
    json.push(b']');
    let json = String::from_utf8(json).map_err(crate::Error::internal)?;
    sql.push(&format!(
        "SELECT {list} FROM json_populate_recordset(NULL::{table}, "
    ))
    .bind(json)
    .push("::json)");
    Ok(sql)
}

/// Appends `value` to `out` as `json_populate_recordset` reads it into a column of its type.
fn write_json_value(out: &mut Vec<u8>, value: Value) -> Result<(), crate::Error> {
    fn write<T: serde::Serialize>(out: &mut Vec<u8>, value: Option<T>) -> Result<(), crate::Error> {
        match value {
            Some(value) => serde_json::to_writer(out, &value).map_err(crate::Error::internal),
            None => {
                out.extend_from_slice(b"null");
                Ok(())
            }
        }
    }
    match value {
        Value::Bool(v) => write(out, v),
        Value::TinyInt(v) => write(out, v),
        Value::SmallInt(v) => write(out, v),
        Value::Int(v) => write(out, v),
        Value::BigInt(v) => write(out, v),
        Value::TinyUnsigned(v) => write(out, v),
        Value::SmallUnsigned(v) => write(out, v),
        Value::Unsigned(v) => write(out, v),
        Value::BigUnsigned(v) => write(out, v),
        Value::Float(v) => write(out, v),
        Value::Double(v) => write(out, v),
        Value::String(v) => write(out, v),
        Value::Char(v) => write(out, v),
        Value::Bytes(v) => write(out, v.map(|bytes| crate::db::bytea_hex(&bytes))),
        // Never the value itself in the message: it may be personal data.
        _ => Err(crate::Error::internal("insert_rows cannot carry this type")),
    }
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
            vec![
                "quote \" and \\ and \u{1}".into(),
                (-7.5_f64).into(),
                Option::<Vec<u8>>::None.into(),
            ],
        ]
    }

    #[test]
    fn sqlite_gets_values_lists() {
        let sql = insert_rows(DbBackend::Sqlite, "t", &["k", "n", "b"], rows()).unwrap();
        let statement = sql.statement();
        assert_eq!(
            statement.sql,
            "INSERT INTO t (k, n, b) VALUES (?, ?, ?), (?, ?, ?), (?, ?, ?)"
        );
        assert_eq!(statement.values.unwrap().0.len(), 9);
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
                {"k": "quote \" and \\ and \u{1}", "n": -7.5, "b": null},
            ])
        );
    }
}
