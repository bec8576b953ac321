//! The lake catalogs: `training` and `adhoc`, registered from the lake's
//! folder layout so analysts never write `CREATE EXTERNAL TABLE` for them.
//!
//! ```text
//! <lake>/training/frames/part-00000.parquet …   -> training.frames
//! <lake>/adhoc/media_ground_truth.csv           -> adhoc.media_ground_truth (typed)
//!                                                  adhoc.media_ground_truth_raw (as written)
//! ```
//!
//! A folder is one table of all the files in it; a file directly in a zone is
//! one table. Parquet tables take their schema from their first file. CSV files
//! are written by people, so each becomes two tables: `<name>_raw`, every
//! column as text exactly as in the file (short rows padded with NULLs), and
//! `<name>`, a view with trimmed values cast to the type that the file's values
//! mostly have — a value that does not parse becomes NULL instead of failing the
//! query, and rows with no value at all are left out.

use std::io::Cursor;
use std::sync::Arc;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::csv::ReaderBuilder;
use datafusion::arrow::csv::reader::Format;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::MemorySchemaProvider;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;

use datafusion::error::DataFusionError;

use crate::sqltext::quote_ident;

/// What can go wrong reading the lake's layout.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    /// The lake, or a part of it, could not be read.
    #[error("lake {url}: {message}")]
    Unreadable {
        /// The lake (or part of it) concerned.
        url: String,
        /// What went wrong.
        message: String,
    },

    /// The session has no default catalog to register the zones in.
    #[error("configuration: default catalog {0} is missing")]
    NoCatalog(String),

    /// DataFusion could not register or read a table.
    #[error("{}", crate::task_error::describe(.0))]
    DataFusion(#[from] DataFusionError),

    /// A local path could not be resolved.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl LakeError {
    /// The lake (or the part of it at) `url` could not be read.
    pub fn unreadable(url: impl Into<String>, message: impl ToString) -> Self {
        LakeError::Unreadable { url: url.into(), message: message.to_string() }
    }
}

/// Result type of the lake's functions.
pub type Result<T, E = LakeError> = std::result::Result<T, E>;

/// The zones of the lake that become catalogs.
pub const ZONES: [&str; 2] = ["training", "adhoc"];

/// How many bytes of a CSV file are read to decide its column types.
const CSV_SAMPLE_BYTES: u64 = 256 * 1024;

/// Values that mean "missing" in hand-written files.
const MISSING: [&str; 7] = ["", "na", "n/a", "null", "none", "-", "#n/a"];

/// The file formats a lake table can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    /// Apache Parquet.
    Parquet,
    /// Comma-separated values with a header line.
    Csv,
}

impl TableFormat {
    fn of(path: &str) -> Option<Self> {
        let lower = path.to_ascii_lowercase();
        if lower.ends_with(".parquet") {
            Some(Self::Parquet)
        } else if lower.ends_with(".csv") {
            Some(Self::Csv)
        } else {
            None
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Self::Parquet => ".parquet",
            Self::Csv => ".csv",
        }
    }
}

/// A table found in the lake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LakeTable {
    /// `training` or `adhoc`.
    pub zone: String,
    /// Table name.
    pub name: String,
    /// URL of the folder or file.
    pub url: String,
    /// Format of its files.
    pub format: TableFormat,
    /// First data file, for schema inference.
    pub first_file: Path,
}

/// Normalises a lake root to a URL ending in `/` (local paths made absolute).
pub fn lake_root_url(lake: &str) -> Result<String> {
    let url = if lake.contains("://") {
        lake.to_string()
    } else {
        let p = std::path::Path::new(lake);
        let abs = if p.is_absolute() { p.to_path_buf() } else { std::env::current_dir()?.join(p) };
        url::Url::from_directory_path(&abs)
            .map_err(|_| LakeError::unreadable(lake, "not a usable directory path"))?
            .to_string()
    };
    Ok(if url.ends_with('/') { url } else { format!("{url}/") })
}

fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c.to_ascii_lowercase() } else { '_' }).collect()
}

