//! The catalog calls BI tools browse with: catalogs, schemas, tables (with
//! their columns) and table types, read from a session's catalogs.

use arrow_flight::sql::{CommandGetCatalogs, CommandGetDbSchemas, CommandGetTableTypes, CommandGetTables};
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
