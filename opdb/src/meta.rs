//! What Sentio knows about one table of the operational DB, and its
//! protobuf form ([`sentio_proto::OpdbTableNode`]).

use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use sentio_proto::{OpdbColumn, OpdbTableNode};

use super::OpdbError;
use super::backend::Backend;
use super::types::{ColumnType, ReadCast};

/// A column of an operational-DB table.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Name as the database spells it.
    pub name: String,
    /// Sentio's type.
    pub ty: ColumnType,
    /// How the column is selected.
    pub read_cast: ReadCast,
    /// The database's type name (e.g. `character varying(20)`).
    pub db_type: String,
    /// The database fills the column when an insert leaves it out.
    pub has_default: bool,
    /// Text the database compares byte by byte, as DataFusion does.
    pub exact_text: bool,
}

/// A table of the operational DB.
#[derive(Debug, Clone, PartialEq)]
pub struct TableMeta {
    /// The engine the table lives in.
    pub backend: Backend,
    /// Table name (unquoted).
    pub table: String,
    /// Columns in table order.
    pub columns: Vec<Column>,
    /// Primary-key columns in key order.
    pub primary_key: Vec<String>,
    /// The integer column reads are split on, if any.
    pub split_column: Option<String>,
}

impl TableMeta {
    /// The Arrow schema (every column nullable: the database enforces
    /// constraints, Sentio does not repeat them).
    pub fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns.iter().map(|c| Field::new(&c.name, c.ty.arrow_type(), true)).collect::<Vec<_>>(),
        ))
    }

    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The table name quoted for its engine.
    pub fn quoted_table(&self) -> String {
        self.backend.quote(&self.table)
    }

    /// The protobuf form.
    pub fn to_proto(&self) -> OpdbTableNode {
        OpdbTableNode {
            backend: self.backend.name().to_string(),
            table: self.table.clone(),
            columns: self
                .columns
                .iter()
                .map(|c| OpdbColumn {
                    name: c.name.clone(),
                    sentio_type: c.ty.to_string(),
                    read_cast: c.read_cast.name().to_string(),
                    db_type: c.db_type.clone(),
                    has_default: c.has_default,
                    exact_text: c.exact_text,
                })
                .collect(),
            primary_key: self.primary_key.clone(),
            split_column: self.split_column.clone().unwrap_or_default(),
        }
    }

    /// Reads the protobuf form, checking every name it uses.
    pub fn from_proto(node: &OpdbTableNode) -> Result<Self, OpdbError> {
        let corrupt = |what: String| OpdbError::Plan(format!("corrupt opdb table node: {what}"));
        let backend = Backend::parse(&node.backend).ok_or_else(|| corrupt(format!("backend {:?}", node.backend)))?;
        let columns = node
            .columns
            .iter()
            .map(|c| {
                Ok(Column {
                    name: c.name.clone(),
                    ty: ColumnType::parse(&c.sentio_type)
                        .ok_or_else(|| corrupt(format!("type {:?}", c.sentio_type)))?,
                    read_cast: ReadCast::parse(&c.read_cast)
                        .ok_or_else(|| corrupt(format!("cast {:?}", c.read_cast)))?,
                    db_type: c.db_type.clone(),
                    has_default: c.has_default,
                    exact_text: c.exact_text,
                })
            })
            .collect::<Result<Vec<_>, OpdbError>>()?;
        let meta = Self {
            backend,
            table: node.table.clone(),
            columns,
            primary_key: node.primary_key.clone(),
            split_column: Some(node.split_column.clone()).filter(|s| !s.is_empty()),
        };
        for k in meta.primary_key.iter().chain(&meta.split_column) {
            if meta.column(k).is_none() {
                return Err(corrupt(format!("unknown key column {k:?}")));
            }
        }
        Ok(meta)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A `sessions`-like table for unit tests.
    pub fn sessions(backend: Backend) -> TableMeta {
        let col = |name: &str, ty| Column {
            name: name.into(),
            ty,
            read_cast: ReadCast::None,
            db_type: String::new(),
            has_default: false,
            exact_text: backend == Backend::Postgres,
        };
        TableMeta {
            backend,
            table: "sessions".into(),
            columns: vec![
                col("session_id", ColumnType::Int64),
                col("country", ColumnType::Text),
                col("score", ColumnType::Float64),
                col("started_at", ColumnType::Timestamp),
                col("amount", ColumnType::Decimal { precision: 10, scale: 2 }),
            ],
            primary_key: vec!["session_id".into()],
            split_column: Some("session_id".into()),
        }
    }

    #[test]
    fn proto_round_trip() {
        let m = sessions(Backend::MySql);
        assert_eq!(TableMeta::from_proto(&m.to_proto()).unwrap(), m);
        let mut bad = m.to_proto();
        bad.split_column = "nope".into();
        assert!(TableMeta::from_proto(&bad).unwrap_err().to_string().contains("nope"));
    }
}