/// Lists the tables of one zone.
pub async fn discover_zone(ctx: &SessionContext, root: &str, zone: &str) -> Result<Vec<LakeTable>> {
    let zone_url = ListingTableUrl::parse(format!("{root}{zone}/"))?;
    let store = ctx.runtime_env().object_store(zone_url.object_store())?;
    let prefix = zone_url.prefix().clone();
    let lake_err = |e: object_store::Error| LakeError::unreadable(format!("{root}{zone}/"), e);
    let listing = match store.list_with_delimiter(Some(&prefix)).await {
        Ok(l) => l,
        Err(object_store::Error::NotFound { .. }) => return Ok(vec![]),
        Err(e) => return Err(lake_err(e)),
    };
    let mut tables = Vec::new();
    for dir in listing.common_prefixes {
        let Some(name) = dir.filename().map(str::to_string) else { continue };
        let mut files: Vec<Path> =
            store.list(Some(&dir)).map_ok(|m| m.location).try_collect().await.map_err(lake_err)?;
        files.sort();
        let Some((first, format)) = files.into_iter().find_map(|f| TableFormat::of(f.as_ref()).map(|fmt| (f, fmt)))
        else {
            continue;
        };
        tables.push(LakeTable {
            zone: zone.into(),
            name: sanitize(&name),
            url: format!("{root}{zone}/{name}/"),
            format,
            first_file: first,
        });
    }
    for obj in listing.objects {
        let Some(file) = obj.location.filename().map(str::to_string) else { continue };
        let Some(format) = TableFormat::of(&file) else { continue };
        let stem = &file[..file.len() - format.extension().len()];
        tables.push(LakeTable {
            zone: zone.into(),
            name: sanitize(stem),
            url: format!("{root}{zone}/{file}"),
            format,
            first_file: obj.location,
        });
    }
    tables.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(tables)
}

/// Registers the `training` and `adhoc` catalogs of the lake at `lake`.
/// Returns the names of the tables registered, as `zone.table`, and what
/// keeps the others from being registered (a corrupt file, named): one bad
/// table does not take the lake's others with it.
pub async fn register_lake(ctx: &SessionContext, lake: &str) -> Result<(Vec<String>, Vec<String>)> {
    let root = lake_root_url(lake)?;
    let catalog_name = ctx.state().config().options().catalog.default_catalog.clone();
    let catalog = ctx.catalog(&catalog_name).ok_or_else(|| LakeError::NoCatalog(catalog_name.clone()))?;
    let mut registered = Vec::new();
    let mut problems = Vec::new();
    for zone in ZONES {
        if catalog.schema(zone).is_none() {
            catalog.register_schema(zone, Arc::new(MemorySchemaProvider::new()))?;
        }
        for table in discover_zone(ctx, &root, zone).await? {
            let done = match table.format {
                TableFormat::Parquet => register_parquet(ctx, &table).await,
                TableFormat::Csv => register_csv(ctx, &table).await.map(|()| {
                    registered.push(format!("{zone}.{}_raw", table.name));
                }),
            };
            match done {
                Ok(()) => registered.push(format!("{zone}.{}", table.name)),
                Err(e) => problems.push(format!("{zone}.{} is not available: {e}", table.name)),
            }
        }
    }
    Ok((registered, problems))
}

async fn register_parquet(ctx: &SessionContext, table: &LakeTable) -> Result<()> {
    let url = ListingTableUrl::parse(&table.url)?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let first = ListingTableUrl::parse(format!("{}{}", url.object_store().as_str(), table.first_file))?;
    let schema = options
        .infer_schema(&ctx.state(), &first)
        .await
        .map_err(|e| LakeError::unreadable(format!("{}{}", url.object_store().as_str(), table.first_file), e))?;
    let config = ListingTableConfig::new(url).with_listing_options(options).with_schema(schema);
    ctx.register_table(
        datafusion::common::TableReference::partial(table.zone.as_str(), table.name.as_str()),
        Arc::new(ListingTable::try_new(config)?),
    )?;
    Ok(())
}

