//! The protobuf forms of `opdb` plan nodes (messages in `proto/sentio.proto`),
//! used by Sentio's codecs (`sentio_sql::codec`).

use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::bytes::Serializeable;
use prost::Message;
use sentio_proto::{OpdbPublishNode, OpdbScanNode, OpdbStageNode, OpdbTableNode};

use super::Opdb;
use super::meta::TableMeta;
use super::scan::{OpdbScanExec, OpdbTable};
use super::write::{OpdbPublishExec, OpdbStageExec};

/// Kind of the logical table provider node.
pub const TABLE: &str = "opdb_table";
/// Kind of the scan node.
pub const SCAN: &str = "opdb_scan";
/// Kind of the staging node.
pub const STAGE: &str = "opdb_stage";
/// Kind of the publishing node.
pub const PUBLISH: &str = "opdb_publish";

fn corrupt(kind: &str, e: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Internal(format!("corrupt Sentio plan node '{kind}': {e}"))
}

fn table_meta(kind: &str, node: Option<&OpdbTableNode>) -> Result<Arc<TableMeta>> {
    let node = node.ok_or_else(|| corrupt(kind, "no table"))?;
    Ok(Arc::new(TableMeta::from_proto(node)?))
}

/// Encodes an `opdb` table provider: `(kind, payload)`, or `None` for other
/// providers.
pub fn encode_table(provider: &dyn TableProvider) -> Option<(&'static str, Vec<u8>)> {
    let t = (provider as &dyn std::any::Any).downcast_ref::<OpdbTable>()?;
    Some((TABLE, t.meta().to_proto().encode_to_vec()))
}

/// Decodes an `opdb` table provider of kind [`TABLE`].
pub fn decode_table(payload: &[u8], opdb: &Arc<Opdb>) -> Result<Arc<dyn TableProvider>> {
    let node = OpdbTableNode::decode(payload).map_err(|e| corrupt(TABLE, e))?;
    Ok(Arc::new(OpdbTable::new(Arc::clone(opdb), TableMeta::from_proto(&node)?)))
}

/// Encodes an `opdb` execution plan node: `(kind, payload)`, or `None` for
/// other nodes.
pub fn encode_exec(plan: &Arc<dyn ExecutionPlan>) -> Result<Option<(&'static str, Vec<u8>)>> {
    if let Some(scan) = plan.downcast_ref::<OpdbScanExec>() {
        let filters = scan.filters().iter().map(|f| f.to_bytes().map(|b| b.to_vec())).collect::<Result<Vec<_>>>()?;
        let node = OpdbScanNode {
            table: Some(scan.meta().to_proto()),
            projection: scan.projection().iter().map(|i| *i as u32).collect(),
            filters,
            limit: scan.limit().map(|l| l as u64),
        };
        return Ok(Some((SCAN, node.encode_to_vec())));
    }
    if let Some(stage) = plan.downcast_ref::<OpdbStageExec>() {
        let node = OpdbStageNode {
            table: Some(stage.meta().to_proto()),
            write_id: stage.write_id().to_string(),
            columns: stage.meta().columns.iter().map(|c| c.name.clone()).collect(),
            index_columns: stage.index_columns().to_vec(),
        };
        return Ok(Some((STAGE, node.encode_to_vec())));
    }
    if let Some(publish) = plan.downcast_ref::<OpdbPublishExec>() {
        let node = OpdbPublishNode {
            table: Some(publish.meta().to_proto()),
            write_id: publish.write_id().to_string(),
            columns: publish.meta().columns.iter().map(|c| c.name.clone()).collect(),
            replace_key: publish.replace_key().to_vec(),
        };
        return Ok(Some((PUBLISH, node.encode_to_vec())));
    }
    Ok(None)
}

fn check_write_id(kind: &str, id: &str) -> Result<()> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(corrupt(kind, format!("write id {id:?}")));
    }
    Ok(())
}

fn check_columns(kind: &str, meta: &TableMeta, columns: &[String]) -> Result<()> {
    if meta.columns.iter().map(|c| &c.name).ne(columns.iter()) {
        return Err(corrupt(kind, "column list does not match the table"));
    }
    Ok(())
}

