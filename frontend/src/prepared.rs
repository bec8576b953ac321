//! Prepared statements: a statement's text kept in a session under a
//! handle, with the parameter values a client bound to it last.
//!
//! A statement takes positional parameters (`$1`, `$2`, …) bound as the
//! columns of an Arrow record batch, in order. A query runs with one row of
//! values; a write (`DoPut` of an update) runs once per row.

use std::collections::HashMap;
use std::sync::Mutex;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{ParamValues, ScalarValue};
use sentio_sql::SentioError;

use crate::auth::random_text;

/// A prepared statement.
#[derive(Clone)]
pub struct Prepared {
    /// Its text.
    pub sql: String,
    /// The parameter values bound last, if any.
    pub parameters: Option<RecordBatch>,
}

impl Prepared {
    /// The values of its placeholders for each row bound (`[None]` when
    /// none were bound).
    pub fn parameter_rows(&self) -> Result<Vec<Option<ParamValues>>, SentioError> {
        let Some(batch) = &self.parameters else { return Ok(vec![None]) };
        (0..batch.num_rows()).map(|row| row_values(batch, row).map(Some)).collect()
    }

    /// The values of its placeholders for a query: none, or one row.
    pub fn query_parameters(&self) -> Result<Option<ParamValues>, SentioError> {
        let mut rows = self.parameter_rows()?;
        match rows.len() {
            1 => Ok(rows.remove(0)),
            n => Err(SentioError::Parameters(format!(
                "a query runs with one row of parameter values; {n} rows were bound (several rows are for writes)"
            ))),
        }
    }
}

/// Row `row` of `batch` as positional values: column 1 is `$1`.
fn row_values(batch: &RecordBatch, row: usize) -> Result<ParamValues, SentioError> {
    let values = batch
        .columns()
        .iter()
        .map(|column| ScalarValue::try_from_array(column, row))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SentioError::Parameters(e.to_string()))?;
    Ok(values.into())
}

/// A session's prepared statements, by handle.
#[derive(Default)]
pub struct PreparedStatements {
    by_handle: Mutex<HashMap<String, Prepared>>,
}

impl PreparedStatements {
    /// Keeps `sql`; returns its handle.
    pub fn create(&self, sql: &str) -> String {
        let handle = random_text();
        self.lock().insert(handle.clone(), Prepared { sql: sql.to_string(), parameters: None });
        handle
    }

    /// Binds `parameters` to the statement `handle`; false if there is none.
    pub fn bind(&self, handle: &str, parameters: RecordBatch) -> bool {
        match self.lock().get_mut(handle) {
            Some(p) => {
                p.parameters = Some(parameters);
                true
            }
            None => false,
        }
    }

    /// The statement `handle`, if the session has it.
    pub fn get(&self, handle: &str) -> Option<Prepared> {
        self.lock().get(handle).cloned()
    }

    /// Forgets the statement `handle`.
    pub fn close(&self, handle: &str) -> bool {
        self.lock().remove(handle).is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Prepared>> {
        self.by_handle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, StringArray};

    use super::*;

    fn two_rows() -> RecordBatch {
        RecordBatch::try_from_iter([
            ("0", Arc::new(Int64Array::from(vec![7, 8])) as _),
            ("1", Arc::new(StringArray::from(vec![Some("a"), None])) as _),
        ])
        .unwrap()
    }

    #[test]
    fn bound_rows_become_positional_values() {
        let statements = PreparedStatements::default();
        let handle = statements.create("SELECT $1, $2");
        assert_eq!(statements.get(&handle).unwrap().parameter_rows().unwrap().len(), 1, "nothing bound: one run");
        assert!(statements.bind(&handle, two_rows()));
        let rows = statements.get(&handle).unwrap().parameter_rows().unwrap();
        let ParamValues::List(second) = rows[1].clone().unwrap() else { panic!("positional") };
        let values: Vec<ScalarValue> = second.into_iter().map(|v| v.value).collect();
        assert_eq!(values, vec![ScalarValue::Int64(Some(8)), ScalarValue::Utf8(None)]);
        let query = statements.get(&handle).unwrap().query_parameters();
        assert!(query.unwrap_err().to_string().contains("2 rows were bound"));
        assert!(statements.close(&handle) && statements.get(&handle).is_none());
        assert!(!statements.bind(&handle, two_rows()), "a closed statement takes no parameters");
    }
}