fn csv_format() -> CsvFormat {
    CsvFormat::default().with_has_header(true).with_truncated_rows(true)
}

async fn register_csv(ctx: &SessionContext, table: &LakeTable) -> Result<()> {
    let url = ListingTableUrl::parse(&table.url)?;
    let store = ctx.runtime_env().object_store(url.object_store())?;
    let lake_err = |message: String| LakeError::unreadable(&table.url, message);
    let meta = store.head(&table.first_file).await.map_err(|e| lake_err(e.to_string()))?;
    let end = meta.size.min(CSV_SAMPLE_BYTES);
    let mut sample = store.get_range(&table.first_file, 0..end).await.map_err(|e| lake_err(e.to_string()))?.to_vec();
    if end < meta.size
        && let Some(last_nl) = sample.iter().rposition(|b| *b == b'\n')
    {
        sample.truncate(last_nl + 1);
    }
    let raw_schema = csv_text_schema(&sample).map_err(lake_err)?;
    let columns = sample_columns(&sample, Arc::clone(&raw_schema)).map_err(lake_err)?;
    let types: Vec<DataType> = columns.iter().map(|vals| infer_column_type(vals.iter().map(String::as_str))).collect();

    let options = ListingOptions::new(Arc::new(csv_format())).with_file_extension(".csv");
    let config = ListingTableConfig::new(url).with_listing_options(options).with_schema(Arc::clone(&raw_schema));
    let raw_name = format!("{}_raw", table.name);
    ctx.register_table(
        datafusion::common::TableReference::partial(table.zone.as_str(), raw_name.as_str()),
        Arc::new(ListingTable::try_new(config)?),
    )?;
    let view = typed_view_sql(&table.zone, &table.name, &raw_name, &raw_schema, &types);
    ctx.sql(&view).await?;
    Ok(())
}

/// The header of a CSV sample as an all-text, nullable schema.
fn csv_text_schema(sample: &[u8]) -> Result<SchemaRef, String> {
    let (schema, _) = Format::default()
        .with_header(true)
        .infer_schema(Cursor::new(sample), Some(1))
        .map_err(|e| format!("cannot read the CSV header: {e}"))?;
    let mut seen = std::collections::HashSet::new();
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut name = sanitize(f.name().trim());
            if name.is_empty() || !seen.insert(name.clone()) {
                name = format!("column_{}", i + 1);
                seen.insert(name.clone());
            }
            Field::new(name, DataType::Utf8, true)
        })
        .collect();
    Ok(Arc::new(Schema::new(fields)))
}

/// The values of each column of a CSV sample, as text.
fn sample_columns(sample: &[u8], schema: SchemaRef) -> Result<Vec<Vec<String>>, String> {
    let n = schema.fields().len();
    let reader = ReaderBuilder::new(schema)
        .with_header(true)
        .with_truncated_rows(true)
        .build(Cursor::new(sample))
        .map_err(|e| e.to_string())?;
    let mut cols = vec![Vec::new(); n];
    for batch in reader {
        let batch = batch.map_err(|e| format!("malformed CSV: {e}"))?;
        for (i, col) in cols.iter_mut().enumerate() {
            let arr = batch.column(i).as_string::<i32>();
            col.extend(arr.iter().map(|v| v.unwrap_or("").to_string()));
        }
    }
    Ok(cols)
}

fn is_missing(v: &str) -> bool {
    MISSING.contains(&v.trim().to_ascii_lowercase().as_str())
}