fn one_input(kind: &str, inputs: &[Arc<dyn ExecutionPlan>]) -> Result<Arc<dyn ExecutionPlan>> {
    match inputs {
        [input] => Ok(Arc::clone(input)),
        _ => Err(corrupt(kind, format!("{} inputs instead of 1", inputs.len()))),
    }
}

/// Decodes an `opdb` execution plan node of `kind`, or `None` if `kind` is
/// not an `opdb` node.
pub fn decode_exec(
    kind: &str,
    payload: &[u8],
    inputs: &[Arc<dyn ExecutionPlan>],
    opdb: &Arc<Opdb>,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let plan: Arc<dyn ExecutionPlan> = match kind {
        SCAN => {
            let node = OpdbScanNode::decode(payload).map_err(|e| corrupt(kind, e))?;
            let meta = table_meta(kind, node.table.as_ref())?;
            let filters = node
                .filters
                .iter()
                .map(|b| Expr::from_bytes(b))
                .collect::<Result<Vec<_>>>()
                .map_err(|e| corrupt(kind, e))?;
            Arc::new(OpdbScanExec::new(
                Arc::clone(opdb),
                meta,
                node.projection.iter().map(|i| *i as usize).collect(),
                filters,
                node.limit.map(|l| l as usize),
                one_input(kind, inputs)?,
            )?)
        }
        STAGE => {
            let node = OpdbStageNode::decode(payload).map_err(|e| corrupt(kind, e))?;
            let meta = table_meta(kind, node.table.as_ref())?;
            check_write_id(kind, &node.write_id)?;
            check_columns(kind, &meta, &node.columns)?;
            if let Some(k) = node.index_columns.iter().find(|k| meta.column(k).is_none()) {
                return Err(corrupt(kind, format!("unknown key column {k:?}")));
            }
            Arc::new(OpdbStageExec::new(
                Arc::clone(opdb),
                meta,
                node.write_id,
                node.index_columns,
                one_input(kind, inputs)?,
            ))
        }
        PUBLISH => {
            let node = OpdbPublishNode::decode(payload).map_err(|e| corrupt(kind, e))?;
            let meta = table_meta(kind, node.table.as_ref())?;
            check_write_id(kind, &node.write_id)?;
            check_columns(kind, &meta, &node.columns)?;
            if let Some(k) = node.replace_key.iter().find(|k| meta.column(k).is_none()) {
                return Err(corrupt(kind, format!("unknown key column {k:?}")));
            }
            Arc::new(OpdbPublishExec::new(
                Arc::clone(opdb),
                meta,
                node.write_id,
                node.replace_key,
                one_input(kind, inputs)?,
            ))
        }
        _ => return Ok(None),
    };
    Ok(Some(plan))
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::{col, lit};

    use super::*;
    use crate::Backend;
    use crate::meta::tests::sessions;
    use crate::scan::{KeyRange, ranges_source};

    #[test]
    fn scans_survive_the_codec() {
        let opdb = Arc::new(Opdb::default());
        let ranges = [KeyRange { low: None, high: Some(10) }, KeyRange { low: Some(10), high: None }];
        let input = ranges_source(&ranges).unwrap();
        let scan: Arc<dyn ExecutionPlan> = Arc::new(
            OpdbScanExec::new(
                Arc::clone(&opdb),
                Arc::new(sessions(Backend::MySql)),
                vec![1, 0],
                vec![col("session_id").gt(lit(3i64)), col("country").eq(lit("DE"))],
                Some(5),
                Arc::clone(&input),
            )
            .unwrap(),
        );
        let (kind, payload) = encode_exec(&scan).unwrap().unwrap();
        assert_eq!(kind, SCAN);
        let back = decode_exec(kind, &payload, &[input], &opdb).unwrap().unwrap();
        let back = back.downcast_ref::<OpdbScanExec>().unwrap();
        let before = scan.downcast_ref::<OpdbScanExec>().unwrap();
        for r in ranges {
            assert_eq!(back.sql(r), before.sql(r));
        }
        assert!(decode_exec("opdb_nope", &payload, &[], &opdb).unwrap().is_none());
        assert!(decode_exec(SCAN, b"\xff\xff", &[], &opdb).is_err());
    }
}
