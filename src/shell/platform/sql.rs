//! SQLite in a Durable Object, for both objects' databases (the location's and the Directory's):
//! statements run, rows read as the platform's raw column values into small row types
//! ([`FromRow`]), and the rows read and written counted (what the platform bills). Rows never go
//! through `serde_wasm_bindgen`, which would compile a JavaScript-object deserialiser for every
//! row type.

use std::cell::Cell;

use worker::{SqlCursor, SqlStorage, SqlStorageValue};

/// Why a statement failed or a row did not have the columns its type reads.
#[derive(Debug)]
pub struct SqlError(pub String);

impl From<worker::Error> for SqlError {
    fn from(error: worker::Error) -> SqlError {
        SqlError(error.to_string())
    }
}

impl From<SqlError> for String {
    fn from(error: SqlError) -> String {
        format!("storage failed: {}", error.0)
    }
}

/// A row type, built from its query's columns in the order the query names them.
pub trait FromRow: Sized {
    fn from_row(columns: &mut Columns) -> Result<Self, SqlError>;
}

/// One row's columns, taken in order.
pub struct Columns(std::vec::IntoIter<SqlStorageValue>);

impl Columns {
    pub fn text(&mut self) -> Result<String, SqlError> {
        self.optional_text()?.ok_or_else(|| SqlError("a text column is null".to_owned()))
    }

    /// A text column; `None` for SQL `NULL`.
    pub fn optional_text(&mut self) -> Result<Option<String>, SqlError> {
        match self.0.next() {
            Some(SqlStorageValue::String(text)) => Ok(Some(text)),
            Some(SqlStorageValue::Null) => Ok(None),
            _ => Err(SqlError("a column is not text".to_owned())),
        }
    }

    /// An integer column; `None` for SQL `NULL`.
    pub fn integer(&mut self) -> Result<Option<i64>, SqlError> {
        match self.0.next() {
            Some(SqlStorageValue::Integer(n)) => Ok(Some(n)),
            Some(SqlStorageValue::Null) => Ok(None),
            _ => Err(SqlError("a column is not an integer".to_owned())),
        }
    }

    pub fn not_null_integer(&mut self) -> Result<i64, SqlError> {
        self.integer()?.ok_or_else(|| SqlError("an integer column is null".to_owned()))
    }
}

/// One text column: an id or a stored value.
pub struct TextRow(pub String);

impl FromRow for TextRow {
    fn from_row(columns: &mut Columns) -> Result<Self, SqlError> {
        columns.text().map(TextRow)
    }
}

/// One integer column (a count, a minimum), `None` for SQL `NULL`.
pub struct IntegerRow(pub Option<i64>);

impl FromRow for IntegerRow {
    fn from_row(columns: &mut Columns) -> Result<Self, SqlError> {
        columns.integer().map(IntegerRow)
    }
}

/// A Durable Object's SQLite storage, with what it has read and written since this instance
/// started.
pub struct Sql {
    sql: SqlStorage,
    rows_read: Cell<u64>,
    rows_written: Cell<u64>,
}

impl Sql {
    /// The storage, with `schema` applied (`CREATE ... IF NOT EXISTS` statements).
    pub fn open(sql: SqlStorage, schema: &str) -> Result<Sql, SqlError> {
        let sql = Sql { sql, rows_read: Cell::new(0), rows_written: Cell::new(0) };
        sql.run(schema, vec![])?;
        Ok(sql)
    }

    /// The storage as it is, for a reader of tables that another [`Sql`] created.
    pub fn over(sql: SqlStorage) -> Sql {
        Sql { sql, rows_read: Cell::new(0), rows_written: Cell::new(0) }
    }

    /// What the object has cost since this instance started: `requests` (alarms included, the
    /// object counts them) and the rows read and written.
    pub fn usage(&self, requests: u64) -> serde_json::Value {
        serde_json::json!({
            "requests": requests, "rows_read": self.rows_read.get(), "rows_written": self.rows_written.get()
        })
    }

    /// Runs `query` and reads every row.
    pub fn rows<T: FromRow>(&self, query: &str, bindings: Vec<SqlStorageValue>) -> Result<Vec<T>, SqlError> {
        let cursor = self.sql.exec(query, bindings)?;
        let mut rows = Vec::new();
        for row in cursor.raw() {
            rows.push(T::from_row(&mut Columns(row?.into_iter()))?);
        }
        self.tally(&cursor);
        Ok(rows)
    }

    /// Runs a statement that returns no rows (any it did return are read and dropped).
    pub fn run(&self, query: &str, bindings: Vec<SqlStorageValue>) -> Result<(), SqlError> {
        let cursor = self.sql.exec(query, bindings)?;
        for row in cursor.raw() {
            row?;
        }
        self.tally(&cursor);
        Ok(())
    }

    fn tally(&self, cursor: &SqlCursor) {
        self.rows_read.set(self.rows_read.get() + cursor.rows_read() as u64);
        self.rows_written.set(self.rows_written.get() + cursor.rows_written() as u64);
    }
}
