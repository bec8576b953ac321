//! An extract's manifest: one Parquet file with one row,
//! `<lake>/extracts/_manifest/<name>.parquet`, naming the parts (folders of
//! Parquet files) that make up the extract, its source and its watermark.
//!
//! The manifest is the commit point. A refresh writes its rows into a new
//! part folder first; the part becomes visible only when the manifest that
//! lists it replaces the old one, in one PUT (atomic on S3 and on local
//! disks), under the extract's commit lock (`super::lock`).
//! `extracts.manifest` is the table of all manifests.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, ListArray, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::ExtractError;

/// What one extract is.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// Extract name (`extracts.<name>`).
    pub name: String,
    /// The query whose rows the extract holds.
    pub source_query: String,
    /// The watermark column (increasing key or update time), if any.
    pub watermark_column: Option<String>,
    /// Its Arrow type, as `arrow_cast` spells it.
    pub watermark_type: Option<String>,
    /// The source's primary key, when the query returns it: a refresh by
    /// update time replaces the rows whose key comes back.
    pub key_column: Option<String>,
    /// The largest watermark value in the extract, as text.
    pub watermark: Option<String>,
    /// Rows in the extract.
    pub rows: i64,
    /// Parquet files in the extract.
    pub files: i64,
    /// Part folders (under `extracts/<name>/`), oldest first.
    pub parts: Vec<String>,
    /// When the extract was created (microseconds since the epoch, UTC).
    pub created_at: i64,
    /// When it was last refreshed.
    pub refreshed_at: i64,
    /// `create`, `incremental` or `full`.
    pub last_refresh: String,
    /// Rows the last refresh read from the source.
    pub last_refresh_rows: i64,
    /// Refreshes since creation.
    pub refreshes: i64,
}

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// Schema of a manifest file and of `extracts.manifest`.
pub fn manifest_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("extract", DataType::Utf8, false),
        Field::new("source_query", DataType::Utf8, false),
        Field::new("watermark_column", DataType::Utf8, true),
        Field::new("watermark_type", DataType::Utf8, true),
        Field::new("key_column", DataType::Utf8, true),
        Field::new("watermark", DataType::Utf8, true),
        Field::new("rows", DataType::Int64, false),
        Field::new("files", DataType::Int64, false),
        Field::new("parts", DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))), false),
        Field::new("created_at", ts(), false),
        Field::new("refreshed_at", ts(), false),
        Field::new("last_refresh", DataType::Utf8, false),
        Field::new("last_refresh_rows", DataType::Int64, false),
        Field::new("refreshes", DataType::Int64, false),
    ]))
}

