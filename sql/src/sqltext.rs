//! Writing SQL text: identifiers, literals, and rows inlined as a table.

/// Quotes an SQL identifier.
///
/// ```
/// assert_eq!(sentio_sql::sqltext::quote_ident(r#"a"b"#), r#""a""b""#);
/// ```
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// An SQL string literal.
pub fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A text literal passed to an aggregate function as one constant
/// (`sentio_train`'s spec, `sentio_cuts`'s, `sentio_als`'s parameters):
/// typed as a one-entry dictionary, which DataFusion folds into a literal
/// and repeats per row as a key. A plain text literal is copied into every
/// row of every batch an aggregate reads (its arguments become arrays), and
/// a spec with a tree model's cut points is some 100 KB.
///
/// ```
/// assert_eq!(sentio_sql::sqltext::const_arg("{}"), "arrow_cast('{}', 'Dictionary(Int32, Utf8)')");
/// ```
pub fn const_arg(s: &str) -> String {
    format!("arrow_cast({}, 'Dictionary(Int32, Utf8)')", lit(s))
}

/// `q."name"`.
pub fn qcol(alias: &str, name: &str) -> String {
    format!("{alias}.{}", quote_ident(name))
}

/// Rows of SQL expressions as a table expression, `alias(columns…)`, for
/// `FROM` or `CROSS JOIN`: one `make_array` per column, unnested together
/// (columns with the same values share one array: DataFusion names an
/// unnested column after its expression, and names must be unique).
///
/// Not `VALUES`: DataFusion 55 plans every `VALUES` anywhere inside an
/// `INSERT … SELECT` against the target table's columns (by position), so a
/// `VALUES` that an ML function inlines would break `INSERT INTO opdb.t
/// SELECT … FROM ML.…(…)`. `rows` must not be empty; each has one
/// expression per column.
///
/// ```
/// use sentio_sql::sqltext::rows_table;
/// let rows = [vec!["0".to_string(), "'a'".into(), "0".into()], vec!["1".into(), "'b'".into(), "1".into()]];
/// assert_eq!(
///     rows_table("k", &["i", "name", "j"], &rows),
///     "(SELECT __u0 AS i, __u1 AS name, __u0 AS j \
///      FROM unnest(make_array(0, 1), make_array('a', 'b')) AS __u(__u0, __u1)) AS k"
/// );
/// ```
pub fn rows_table(alias: &str, columns: &[&str], rows: &[Vec<String>]) -> String {
    let mut arrays: Vec<String> = Vec::new();
    let mut picks = Vec::with_capacity(columns.len());
    for (j, name) in columns.iter().enumerate() {
        let items: Vec<&str> = rows.iter().map(|r| r[j].as_str()).collect();
        let array = format!("make_array({})", items.join(", "));
        let k = arrays.iter().position(|a| *a == array).unwrap_or_else(|| {
            arrays.push(array);
            arrays.len() - 1
        });
        picks.push(format!("__u{k} AS {name}"));
    }
    let names: Vec<String> = (0..arrays.len()).map(|k| format!("__u{k}")).collect();
    format!("(SELECT {} FROM unnest({}) AS __u({})) AS {alias}", picks.join(", "), arrays.join(", "), names.join(", "))
}
