//! Printing results as a table, CSV or JSON, and measuring what crossed the
//! network.

use std::io::Write;

use datafusion::arrow::csv::WriterBuilder as CsvWriterBuilder;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::json::ArrayWriter;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;

use crate::error::Result;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// An aligned text table.
    #[default]
    Table,
    /// CSV with a header line.
    Csv,
    /// A JSON array of objects, one per row.
    Json,
}

/// CSV has no nested values: lists and structs are written as their text
/// (as the table format shows them), e.g. `[{label: happy, prob: 0.9}]`.
fn flatten_nested(b: &RecordBatch) -> std::result::Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    use datafusion::arrow::array::{ArrayRef, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::util::display::array_value_to_string;
    if !b.schema().fields().iter().any(|f| f.data_type().is_nested()) {
        return Ok(b.clone());
    }
    let mut fields = Vec::with_capacity(b.num_columns());
    let mut cols: Vec<ArrayRef> = Vec::with_capacity(b.num_columns());
    for (f, c) in b.schema().fields().iter().zip(b.columns()) {
        if f.data_type().is_nested() {
            let text = (0..c.len())
                .map(|i| if c.is_null(i) { Ok(None) } else { array_value_to_string(c, i).map(Some) })
                .collect::<std::result::Result<StringArray, _>>()?;
            fields.push(Field::new(f.name(), DataType::Utf8, true));
            cols.push(std::sync::Arc::new(text));
        } else {
            fields.push(f.as_ref().clone());
            cols.push(c.clone());
        }
    }
    RecordBatch::try_new(std::sync::Arc::new(Schema::new(fields)), cols)
}

/// Writes `batches` to `out` in `format`.
pub fn write_batches(out: &mut dyn Write, format: OutputFormat, batches: &[RecordBatch]) -> Result<()> {
    let to_io = |e: datafusion::arrow::error::ArrowError| std::io::Error::other(e.to_string());
    match format {
        OutputFormat::Table => {
            writeln!(out, "{}", pretty_format_batches(batches).map_err(to_io)?)?;
        }
        OutputFormat::Csv => {
            // one writer: the header is written once, before the first batch
            let mut w = CsvWriterBuilder::new().with_header(true).build(&mut *out);
            for b in batches {
                w.write(&flatten_nested(b).map_err(to_io)?).map_err(to_io)?;
            }
        }
        OutputFormat::Json => {
            let mut w = ArrayWriter::new(&mut *out);
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            w.write_batches(&refs).map_err(to_io)?;
            w.finish().map_err(to_io)?;
            drop(w);
            writeln!(out)?;
        }
    }
    Ok(())
}

struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Size of `batches` as an Arrow IPC stream: the format in which result rows
/// travel from the executors to the client (Arrow Flight).
pub fn ipc_size(batches: &[RecordBatch]) -> u64 {
    let Some(first) = batches.first() else { return 0 };
    let mut counter = Counter(0);
    let Ok(mut w) = StreamWriter::try_new(&mut counter, &first.schema()) else {
        return 0;
    };
    for b in batches {
        if w.write(b).is_err() {
            return 0;
        }
    }
    let _ = w.finish();
    drop(w);
    counter.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use std::sync::Arc;

    fn batch(v: Vec<i64>) -> RecordBatch {
        RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from(v)) as _)]).unwrap()
    }

    #[test]
    fn csv_header_once() {
        let mut out = Vec::new();
        write_batches(&mut out, OutputFormat::Csv, &[batch(vec![1]), batch(vec![2])]).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "x\n1\n2\n");
    }

    #[test]
    fn json_rows() {
        let mut out = Vec::new();
        write_batches(&mut out, OutputFormat::Json, &[batch(vec![1, 2])]).unwrap();
        assert_eq!(String::from_utf8(out).unwrap().trim(), r#"[{"x":1},{"x":2}]"#);
    }

    #[test]
    fn sizes() {
        let small = ipc_size(&[batch(vec![1])]);
        let big = ipc_size(&[batch((0..10_000).collect())]);
        assert!(small > 0 && big > small + 70_000, "{small} {big}");
    }
}