impl Manifest {
    /// The manifest of a new extract `name`, created now: no query, no
    /// watermark, no parts yet.
    pub fn new(name: &str) -> Self {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64);
        Self {
            name: name.to_string(),
            source_query: String::new(),
            watermark_column: None,
            watermark_type: None,
            key_column: None,
            watermark: None,
            rows: 0,
            files: 0,
            parts: Vec::new(),
            created_at: now,
            refreshed_at: now,
            last_refresh: "create".into(),
            last_refresh_rows: 0,
            refreshes: 0,
        }
    }

    /// The manifest as one row.
    pub fn to_batch(&self) -> Result<RecordBatch, ExtractError> {
        let values = StringArray::from(self.parts.iter().map(|p| Some(p.as_str())).collect::<Vec<_>>());
        let offsets = datafusion::arrow::buffer::OffsetBuffer::from_lengths([self.parts.len()]);
        let parts =
            ListArray::try_new(Arc::new(Field::new("item", DataType::Utf8, true)), offsets, Arc::new(values), None)?;
        let text = |v: &Option<String>| Arc::new(StringArray::from(vec![v.clone()])) as ArrayRef;
        let time = |v: i64| Arc::new(TimestampMicrosecondArray::from(vec![v]).with_timezone("UTC")) as ArrayRef;
        Ok(RecordBatch::try_new(
            manifest_schema(),
            vec![
                Arc::new(StringArray::from(vec![self.name.clone()])),
                Arc::new(StringArray::from(vec![self.source_query.clone()])),
                text(&self.watermark_column),
                text(&self.watermark_type),
                text(&self.key_column),
                text(&self.watermark),
                Arc::new(Int64Array::from(vec![self.rows])),
                Arc::new(Int64Array::from(vec![self.files])),
                Arc::new(parts),
                time(self.created_at),
                time(self.refreshed_at),
                Arc::new(StringArray::from(vec![self.last_refresh.clone()])),
                Arc::new(Int64Array::from(vec![self.last_refresh_rows])),
                Arc::new(Int64Array::from(vec![self.refreshes])),
            ],
        )?)
    }

    /// The manifest as a Parquet file.
    pub fn to_parquet(&self) -> Result<Vec<u8>, ExtractError> {
        let batch = self.to_batch()?;
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), None)?;
        w.write(&batch)?;
        w.close()?;
        Ok(buf)
    }

    /// Reads a manifest file (`what` names it in errors).
    pub fn from_parquet(bytes: bytes::Bytes, what: &str) -> Result<Self, ExtractError> {
        let corrupt = |m: String| ExtractError::Corrupt(format!("{what}: {m}"));
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .and_then(|b| b.build())
            .map_err(|e| corrupt(e.to_string()))?;
        let mut rows = Vec::new();
        for b in reader {
            rows.push(b.map_err(|e| corrupt(e.to_string()))?);
        }
        let b = match rows.as_slice() {
            [b] if b.num_rows() == 1 => b,
            _ => return Err(corrupt("a manifest holds exactly one row".into())),
        };
        if b.schema().fields() != manifest_schema().fields() {
            return Err(corrupt("not a manifest of this Sentio's format".into()));
        }
        let text = |i: usize| b.column(i).as_string::<i32>();
        let opt = |i: usize| {
            let a = text(i);
            a.is_valid(0).then(|| a.value(0).to_string())
        };
        let int = |i: usize| b.column(i).as_primitive::<Int64Type>().value(0);
        let time = |i: usize| b.column(i).as_primitive::<TimestampMicrosecondType>().value(0);
        let parts = b.column(8).as_list::<i32>().value(0);
        let parts = parts.as_string::<i32>().iter().map(|p| p.unwrap_or_default().to_string()).collect();
        Ok(Self {
            name: text(0).value(0).to_string(),
            source_query: text(1).value(0).to_string(),
            watermark_column: opt(2),
            watermark_type: opt(3),
            key_column: opt(4),
            watermark: opt(5),
            rows: int(6),
            files: int(7),
            parts,
            created_at: time(9),
            refreshed_at: time(10),
            last_refresh: text(11).value(0).to_string(),
            last_refresh_rows: int(12),
            refreshes: int(13),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_parquet() {
        let m = Manifest {
            name: "sessions".into(),
            source_query: "SELECT * FROM opdb.sessions".into(),
            watermark_column: Some("session_id".into()),
            watermark_type: Some("Int64".into()),
            key_column: Some("session_id".into()),
            watermark: Some("1000".into()),
            rows: 1000,
            files: 2,
            parts: vec!["p1".into(), "p2".into()],
            created_at: 1,
            refreshed_at: 2,
            last_refresh: "incremental".into(),
            last_refresh_rows: 10,
            refreshes: 1,
        };
        let back = Manifest::from_parquet(m.to_parquet().unwrap().into(), "m").unwrap();
        assert_eq!(back, m);
        let none = Manifest {
            watermark_column: None,
            watermark_type: None,
            key_column: None,
            watermark: None,
            parts: vec![],
            ..m
        };
        assert_eq!(Manifest::from_parquet(none.to_parquet().unwrap().into(), "m").unwrap(), none);
        let err = Manifest::from_parquet(bytes::Bytes::from_static(b"not parquet"), "x.parquet").unwrap_err();
        assert!(err.to_string().contains("x.parquet"), "{err}");
    }
}
