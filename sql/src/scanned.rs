//! Bytes scanned by file sources that do not count them themselves.
//!
//! DataFusion's Parquet scan reports `bytes_scanned` (the bytes it read
//! from its files) and Sentio's operational-DB scan reports the Arrow size
//! of the rows it read; the scans of CSV, JSON and Arrow files report none,
//! so a query over an ad hoc CSV file said it scanned nothing. Those scans
//! read the whole byte range of every file they are given, so [`note`]
//! counts those ranges, as the scan's own `bytes_scanned` metric (the job
//! metrics the scheduler gathers, [`crate::jobs::bytes_scanned`]).

use std::sync::Arc;

use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::MetricBuilder;

/// The name of the metric, as the Parquet scan names its own.
pub const BYTES_SCANNED: &str = "bytes_scanned";

/// When `scan` is a file scan without a byte count of its own (CSV, JSON,
/// Arrow), adds the bytes of the file ranges its `partition` reads to its
/// `bytes_scanned` metric. Any other plan is left alone.
pub fn note(scan: &Arc<dyn ExecutionPlan>, partition: usize) {
    let Some(config) =
        scan.downcast_ref::<DataSourceExec>().and_then(|exec| exec.data_source().downcast_ref::<FileScanConfig>())
    else {
        return;
    };
    if config.file_source().file_type() == "parquet" {
        return;
    }
    let Some(group) = config.file_groups.get(partition) else { return };
    let bytes: u64 =
        group.iter().map(|f| f.range.as_ref().map_or(f.object_meta.size, |r| (r.end - r.start).max(0) as u64)).sum();
    MetricBuilder::new(config.file_source().metrics()).counter(BYTES_SCANNED, partition).add(bytes as usize);
}
