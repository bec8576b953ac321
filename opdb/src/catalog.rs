//! The `opdb` schema: every table of the operational DB, described on
//! demand so that it always matches the database.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::common::{Result, TableReference};
use datafusion::prelude::SessionContext;

use super::introspect::{self, INTERNAL_PREFIX};
use super::scan::OpdbTable;
use super::{Opdb, OpdbError};

/// The schema name under the default catalog.
pub const SCHEMA: &str = "opdb";

/// The `opdb` schema of one operational DB.
#[derive(Debug)]
pub struct OpdbSchema {
    opdb: Arc<Opdb>,
    names: Vec<String>,
}

impl OpdbSchema {
    /// Lists the tables of `opdb` (its read endpoint).
    pub async fn load(opdb: Arc<Opdb>) -> Result<Self, OpdbError> {
        let mut conn = opdb.connect_read(None).await?;
        let names = introspect::table_names(&mut conn).await;
        conn.close().await;
        Ok(Self { opdb, names: names? })
    }
}

#[async_trait]
impl SchemaProvider for OpdbSchema {
    fn table_names(&self) -> Vec<String> {
        self.names.clone()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if name.starts_with(INTERNAL_PREFIX) {
            return Ok(None);
        }
        if !name_travels(name) {
            return Err(OpdbError::Plan(format!(
                "opdb table {name:?} cannot be used: plans sent across the cluster carry table names \
                 only as plain identifiers (letters, digits, _), and this one would be misread. Create a \
                 view with a plain name over it in the database."
            ))
            .into());
        }
        let mut conn = self.opdb.connect_read(None).await?;
        let meta = introspect::describe(&mut conn, name).await;
        conn.close().await;
        Ok(meta?.map(|m| Arc::new(OpdbTable::new(Arc::clone(&self.opdb), m)) as Arc<dyn TableProvider>))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }
}

/// Registers the `opdb` schema on `ctx`; returns the table names.
pub async fn register_opdb(ctx: &SessionContext, opdb: Arc<Opdb>) -> Result<Vec<String>, OpdbError> {
    let schema = OpdbSchema::load(opdb).await?;
    let names = schema.names.clone();
    let catalog = ctx
        .catalog(&ctx.state().config().options().catalog.default_catalog)
        .ok_or_else(|| OpdbError::Plan("no default catalog".into()))?;
    catalog.register_schema(SCHEMA, Arc::new(schema)).map_err(|e| OpdbError::Plan(e.to_string()))?;
    Ok(names)
}

/// Whether a table name survives the trip through a serialized plan, where
/// DataFusion writes column relations as unquoted `schema.table` text.
pub fn name_travels(name: &str) -> bool {
    let r = TableReference::partial(SCHEMA, name);
    TableReference::parse_str_normalized(&r.to_string(), true) == r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_travel_others_do_not() {
        for n in ["sessions", "Upper", "_t2"] {
            assert!(name_travels(n), "{n}");
        }
        for n in ["weird; DROP TABLE victim; --", "it's", "a`b", "a b", "x\"y", "a.b"] {
            assert!(!name_travels(n), "{n}");
        }
    }
}