fn is_date(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

/// The type most (≥ 90 %) of a column's present values have: BIGINT, DOUBLE,
/// BOOLEAN, DATE, or text.
///
/// ```
/// use datafusion::arrow::datatypes::DataType;
/// use sentio_sql::lake::infer_column_type;
/// let vals = ["1", " 2", "", "3", "4", "5", "6", "7", "8", "9", "#N/A", "x10"];
/// assert_eq!(infer_column_type(vals.into_iter()), DataType::Int64);
/// assert_eq!(infer_column_type(["hit", "miss"].into_iter()), DataType::Utf8);
/// ```
pub fn infer_column_type<'a>(values: impl Iterator<Item = &'a str>) -> DataType {
    let present: Vec<&str> = values.map(str::trim).filter(|v| !is_missing(v)).collect();
    if present.is_empty() {
        return DataType::Utf8;
    }
    let share = |ok: &dyn Fn(&str) -> bool| present.iter().filter(|v| ok(v)).count() as f64 / present.len() as f64;
    const MOSTLY: f64 = 0.9;
    if share(&|v| v.parse::<i64>().is_ok()) >= MOSTLY {
        DataType::Int64
    } else if share(&|v| v.parse::<f64>().is_ok()) >= MOSTLY {
        DataType::Float64
    } else if share(&|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "false")) >= MOSTLY {
        DataType::Boolean
    } else if share(&is_date) >= MOSTLY {
        DataType::Date32
    } else {
        DataType::Utf8
    }
}

fn sql_type(dt: &DataType) -> &'static str {
    match dt {
        DataType::Int64 => "BIGINT",
        DataType::Float64 => "DOUBLE",
        DataType::Boolean => "BOOLEAN",
        DataType::Date32 => "DATE",
        _ => "VARCHAR",
    }
}

fn typed_view_sql(zone: &str, name: &str, raw_name: &str, schema: &Schema, types: &[DataType]) -> String {
    let mut select = Vec::new();
    let mut present = Vec::new();
    for (field, dt) in schema.fields().iter().zip(types) {
        let col = quote_ident(field.name());
        let trimmed = format!("NULLIF(TRIM({col}), '')");
        select.push(match dt {
            DataType::Utf8 => format!("{trimmed} AS {col}"),
            other => format!("TRY_CAST({trimmed} AS {}) AS {col}", sql_type(other)),
        });
        present.push(format!("{trimmed} IS NOT NULL"));
    }
    format!(
        "CREATE OR REPLACE VIEW {}.{} AS SELECT {} FROM {}.{} WHERE {}",
        quote_ident(zone),
        quote_ident(name),
        select.join(", "),
        quote_ident(zone),
        quote_ident(raw_name),
        present.join(" OR ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_sample_with_dirt() {
        let csv = b"media_id,outcome,survey_score,collected_on\n\
                    1,hit,7.5,2024-01-02\n\
                    \"2\",\"miss\",\"3.0\",2024-01-03\n\
                    ,,,\n\
                    3,hit\n\
                    x4,hit,n/a,02/01/2024\n\
                    5 , miss ,4,2024-01-05\n\
                    6,hit,8,2024-01-06\n\
                    7,hit,8,2024-01-07\n\
                    8,hit,8,2024-01-08\n\
                    9,hit,8,2024-01-09\n\
                    10,hit,8,2024-01-10\n\
                    11,hit,8,2024-01-11\n";
        let schema = csv_text_schema(csv).unwrap();
        assert_eq!(schema.fields().len(), 4);
        let cols = sample_columns(csv, schema).unwrap();
        assert_eq!(cols[0].len(), 12, "every line but the header is a row");
        let types: Vec<_> = cols.iter().map(|c| infer_column_type(c.iter().map(String::as_str))).collect();
        assert_eq!(types, vec![DataType::Int64, DataType::Utf8, DataType::Float64, DataType::Date32]);
    }

    #[test]
    fn view_sql_quotes_names() {
        let schema = Schema::new(vec![Field::new("a\"b", DataType::Utf8, true)]);
        let sql = typed_view_sql("adhoc", "t", "t_raw", &schema, &[DataType::Int64]);
        assert!(sql.contains("TRY_CAST(NULLIF(TRIM(\"a\"\"b\"), '') AS BIGINT)"), "{sql}");
    }

    #[test]
    fn roots() {
        assert_eq!(lake_root_url("s3://b/p").unwrap(), "s3://b/p/");
        assert!(lake_root_url("/tmp/x").unwrap().starts_with("file:///tmp/x/"));
    }
}
