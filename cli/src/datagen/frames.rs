//! `training/frames/`: one row per annotated video frame, as many Parquet
//! files, each built from a contiguous range of sessions in bounded memory.

use std::ops::Range;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Date32Builder, Float32Builder, Int32Builder, Int64Builder, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::parquet::schema::types::ColumnPath;

use super::rng::Rng;
use super::world::{EMOTIONS, N_FEATURES, N_INFORMATIVE, World};

/// Target rows per Parquet file.
pub const ROWS_PER_FILE: u64 = 250_000;
/// At least this many files, so even small lakes scan in parallel.
pub const MIN_FILES: u64 = 8;
/// Rows per record batch / row group.
const BATCH_ROWS: usize = 65_536;

/// Schema of `training.frames`.
pub fn frames_schema() -> SchemaRef {
    let mut fields = vec![
        Field::new("session_id", DataType::Int64, false),
        Field::new("frame_no", DataType::Int32, false),
        Field::new("subject_id", DataType::Int64, false),
        Field::new("media_id", DataType::Int64, false),
        Field::new("recorded_on", DataType::Date32, false),
    ];
    fields.extend((0..N_FEATURES).map(|k| Field::new(feature_name(k), DataType::Float32, false)));
    fields.push(Field::new("emotion", DataType::Utf8, false));
    fields.push(Field::new("split", DataType::Utf8, false));
    Arc::new(Schema::new(fields))
}

/// Number of Parquet files for `world`.
pub fn file_count(world: &World) -> u64 {
    let mean = 50;
    (world.sessions * mean).div_ceil(ROWS_PER_FILE).max(MIN_FILES).min(world.sessions)
}

/// The sessions written to file `f` of `n`.
pub fn sessions_of_file(world: &World, f: u64, n: u64) -> Range<u64> {
    let s = world.sessions as u128;
    ((f as u128 * s / n as u128) as u64)..(((f as u128 + 1) * s / n as u128) as u64)
}

struct Builders {
    session_id: Int64Builder,
    frame_no: Int32Builder,
    subject_id: Int64Builder,
    media_id: Int64Builder,
    recorded_on: Date32Builder,
    features: Vec<Float32Builder>,
    emotion: StringBuilder,
    split: StringBuilder,
    rows: usize,
}

impl Builders {
    fn new() -> Self {
        Self {
            session_id: Int64Builder::new(),
            frame_no: Int32Builder::new(),
            subject_id: Int64Builder::new(),
            media_id: Int64Builder::new(),
            recorded_on: Date32Builder::new(),
            features: (0..N_FEATURES).map(|_| Float32Builder::new()).collect(),
            emotion: StringBuilder::new(),
            split: StringBuilder::new(),
            rows: 0,
        }
    }

    fn finish(&mut self, schema: &SchemaRef) -> datafusion::arrow::error::Result<RecordBatch> {
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(self.session_id.finish()),
            Arc::new(self.frame_no.finish()),
            Arc::new(self.subject_id.finish()),
            Arc::new(self.media_id.finish()),
            Arc::new(self.recorded_on.finish()),
        ];
        cols.extend(self.features.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
        cols.push(Arc::new(self.emotion.finish()));
        cols.push(Arc::new(self.split.finish()));
        self.rows = 0;
        RecordBatch::try_new(Arc::clone(schema), cols)
    }
}

/// How the frames' Parquet is written: Snappy, a row group per batch, and no
/// dictionary for the feature columns. Measurements almost never repeat a
/// value, so a feature's dictionary would hold every value of its row group
/// (65,536 of them fit under the writer's 1 MiB dictionary limit, so it never
/// falls back to plain): the files were 1.5x larger and twice as slow to
/// decode as plain values (docs/benchmarks.md, "Plain feature columns"). The
/// other columns repeat values and keep their dictionaries.
fn writer_properties() -> WriterProperties {
    let plain_features = (0..N_FEATURES).map(|k| ColumnPath::from(feature_name(k)));
    plain_features
        .fold(WriterProperties::builder(), |b, col| b.set_column_dictionary_enabled(col, false))
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(BATCH_ROWS))
        .set_created_by("sentio datagen".to_string())
        .build()
}

