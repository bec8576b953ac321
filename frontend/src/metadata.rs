//! The catalog calls BI tools browse with: catalogs, schemas, tables (with
//! their columns) and table types, read from a session's catalogs; and what
//! the server and its SQL are (`GetSqlInfo`, `GetXdbcTypeInfo`).

use arrow_flight::sql::metadata::{
    SqlInfoData, SqlInfoDataBuilder, XdbcTypeInfo, XdbcTypeInfoData, XdbcTypeInfoDataBuilder,
};
use arrow_flight::sql::{
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetTableTypes, CommandGetTables, Nullable, Searchable, SqlInfo,
    SqlNullOrdering, SqlOuterJoinsSupportLevel, SqlSupportedCaseSensitivity, SqlSupportedTransaction, XdbcDataType,
    XdbcDatetimeSubcode,
};
use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::TableType;
use datafusion::prelude::SessionContext;
use tonic::Status;

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

/// Every catalog of the session.
pub fn catalogs(ctx: &SessionContext, query: CommandGetCatalogs) -> Result<RecordBatch, Status> {
    let mut b = query.into_builder();
    let mut names = ctx.catalog_names();
    names.sort();
    for name in names {
        b.append(name);
    }
    b.build().map_err(internal)
}

/// Every schema of every catalog (the builder applies the request's filters).
pub fn schemas(ctx: &SessionContext, query: CommandGetDbSchemas) -> Result<RecordBatch, Status> {
    let mut b = query.into_builder();
    for (catalog, schema) in schema_names(ctx) {
        b.append(catalog, schema);
    }
    b.build().map_err(internal)
}

/// Every table, with its Arrow schema when the request asks for it.
pub async fn tables(ctx: &SessionContext, query: CommandGetTables) -> Result<RecordBatch, Status> {
    let mut b = query.into_builder();
    let with_columns = b.include_schema();
    for (catalog, schema) in schema_names(ctx) {
        let Some(provider) = ctx.catalog(&catalog).and_then(|c| c.schema(&schema)) else { continue };
        let mut names = provider.table_names();
        names.sort();
        for name in names {
            // A table that cannot be opened now (its source went away) is
            // left out rather than failing the whole listing.
            let Ok(Some(table)) = provider.table(&name).await else { continue };
            let columns = if with_columns { table.schema() } else { std::sync::Arc::new(Schema::empty()) };
            b.append(&catalog, &schema, &name, table_type(table.table_type()), &columns).map_err(internal)?;
        }
    }
    b.build().map_err(internal)
}

/// The table types [`tables`] reports.
pub fn table_types(query: CommandGetTableTypes) -> Result<RecordBatch, Status> {
    let mut b = query.into_builder();
    for t in [TableType::Base, TableType::View, TableType::Temporary] {
        b.append(table_type(t));
    }
    b.build().map_err(internal)
}

fn table_type(t: TableType) -> &'static str {
    match t {
        TableType::Base => "TABLE",
        TableType::View => "VIEW",
        TableType::Temporary => "LOCAL TEMPORARY",
    }
}

fn schema_names(ctx: &SessionContext) -> Vec<(String, String)> {
    let mut all = Vec::new();
    let mut catalogs = ctx.catalog_names();
    catalogs.sort();
    for catalog in catalogs {
        let Some(c) = ctx.catalog(&catalog) else { continue };
        let mut schemas = c.schema_names();
        schemas.sort();
        all.extend(schemas.into_iter().map(|s| (catalog.clone(), s)));
    }
    all
}

/// What `GetSqlInfo` answers: the server, and the SQL it speaks
/// (DataFusion's dialect with Sentio's statements).
pub fn sql_info() -> SqlInfoData {
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, "Sentio");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    b.append(SqlInfo::FlightSqlServerArrowVersion, "59");
    b.append(SqlInfo::FlightSqlServerReadOnly, false);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(SqlInfo::FlightSqlServerTransaction, SqlSupportedTransaction::None as i32);
    b.append(SqlInfo::FlightSqlServerCancel, true);
    b.append(SqlInfo::FlightSqlServerBulkIngestion, false);
    b.append(SqlInfo::SqlDdlCatalog, false);
    b.append(SqlInfo::SqlDdlSchema, false);
    b.append(SqlInfo::SqlDdlTable, true);
    // Unquoted names are folded to lower case; quoted ones are kept.
    b.append(SqlInfo::SqlIdentifierCase, SqlSupportedCaseSensitivity::SqlCaseSensitivityLowercase as i32);
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    b.append(SqlInfo::SqlQuotedIdentifierCase, SqlSupportedCaseSensitivity::SqlCaseSensitivityCaseInsensitive as i32);
    b.append(SqlInfo::SqlAllTablesAreSelectable, true);
    // NULL sorts as the largest value: last ascending, first descending.
    b.append(SqlInfo::SqlNullOrdering, SqlNullOrdering::SqlNullsSortedHigh as i32);
    b.append(SqlInfo::SqlSearchStringEscape, "\\");
    b.append(SqlInfo::SqlSupportsColumnAliasing, true);
    b.append(SqlInfo::SqlNullPlusNullIsNull, true);
    b.append(SqlInfo::SqlSupportsTableCorrelationNames, true);
    b.append(SqlInfo::SqlSupportsDifferentTableCorrelationNames, false);
    b.append(SqlInfo::SqlSupportsExpressionsInOrderBy, true);
    b.append(SqlInfo::SqlSupportsOrderByUnrelated, true);
    b.append(SqlInfo::SqlSupportsLikeEscapeClause, true);
    b.append(SqlInfo::SqlSupportsNonNullableColumns, true);
    b.append(SqlInfo::SqlOuterJoinsSupportLevel, SqlOuterJoinsSupportLevel::SqlFullOuterJoins as i32);
    b.append(SqlInfo::SqlSchemaTerm, "schema");
    b.append(SqlInfo::SqlCatalogTerm, "catalog");
    b.append(SqlInfo::SqlCatalogAtStart, true);
    b.append(SqlInfo::SqlSelectForUpdateSupported, false);
    b.append(SqlInfo::SqlStoredProceduresSupported, false);
    b.append(SqlInfo::SqlCorrelatedSubqueriesSupported, true);
    b.append(SqlInfo::SqlTransactionsSupported, false);
    b.append(SqlInfo::SqlBatchUpdatesSupported, true);
    b.append(SqlInfo::SqlSavepointsSupported, false);
    b.append(SqlInfo::SqlNamedParametersSupported, false);
    let keywords: Vec<String> =
        datafusion::sql::sqlparser::keywords::ALL_KEYWORDS.iter().map(|k| k.to_string()).collect();
    b.append(SqlInfo::SqlKeywords, keywords);
    b.build().expect("a fixed list of SqlInfo values builds")
}

