//! Sentio's plan codecs: wrap Ballista's default codecs and delegate to them.
//!
//! Sentio's own plan nodes (the operational DB's, a join built in every
//! task: [`crate::small_joins::exec`]), and the tables of DataFusion's `generate_series`
//! and `range` table functions (which Ballista's codec cannot write; see
//! [`series`]), travel inside a [`sentio_proto::ExtensionEnvelope`]
//! (magic, format version, kind, payload); everything else is Ballista's or
//! DataFusion's and goes to Ballista's codecs untouched. The same codec
//! instances are installed on the client, the scheduler and every executor by
//! [`crate::session`]. A node that this build does not know — written by a
//! newer Sentio on another machine — fails with an error that says so,
//! instead of a protobuf decoding error.

use std::sync::Arc;

use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::{DataFusionError, Result, TableReference};
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{AggregateUDF, Extension, LogicalPlan, ScalarUDF, WindowUDF};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use prost::Message;
use sentio_proto::{ENVELOPE_MAGIC, ExtensionEnvelope, FORMAT_VERSION};

use sentio_opdb::{self as opdb, Opdb};

use crate::small_joins::{self, exec::SmallSideJoinExec};

pub mod plan_size;
pub mod series;

/// The first bytes of every encoded envelope: field 1 (`fixed32 magic`).
fn envelope_prefix() -> [u8; 5] {
    let m = ENVELOPE_MAGIC.to_le_bytes();
    [(1 << 3) | 5, m[0], m[1], m[2], m[3]]
}

/// Decodes `buf` as a Sentio envelope if it is one.
pub fn sentio_envelope(buf: &[u8]) -> Result<Option<ExtensionEnvelope>> {
    if !buf.starts_with(&envelope_prefix()) {
        return Ok(None);
    }
    ExtensionEnvelope::decode(buf)
        .map(Some)
        .map_err(|e| DataFusionError::Internal(format!("corrupt Sentio plan node: {e}")))
}

/// Wraps a Sentio node in its envelope.
fn envelope(kind: &str, payload: Vec<u8>) -> Vec<u8> {
    ExtensionEnvelope { magic: ENVELOPE_MAGIC, format_version: FORMAT_VERSION, kind: kind.to_string(), payload }
        .encode_to_vec()
}

/// Refuses a Sentio node this build cannot decode; anything else is left to
/// Ballista's codecs.
fn reject_unknown_sentio_node(buf: &[u8]) -> Result<()> {
    match sentio_envelope(buf)? {
        Some(env) => Err(unknown_node(&env)),
        None => Ok(()),
    }
}

/// The envelope of `buf` if it holds a Sentio node of the current format.
fn known_envelope(buf: &[u8]) -> Result<Option<ExtensionEnvelope>> {
    match sentio_envelope(buf)? {
        Some(env) if env.format_version > FORMAT_VERSION => Err(unknown_node(&env)),
        other => Ok(other),
    }
}

/// The error for a Sentio node this build cannot decode.
fn unknown_node(env: &ExtensionEnvelope) -> DataFusionError {
    let why = if env.format_version > FORMAT_VERSION {
        format!(
            "it was written in format {} by a newer Sentio; this process (Sentio {}) reads format {}",
            env.format_version,
            env!("CARGO_PKG_VERSION"),
            FORMAT_VERSION
        )
    } else {
        format!("this process (Sentio {}) does not know it", env!("CARGO_PKG_VERSION"))
    };
    DataFusionError::Plan(format!(
        "cannot decode Sentio plan node '{}': {why}. The client, the scheduler and every \
         executor must run the same Sentio version.",
        env.kind
    ))
}

/// Functions travel by name: both codecs hand them to Ballista's unchanged.
macro_rules! delegate_function_codecs {
    () => {
        fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
            self.inner.try_decode_udf(name, buf)
        }

        fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
            self.inner.try_encode_udf(node, buf)
        }

        fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
            self.inner.try_decode_udaf(name, buf)
        }

        fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> Result<()> {
            self.inner.try_encode_udaf(node, buf)
        }

        fn try_decode_udwf(&self, name: &str, buf: &[u8]) -> Result<Arc<WindowUDF>> {
            self.inner.try_decode_udwf(name, buf)
        }

        fn try_encode_udwf(&self, node: &WindowUDF, buf: &mut Vec<u8>) -> Result<()> {
            self.inner.try_encode_udwf(node, buf)
        }
    };
}

/// Sentio's logical codec, delegating to Ballista's.
#[derive(Debug, Default)]
pub struct SentioLogicalCodec {
    inner: BallistaLogicalExtensionCodec,
    opdb: Arc<Opdb>,
}