/// The name of feature column `k` (`f00`, `f01`, …).
fn feature_name(k: usize) -> String {
    format!("f{k:02}")
}

/// Builds Parquet file `f` of `n`; returns its bytes and row count.
pub fn build_file(world: &World, f: u64, n: u64) -> Result<(Vec<u8>, u64), String> {
    let schema = frames_schema();
    let props = writer_properties();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, Arc::clone(&schema), Some(props)).map_err(|e| e.to_string())?;
    let means = world.class_means();
    let mut b = Builders::new();
    let mut total = 0u64;
    for i in sessions_of_file(world, f, n) {
        let s = world.session(i);
        let media = world.media((s.media_id - 1000) as u64);
        let offsets = world.subject_offsets(s.subject_id);
        let split = world.split(s.subject_id);
        let day = (s.started_at / 86_400) as i32;
        let mut r = Rng::stream(world.seed, "frames", i);
        let mut state = r.weighted(&media.profile);
        for frame in 0..s.frames {
            if r.chance(0.12) {
                state = r.weighted(&media.profile);
            }
            // Annotators disagree now and then.
            let label = if r.chance(0.05) { (r.next_u64() % 3) as usize } else { state };
            b.session_id.append_value(s.session_id);
            b.frame_no.append_value(frame as i32);
            b.subject_id.append_value(s.subject_id);
            b.media_id.append_value(s.media_id);
            b.recorded_on.append_value(day);
            for (k, fb) in b.features.iter_mut().enumerate() {
                let signal = if k < N_INFORMATIVE { means[state][k] } else { 0.0 };
                fb.append_value(signal + offsets[k] + r.normal() as f32);
            }
            b.emotion.append_value(EMOTIONS[label]);
            b.split.append_value(split);
            b.rows += 1;
            total += 1;
            if b.rows == BATCH_ROWS {
                writer.write(&b.finish(&schema).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
            }
        }
    }
    if b.rows > 0 || total == 0 {
        writer.write(&b.finish(&schema).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    }
    writer.close().map_err(|e| e.to_string())?;
    Ok((out, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_cover_all_sessions_once() {
        let w = World::new(3.0, 1);
        let n = file_count(&w);
        assert_eq!(n, MIN_FILES);
        let mut next = 0;
        for f in 0..n {
            let r = sessions_of_file(&w, f, n);
            assert_eq!(r.start, next);
            next = r.end;
        }
        assert_eq!(next, w.sessions);
        assert_eq!(file_count(&World::new(1000.0, 1)), 400);
    }

    #[test]
    fn same_seed_same_bytes() {
        let w = World::new(0.05, 9);
        let (a, rows) = build_file(&w, 0, 2).unwrap();
        let (b, _) = build_file(&w, 0, 2).unwrap();
        assert!(rows > 0);
        assert_eq!(a, b);
        let (c, _) = build_file(&World::new(0.05, 10), 0, 2).unwrap();
        assert_ne!(a, c);
    }

    #[test]
    fn features_are_plain_and_labels_keep_their_dictionary() {
        use datafusion::parquet::basic::Encoding;
        use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
        let (bytes, _) = build_file(&World::new(0.05, 9), 0, 2).unwrap();
        let reader = SerializedFileReader::new(bytes::Bytes::from(bytes)).unwrap();
        let group = reader.metadata().row_group(0);
        let encodings = |name: &str| {
            let col = group.columns().iter().find(|c| c.column_path().string() == name).unwrap();
            col.encodings().collect::<Vec<_>>()
        };
        for k in 0..N_FEATURES {
            let e = encodings(&feature_name(k));
            assert!(!e.contains(&Encoding::RLE_DICTIONARY), "{}: {e:?}", feature_name(k));
            assert!(e.contains(&Encoding::PLAIN), "{}: {e:?}", feature_name(k));
        }
        assert!(encodings("emotion").contains(&Encoding::RLE_DICTIONARY));
        assert!(encodings("session_id").contains(&Encoding::RLE_DICTIONARY));
    }
}
