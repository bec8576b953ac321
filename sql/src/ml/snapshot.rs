//! A query's rows written once, where the cluster runs it, to a scratch
//! folder of the model store and registered as a table of the `ml` schema.
//!
//! A statement that reads one input many times (`ML.CROSS_VALIDATE`: each
//! fold counts, describes, trains on and evaluates its share) then runs the
//! input query once — an operational-DB join is not repeated thirty times —
//! and every reading sees the same rows, however the sources change
//! meanwhile. The folder lives under the model's `payloads/`, so the files of
//! a statement killed before [`Snapshot::discard`] are swept with its
//! parameter files ([`ModelStore::sweep_orphan_payloads`]).

use std::sync::Arc;

use datafusion::common::TableReference;

use crate::ml::store::ModelStore;
use crate::ml::{MlContext, MlError};
use crate::sqltext::lit;

/// The rows of a query, stored once and readable as `ml.<table>`.
pub struct Snapshot<'a> {
    ml: &'a MlContext,
    store: &'a ModelStore,
    folder: String,
    table: String,
}

impl<'a> Snapshot<'a> {
    /// Runs `query` in the cluster, its executors writing the rows as
    /// Parquet into `models/<model>/payloads/scratch-<unique>/rows/`, and
    /// registers them as `ml.<table>` ([`Self::table`]). On an error nothing
    /// is left behind.
    pub async fn take(
        ml: &'a MlContext,
        store: &'a ModelStore,
        model: &str,
        unique: &str,
        query: &str,
    ) -> Result<Snapshot<'a>, MlError> {
        let folder = format!("models/{model}/payloads/scratch-{unique}/");
        let table = format!("__rows_{}", unique.replace(|c: char| !c.is_ascii_alphanumeric(), "_"));
        let snapshot = Snapshot { ml, store, folder, table };
        match snapshot.write(query).await {
            Ok(()) => Ok(snapshot),
            Err(e) => {
                snapshot.discard().await;
                Err(e)
            }
        }
    }

    async fn write(&self, query: &str) -> Result<(), MlError> {
        let schema = Arc::new(self.ml.ctx.sql(query).await?.schema().as_arrow().clone());
        let rows = self.rows_folder();
        let url = self.store.url(&rows);
        self.ml.collect(&format!("COPY ({query}) TO {} STORED AS PARQUET", lit(&url))).await?;
        self.store.register_table(&self.ml.ctx, &self.table, &rows, schema)
    }

    fn rows_folder(&self) -> String {
        format!("{}rows/", self.folder)
    }

    /// The table's name in the `ml` schema.
    pub fn table(&self) -> String {
        format!("ml.{}", self.table)
    }

    /// A path for a scratch file of the statement (`name` within the
    /// snapshot's folder), removed with it.
    pub fn scratch_file(&self, name: &str) -> String {
        format!("{}{name}", self.folder)
    }

    /// Unregisters the table and removes its files (a failure to remove them
    /// is logged: the sweep removes them later).
    pub async fn discard(&self) {
        let _ = self.ml.ctx.deregister_table(TableReference::partial("ml", self.table.as_str()));
        if let Err(e) = self.store.delete_folder(&self.folder).await {
            log::warn!("scratch folder {} was not removed: {e}", self.folder);
        }
    }
}