impl SentioLogicalCodec {
    /// A codec whose `opdb` tables use this process's operational DB.
    pub fn new(opdb: Arc<Opdb>) -> Self {
        Self { inner: BallistaLogicalExtensionCodec::default(), opdb }
    }
}

impl LogicalExtensionCodec for SentioLogicalCodec {
    fn try_decode(&self, buf: &[u8], inputs: &[LogicalPlan], ctx: &TaskContext) -> Result<Extension> {
        reject_unknown_sentio_node(buf)?;
        self.inner.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        match known_envelope(buf)? {
            Some(env) if env.kind == opdb::nodes::TABLE => opdb::nodes::decode_table(&env.payload, &self.opdb),
            Some(env) if env.kind == series::KIND => series::decode(&env.payload, schema),
            Some(env) => Err(unknown_node(&env)),
            None => self.inner.try_decode_table_provider(buf, table_ref, schema, ctx),
        }
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        let sentio = match opdb::nodes::encode_table(node.as_ref()) {
            Some(table) => Some(table),
            None => series::encode(node.as_ref())?.map(|payload| (series::KIND, payload)),
        };
        match sentio {
            Some((kind, payload)) => {
                buf.extend(envelope(kind, payload));
                Ok(())
            }
            None => self.inner.try_encode_table_provider(table_ref, node, buf),
        }
    }

    fn try_decode_file_format(&self, buf: &[u8], ctx: &TaskContext) -> Result<Arc<dyn FileFormatFactory>> {
        self.inner.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(&self, buf: &mut Vec<u8>, node: Arc<dyn FileFormatFactory>) -> Result<()> {
        self.inner.try_encode_file_format(buf, node)
    }

    delegate_function_codecs!();
}

/// Sentio's physical codec, delegating to Ballista's.
#[derive(Debug, Default)]
pub struct SentioPhysicalCodec {
    inner: BallistaPhysicalExtensionCodec,
    opdb: Arc<Opdb>,
}

impl SentioPhysicalCodec {
    /// A codec whose `opdb` nodes use this process's operational DB.
    pub fn new(opdb: Arc<Opdb>) -> Self {
        Self { inner: BallistaPhysicalExtensionCodec::default(), opdb }
    }
}

impl PhysicalExtensionCodec for SentioPhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match known_envelope(buf)? {
            Some(env) if env.kind == small_joins::exec::KIND => {
                let join = SmallSideJoinExec::decode(&env.payload, inputs, ctx, self, proto_converter)?;
                Ok(Arc::new(join))
            }
            Some(env) => {
                opdb::nodes::decode_exec(&env.kind, &env.payload, inputs, &self.opdb)?.ok_or_else(|| unknown_node(&env))
            }
            None => self.inner.try_decode(buf, inputs, ctx, proto_converter),
        }
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        if let Some(join) = node.downcast_ref::<SmallSideJoinExec>() {
            buf.extend(envelope(small_joins::exec::KIND, join.encode(self, proto_converter)?));
            return Ok(());
        }
        match opdb::nodes::encode_exec(&node)? {
            Some((kind, payload)) => {
                buf.extend(envelope(kind, payload));
                Ok(())
            }
            None => self.inner.try_encode(node, buf, proto_converter),
        }
    }

    delegate_function_codecs!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(version: u32) -> Vec<u8> {
        ExtensionEnvelope {
            magic: ENVELOPE_MAGIC,
            format_version: version,
            kind: "future_node".into(),
            payload: vec![1, 2, 3],
        }
        .encode_to_vec()
    }

    #[test]
    fn recognises_envelopes_only() {
        assert!(sentio_envelope(&envelope(1)).unwrap().is_some());
        assert!(sentio_envelope(b"\x0a\x03abc").unwrap().is_none());
        assert!(sentio_envelope(&[]).unwrap().is_none());
        let mut truncated = envelope(1);
        truncated.truncate(8);
        assert!(sentio_envelope(&truncated).is_err());
    }

    #[test]
    fn unknown_nodes_name_the_version_problem() {
        let ctx = TaskContext::default();
        let codec = SentioLogicalCodec::default();
        let e = codec.try_decode(&envelope(FORMAT_VERSION + 1), &[], &ctx).unwrap_err().to_string();
        assert!(e.contains("'future_node'") && e.contains("newer Sentio"), "{e}");
        let e = codec.try_decode(&envelope(FORMAT_VERSION), &[], &ctx).unwrap_err().to_string();
        assert!(e.contains("same Sentio version"), "{e}");
    }
}
