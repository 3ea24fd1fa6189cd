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