/// A SQL type as `GetXdbcTypeInfo` describes it.
struct SqlType {
    name: &'static str,
    data_type: XdbcDataType,
    column_size: Option<i32>,
    /// Its literals' prefix (their suffix is a quote).
    prefix: Option<&'static str>,
    /// The radix of its precision: numbers only.
    radix: Option<i32>,
}

impl SqlType {
    fn number(name: &'static str, data_type: XdbcDataType, digits: i32, radix: Option<i32>) -> Self {
        Self { name, data_type, column_size: Some(digits), prefix: None, radix }
    }
}

/// What `GetXdbcTypeInfo` answers: the SQL types a statement can name (in
/// `CAST`, in a table's columns), each with the Arrow type it reads as.
pub fn xdbc_types() -> XdbcTypeInfoData {
    use XdbcDataType as X;
    let types = [
        SqlType::number("BOOLEAN", X::XdbcBit, 1, None),
        SqlType::number("TINYINT", X::XdbcTinyint, 3, Some(10)),
        SqlType::number("SMALLINT", X::XdbcSmallint, 5, Some(10)),
        SqlType::number("INTEGER", X::XdbcInteger, 10, Some(10)),
        SqlType::number("BIGINT", X::XdbcBigint, 19, Some(10)),
        SqlType::number("REAL", X::XdbcReal, 7, Some(2)),
        SqlType::number("DOUBLE", X::XdbcDouble, 15, Some(2)),
        SqlType::number("DECIMAL", X::XdbcDecimal, 38, Some(10)),
        SqlType { name: "VARCHAR", data_type: X::XdbcVarchar, column_size: None, prefix: Some("'"), radix: None },
        SqlType { name: "DATE", data_type: X::XdbcDate, column_size: Some(10), prefix: Some("DATE '"), radix: None },
        SqlType {
            name: "TIMESTAMP",
            data_type: X::XdbcTimestamp,
            column_size: Some(26),
            prefix: Some("TIMESTAMP '"),
            radix: None,
        },
        SqlType { name: "BYTEA", data_type: X::XdbcVarbinary, column_size: None, prefix: None, radix: None },
    ];
    let mut b = XdbcTypeInfoDataBuilder::new();
    for SqlType { name, data_type, column_size, prefix, radix: num_prec_radix } in types {
        let case_sensitive = data_type == X::XdbcVarchar;
        let datetime_subcode = match data_type {
            // Code 1 is both YEAR and DATE in the protocol (ODBC's SQL_CODE_DATE).
            X::XdbcDate => Some(XdbcDatetimeSubcode::XdbcSubcodeYear),
            X::XdbcTimestamp => Some(XdbcDatetimeSubcode::XdbcSubcodeTimestamp),
            _ => None,
        };
        b.append(XdbcTypeInfo {
            type_name: name.into(),
            data_type,
            column_size,
            literal_prefix: prefix.map(Into::into),
            literal_suffix: prefix.map(|_| "'".into()),
            create_params: (name == "DECIMAL").then(|| vec!["precision".into(), "scale".into()]),
            nullable: Nullable::NullabilityNullable,
            case_sensitive,
            searchable: Searchable::Full,
            unsigned_attribute: num_prec_radix.map(|_| false),
            fixed_prec_scale: name == "DECIMAL",
            auto_increment: Some(false),
            local_type_name: Some(name.into()),
            minimum_scale: (name == "DECIMAL").then_some(0),
            maximum_scale: (name == "DECIMAL").then_some(38),
            sql_data_type: data_type,
            datetime_subcode,
            num_prec_radix,
            interval_precision: None,
        });
    }
    b.build().expect("a fixed list of XDBC types builds")
}
