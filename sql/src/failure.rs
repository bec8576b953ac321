//! A failed statement's error, made to say what failed where the engine's
//! own does not: a plan too large to send ([`crate::codec::plan_size`]), and
//! a lake file that is not readable Parquet (Ballista's planner and
//! DataFusion's reader report `Corrupt footer` without naming the file).
//! Used by the CLI and the front end alike.

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::listing::ListingTable;
use datafusion::datasource::source_as_provider;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::LogicalPlan;
use datafusion::parquet::file::metadata::ParquetMetaDataReader;
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};

use crate::codec::plan_size;

/// `e`, the error of running `logical` on `ctx`, or one that says more.
pub async fn explain(e: DataFusionError, ctx: &SessionContext, logical: &LogicalPlan) -> DataFusionError {
    let message = e.to_string();
    if plan_size::is_transport_failure(&message)
        && let Some(why) = plan_size::oversized(&ctx.state(), logical)
    {
        return DataFusionError::Plan(why);
    }
    if message.contains("Parquet error") || message.contains("ParquetError") {
        let unreadable = unreadable_parquet(ctx, logical).await;
        if !unreadable.is_empty() {
            return DataFusionError::Execution(format!(
                "not readable as Parquet (corrupt, cut short or not Parquet at all): {}; replace or remove \
                 the file, or move it out of the table's folder",
                unreadable.join("; ")
            ));
        }
    }
    e
}

/// The Parquet files of the tables `logical` scans whose footers cannot be
/// read, each with why (only after a failure: it reads every footer).
async fn unreadable_parquet(ctx: &SessionContext, logical: &LogicalPlan) -> Vec<String> {
    let mut tables = Vec::new();
    let _ = logical.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Ok(provider) = source_as_provider(&scan.source)
        {
            tables.push(provider);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    let mut unreadable = Vec::new();
    for provider in tables {
        let Some(listing) = (provider.as_ref() as &dyn std::any::Any).downcast_ref::<ListingTable>() else { continue };
        for url in listing.table_paths() {
            let Ok(store) = ctx.runtime_env().object_store(url.object_store()) else { continue };
            let Ok(files) = store.list(Some(url.prefix())).try_collect::<Vec<_>>().await else { continue };
            for file in files.into_iter().filter(|f| f.location.as_ref().ends_with(".parquet")) {
                if let Err(why) = read_footer(store.as_ref(), &file).await {
                    unreadable.push(format!("{}{}: {why}", url.object_store().as_str(), file.location));
                }
            }
        }
    }
    unreadable
}

/// Reads and decodes the footer of the Parquet file `file`: its last 8
/// bytes (the metadata's length and `PAR1`), then the metadata.
async fn read_footer(store: &dyn ObjectStore, file: &ObjectMeta) -> Result<(), String> {
    let size = file.size;
    if size < 12 {
        return Err(format!("{size} bytes, too short for Parquet"));
    }
    let tail = store.get_range(&file.location, size - 8..size).await.map_err(|e| e.to_string())?;
    if &tail[4..] != b"PAR1" {
        return Err("no Parquet footer (it does not end in PAR1)".into());
    }
    let length = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if length + 8 > size {
        return Err(format!("its footer says {length} bytes of metadata, past the file's start"));
    }
    let metadata = store.get_range(&file.location, size - 8 - length..size - 8).await.map_err(|e| e.to_string())?;
    ParquetMetaDataReader::decode_metadata(&metadata).map(|_| ()).map_err(|e| e.to_string())
}
