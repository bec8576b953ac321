//! Recognising Sentio's ML statements and the `ML.<function>(…)` calls inside
//! ordinary queries, which DataFusion's parser does not accept.
//!
//! ```
//! use sentio_sql::ml::parse::{find_ml_calls, parse_ml_statement, MlStatement};
//! let s = parse_ml_statement(
//!     "CREATE OR REPLACE MODEL m OPTIONS (model_type = 'logistic_reg', input_label_cols = ['y']) AS SELECT * FROM t",
//! ).unwrap().unwrap();
//! let MlStatement::CreateModel { name, query, or_replace, .. } = s else { panic!() };
//! assert_eq!((name.as_str(), query.as_str(), or_replace), ("m", "SELECT * FROM t", true));
//!
//! let calls = find_ml_calls("SELECT * FROM ML.PREDICT(MODEL m, (SELECT 1 AS x)) p").unwrap();
//! assert_eq!(calls[0].function, "PREDICT");
//! assert_eq!(calls[0].model.as_deref(), Some("m"));
//! assert_eq!(calls[0].query.as_deref(), Some("SELECT 1 AS x"));
//! ```

use datafusion::sql::sqlparser::ast::{Expr, SelectItem, SetExpr, Statement, UnaryOperator, Value};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::ml::MlError;

/// A value in `OPTIONS (…)` or `STRUCT(…)`.
#[derive(Debug, Clone, PartialEq)]
pub enum OptValue {
    /// A quoted string.
    Str(String),
    /// A number.
    Num(f64),
    /// TRUE or FALSE.
    Bool(bool),
    /// `[a, b, …]`.
    Array(Vec<OptValue>),
    /// `STRUCT(a, b, …)`.
    Struct(Vec<OptValue>),
    /// `HPARAM_RANGE(min, max)`: a hyperparameter to tune over an interval.
    Range(f64, f64),
    /// `HPARAM_CANDIDATES([a, b, …])`: a hyperparameter to tune over values.
    Candidates(Vec<OptValue>),
}

impl std::fmt::Display for OptValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Str(s) => write!(f, "'{s}'"),
            Self::Num(n) => write!(f, "{n}"),
            Self::Bool(b) => write!(f, "{}", if *b { "TRUE" } else { "FALSE" }),
            Self::Array(v) => write!(f, "[{}]", v.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")),
            Self::Struct(v) => {
                write!(f, "STRUCT({})", v.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
            }
            Self::Range(lo, hi) => write!(f, "HPARAM_RANGE({lo}, {hi})"),
            Self::Candidates(v) => {
                write!(f, "HPARAM_CANDIDATES([{}])", v.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
            }
        }
    }
}

/// One column of `CREATE MODEL … TRANSFORM (…)`.
#[derive(Debug, Clone, PartialEq)]
pub enum TransformItem {
    /// `*` or `* EXCEPT (a, …)`: the training query's columns but those.
    All {
        /// The columns left out.
        except: Vec<String>,
    },
    /// `expr AS name`, or a column by itself.
    Column {
        /// The expression's text.
        expr: String,
        /// The column's name.
        name: String,
    },
}

/// Sentio's own statements.
#[derive(Debug, Clone, PartialEq)]
pub enum MlStatement {
    /// `CREATE [OR REPLACE] MODEL [IF NOT EXISTS] name OPTIONS (…) AS query`.
    CreateModel {
        /// Model name.
        name: String,
        /// OR REPLACE given.
        or_replace: bool,
        /// IF NOT EXISTS given.
        if_not_exists: bool,
        /// The options, in order, names lower-cased.
        options: Vec<(String, OptValue)>,
        /// The `TRANSFORM (…)` clause, if given.
        transform: Option<Vec<TransformItem>>,
        /// The training query's text.
        query: String,
    },
    /// `DROP MODEL [IF EXISTS] name`.
    DropModel {
        /// Model name.
        name: String,
        /// IF EXISTS given.
        if_exists: bool,
    },
}

fn syntax(message: impl Into<String>) -> MlError {
    MlError::Syntax(message.into())
}

/// Converts an option expression into a value.
fn opt_value(e: &Expr) -> Result<OptValue, MlError> {
    Ok(match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => OptValue::Str(s.clone()),
            Value::Number(n, _) => OptValue::Num(n.parse().map_err(|_| syntax(format!("bad number {n}")))?),
            Value::Boolean(b) => OptValue::Bool(*b),
            other => return Err(syntax(format!("unsupported option value {other}"))),
        },
        Expr::UnaryOp { op: UnaryOperator::Minus, expr } => match opt_value(expr)? {
            OptValue::Num(n) => OptValue::Num(-n),
            _ => return Err(syntax(format!("unsupported option value {e}"))),
        },
        Expr::Array(a) => OptValue::Array(a.elem.iter().map(opt_value).collect::<Result<_, _>>()?),
        Expr::Struct { values, .. } => OptValue::Struct(values.iter().map(opt_value).collect::<Result<_, _>>()?),
        Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("struct") => {
            OptValue::Struct(function_args(f)?.iter().map(opt_value).collect::<Result<_, _>>()?)
        }
        Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("hparam_range") => {
            match function_args(f)?.as_slice() {
                [lo, hi] => match (opt_value(lo)?, opt_value(hi)?) {
                    (OptValue::Num(lo), OptValue::Num(hi)) if lo <= hi => OptValue::Range(lo, hi),
                    (lo, hi) => {
                        return Err(syntax(format!(
                            "HPARAM_RANGE({lo}, {hi}): write HPARAM_RANGE(min, max), two numbers, min <= max"
                        )));
                    }
                },
                _ => return Err(syntax(format!("{e}: write HPARAM_RANGE(min, max)"))),
            }
        }
        Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("hparam_candidates") => {
            match function_args(f)?.as_slice() {
                [list] => match opt_value(list)? {
                    OptValue::Array(v) if !v.is_empty() => OptValue::Candidates(v),
                    _ => return Err(syntax(format!("{e}: write HPARAM_CANDIDATES([a, b, …]), a non-empty array"))),
                },
                _ => return Err(syntax(format!("{e}: write HPARAM_CANDIDATES([a, b, …])"))),
            }
        }
        Expr::Identifier(i) if i.value.eq_ignore_ascii_case("true") => OptValue::Bool(true),
        Expr::Identifier(i) if i.value.eq_ignore_ascii_case("false") => OptValue::Bool(false),
        other => return Err(syntax(format!("unsupported option value {other}"))),
    })
}

/// The arguments of a function call in an option value, as expressions.
fn function_args(f: &datafusion::sql::sqlparser::ast::Function) -> Result<Vec<Expr>, MlError> {
    let text = f.args.to_string();
    let inner = text.trim().strip_prefix('(').and_then(|t| t.strip_suffix(')')).unwrap_or(&text);
    if inner.trim().is_empty() {
        return Ok(Vec::new());
    }
    Parser::new(&GenericDialect {})
        .try_with_sql(inner)
        .and_then(|mut p| p.parse_comma_separated(Parser::parse_expr))
        .map_err(|e| syntax(e.to_string()))
}

/// Checks a model name as the store keeps it: `model` or `dataset.model`
/// (or, before [`MlContext::store_name`](crate::ml::MlContext::store_name)
/// drops it, `project.dataset.model`), each part letters, digits and `_`,
/// not starting with a digit.
pub fn check_model_name(name: &str) -> Result<(), MlError> {
    let parts: Vec<&str> = name.split('.').collect();
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 128
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !p.starts_with(|c: char| c.is_ascii_digit())
    };
    if parts.len() <= 3 && parts.iter().all(|p| part_ok(p)) {
        Ok(())
    } else {
        Err(syntax(format!(
            "invalid model name {name:?}: write model, dataset.model or `project.dataset.model`, each part letters, \
             digits and _ (not starting with a digit)"
        )))
    }
}

/// A model name as BigQuery writes it — `m`, `dataset.m`, `` `project.dataset.m` ``,
/// `` `dataset`.`m` `` — in the dotted form [`check_model_name`] checks.
///
/// ```
/// use sentio_sql::ml::parse::model_name;
/// assert_eq!(model_name("`proj.sales.churn`").unwrap(), "proj.sales.churn");
/// assert_eq!(model_name("sales.`churn`").unwrap(), "sales.churn");
/// assert!(model_name("a.b.c.d").is_err());
/// ```
pub fn model_name(text: &str) -> Result<String, MlError> {
    let mut p = Parser::new(&GenericDialect {}).try_with_sql(text.trim()).map_err(|e| syntax(e.to_string()))?;
    let name = object_model_name(&mut p)?;
    if p.peek_token().token != Token::EOF {
        return Err(syntax(format!("unexpected {} after the model name {name}", p.peek_token().token)));
    }
    Ok(name)
}

/// Reads a model name at `p` (see [`model_name`]).
fn object_model_name(p: &mut Parser) -> Result<String, MlError> {
    let object = p.parse_object_name(false).map_err(|e| syntax(e.to_string()))?;
    let mut parts = Vec::new();
    for part in &object.0 {
        let ident = part.as_ident().ok_or_else(|| syntax(format!("invalid model name {object}")))?;
        // A backquoted `project.dataset.model` is one identifier.
        parts.extend(ident.value.split('.').map(str::to_string));
    }
    let name = parts.join(".");
    check_model_name(&name)?;
    Ok(name)
}

/// Byte offset of a token's 1-based line and column in `sql`.
pub(crate) fn byte_offset(sql: &str, line: u64, column: u64) -> usize {
    let mut offset = 0;
    for (i, l) in sql.split_inclusive('\n').enumerate() {
        if i + 1 == line as usize {
            return offset + l.char_indices().nth(column.saturating_sub(1) as usize).map_or(l.len(), |(b, _)| b);
        }
        offset += l.len();
    }
    sql.len()
}

/// `(key = value, …)` after `OPTIONS`: keys in lower case, each once.
pub(crate) fn parse_options(p: &mut Parser) -> Result<Vec<(String, OptValue)>, MlError> {
    let err = |e: datafusion::sql::sqlparser::parser::ParserError| syntax(e.to_string());
    let mut options: Vec<(String, OptValue)> = Vec::new();
    p.expect_token(&Token::LParen).map_err(err)?;
    if p.consume_token(&Token::RParen) {
        return Ok(options);
    }
    loop {
        let key = p.parse_identifier().map_err(err)?.value.to_ascii_lowercase();
        p.expect_token(&Token::Eq).map_err(err)?;
        let value = opt_value(&p.parse_expr().map_err(err)?)?;
        if options.iter().any(|(k, _)| *k == key) {
            return Err(syntax(format!("option {key} is given twice")));
        }
        options.push((key, value));
        if p.consume_token(&Token::RParen) {
            return Ok(options);
        }
        p.expect_token(&Token::Comma).map_err(err)?;
    }
}

/// Whether `t` is the unquoted word `w` (any case).
pub(crate) fn is_word(t: &Token, w: &str) -> bool {
    matches!(t, Token::Word(word) if word.quote_style.is_none() && word.value.eq_ignore_ascii_case(w))
}

/// Parses `sql` as one of Sentio's ML statements; `Ok(None)` when it is not
/// one (an ordinary statement for DataFusion).
pub fn parse_ml_statement(sql: &str) -> Result<Option<MlStatement>, MlError> {
    let dialect = GenericDialect {};
    let mut p = Parser::new(&dialect).try_with_sql(sql).map_err(|e| syntax(e.to_string()))?;
    if p.parse_keyword(Keyword::DROP) {
        if !is_word(&p.peek_token().token, "model") {
            return Ok(None);
        }
        p.next_token();
        let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
        let name = object_model_name(&mut p)?;
        if p.peek_token().token != Token::EOF {
            return Err(syntax(format!("unexpected {} after DROP MODEL {name}", p.peek_token().token)));
        }
        return Ok(Some(MlStatement::DropModel { name, if_exists }));
    }
    if !p.parse_keyword(Keyword::CREATE) {
        return Ok(None);
    }
    let or_replace = p.parse_keywords(&[Keyword::OR, Keyword::REPLACE]);
    if !is_word(&p.peek_token().token, "model") {
        return Ok(None);
    }
    p.next_token();
    let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = object_model_name(&mut p)?;
    if or_replace && if_not_exists {
        return Err(syntax("OR REPLACE and IF NOT EXISTS cannot be used together"));
    }
    let transform = if is_word(&p.peek_token().token, "transform") {
        p.next_token();
        Some(parse_transform(&mut p)?)
    } else {
        None
    };
    let options = if p.parse_keyword(Keyword::OPTIONS) { parse_options(&mut p)? } else { Vec::new() };
    if !p.parse_keyword(Keyword::AS) {
        return Err(syntax(format!(
            "expected AS (SELECT …) after the options of CREATE MODEL {name}, found {}",
            p.peek_token().token
        )));
    }
    let start = p.peek_token().span.start;
    if p.peek_token().token == Token::EOF {
        return Err(syntax(format!("CREATE MODEL {name} has no training query after AS")));
    }
    let mut query = sql[byte_offset(sql, start.line, start.column)..].trim().to_string();
    // `AS (SELECT …)` is allowed too.
    while query.starts_with('(') && query.ends_with(')') && balanced_inner(&query) {
        query = query[1..query.len() - 1].trim().to_string();
    }
    Ok(Some(MlStatement::CreateModel { name, or_replace, if_not_exists, options, transform, query }))
}

/// An identifier as DataFusion names it: unquoted ones in lower case.
fn ident_name(i: &datafusion::sql::sqlparser::ast::Ident) -> String {
    if i.quote_style.is_some() { i.value.clone() } else { i.value.to_lowercase() }
}

/// `(item, …)` after `TRANSFORM`.
fn parse_transform(p: &mut Parser) -> Result<Vec<TransformItem>, MlError> {
    let err = |e: datafusion::sql::sqlparser::parser::ParserError| syntax(format!("TRANSFORM: {e}"));
    p.expect_token(&Token::LParen).map_err(err)?;
    let mut items = Vec::new();
    loop {
        if p.consume_token(&Token::Mul) {
            let mut except = Vec::new();
            if p.parse_keyword(Keyword::EXCEPT) {
                p.expect_token(&Token::LParen).map_err(err)?;
                except =
                    p.parse_comma_separated(|p| p.parse_identifier()).map_err(err)?.iter().map(ident_name).collect();
                p.expect_token(&Token::RParen).map_err(err)?;
            }
            items.push(TransformItem::All { except });
        } else {
            let expr = p.parse_expr().map_err(err)?;
            let name = if p.parse_keyword(Keyword::AS) {
                ident_name(&p.parse_identifier().map_err(err)?)
            } else if let Expr::Identifier(i) = &expr {
                ident_name(i)
            } else {
                return Err(syntax(format!("TRANSFORM: name the column {expr}: write {expr} AS name")));
            };
            items.push(TransformItem::Column { expr: expr.to_string(), name });
        }
        if p.consume_token(&Token::RParen) {
            return Ok(items);
        }
        p.expect_token(&Token::Comma).map_err(err)?;
    }
}

/// Whether the parentheses opening and closing `s` match each other.
fn balanced_inner(s: &str) -> bool {
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, s).tokenize() else {
        return false;
    };
    let mut depth = 0i32;
    let significant: Vec<&Token> = tokens.iter().filter(|t| !matches!(t, Token::Whitespace(_))).collect();
    for (i, t) in significant.iter().enumerate() {
        match t {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth == 0 && i + 1 != significant.len() {
                    return false;
                }
            }
            _ => {}
        }
    }
    true
}

/// One `ML.<FUNCTION>(…)` call in a query's text.
#[derive(Debug, Clone, PartialEq)]
pub struct MlCall {
    /// Byte range of the whole call in the text.
    pub span: std::ops::Range<usize>,
    /// Function name, upper-cased (`PREDICT`, `EVALUATE`, …).
    pub function: String,
    /// `MODEL name[@version]`, as written after MODEL.
    pub model: Option<String>,
    /// `(query)` or `TABLE t` (as `SELECT * FROM t`).
    pub query: Option<String>,
    /// A second query or table (`ML.VALIDATE_DATA_DRIFT`'s study rows).
    pub study: Option<String>,
    /// `STRUCT(v AS name, …)` settings, names lower-cased.
    pub settings: Vec<(String, OptValue)>,
    /// An array of numbers: `GENERATE_ARRAY(start, end, step)` or
    /// `[a, b, …]` (`ML.ROC_CURVE`'s thresholds).
    pub array: Option<Vec<f64>>,
}

impl MlCall {
    /// Takes a query argument: the first is `query`, the second `study`; a
    /// third is an error.
    fn add_query(&mut self, q: String) -> Result<(), MlError> {
        if self.query.is_none() {
            self.query = Some(q);
        } else if self.study.is_none() {
            self.study = Some(q);
        } else {
            return Err(syntax(format!("ML.{}: more than two queries", self.function)));
        }
        Ok(())
    }
}

/// Most numbers an array argument may hold.
pub const MAX_ARRAY: usize = 10_000;

/// The numbers of `GENERATE_ARRAY(start, end, step)` (BigQuery's: from
/// start to end inclusive, `step` apart) or of an array literal `[a, …]`.
fn number_array(arg: &str) -> Result<Vec<f64>, MlError> {
    let bad = |why: &str| syntax(format!("{arg}: {why}"));
    let expr = Parser::new(&GenericDialect {})
        .try_with_sql(arg)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| syntax(e.to_string()))?;
    let numbers = |values: Vec<OptValue>| -> Result<Vec<f64>, MlError> {
        values
            .into_iter()
            .map(|v| match v {
                OptValue::Num(n) if n.is_finite() => Ok(n),
                other => Err(bad(&format!("{other} is not a number"))),
            })
            .collect()
    };
    let values = match &expr {
        Expr::Array(_) => match opt_value(&expr)? {
            OptValue::Array(values) => numbers(values)?,
            _ => return Err(bad("not an array")),
        },
        Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("generate_array") => {
            let text = f.args.to_string();
            let inner = text.trim().trim_start_matches('(').trim_end_matches(')');
            let exprs = Parser::new(&GenericDialect {})
                .try_with_sql(inner)
                .and_then(|mut p| p.parse_comma_separated(Parser::parse_expr))
                .map_err(|e| syntax(e.to_string()))?;
            let args = numbers(exprs.iter().map(opt_value).collect::<Result<_, _>>()?)?;
            let [start, end, step] = args[..] else {
                return Err(bad("GENERATE_ARRAY takes (start, end, step)"));
            };
            if step <= 0.0 {
                return Err(bad("the step must be positive"));
            }
            // As BigQuery: the end is included when a step lands on it.
            let count = ((end - start) / step + 1e-9).floor();
            if count >= MAX_ARRAY as f64 {
                return Err(bad(&format!("more than {MAX_ARRAY} values")));
            }
            // Rounded to 12 decimals: 0.4 + 2 × 0.1 is 0.6, not 0.6000000000000001.
            (0..=count.max(-1.0) as i64)
                .map(|i| ((start + i as f64 * step) * 1e12).round() / 1e12)
                .filter(|v| *v <= end + 1e-12)
                .collect()
        }
        _ => return Err(bad("expected GENERATE_ARRAY(start, end, step) or [a, b, …]")),
    };
    if values.is_empty() || values.len() > MAX_ARRAY {
        return Err(bad(&format!("the array must hold 1 to {MAX_ARRAY} numbers")));
    }
    Ok(values)
}

/// Finds the outermost `ML.<function>(…)` calls of `sql` (table functions;
/// not the preprocessing ones), in order.
pub fn find_ml_calls(sql: &str) -> Result<Vec<MlCall>, MlError> {
    let toks = located_tokens(sql)?;
    let mut calls = Vec::new();
    let mut k = 0;
    while k + 3 < toks.len() {
        // Preprocessing functions are scalar: crate::ml::preprocess's.
        let is_call = is_word(&toks[k].0, "ml")
            && toks[k + 1].0 == Token::Period
            && matches!(&toks[k + 2].0, Token::Word(w) if !crate::ml::preprocess::is_preprocessor(&w.value))
            && toks[k + 3].0 == Token::LParen;
        if !is_call {
            k += 1;
            continue;
        }
        let Token::Word(w) = &toks[k + 2].0 else { unreachable!() };
        let function = w.value.to_ascii_uppercase();
        let Some((close, args)) = call_args(sql, &toks, k + 3) else {
            return Err(syntax(format!("ML.{function}( is not closed")));
        };
        let end = toks[close].1 + 1;
        let mut call = MlCall {
            span: toks[k].1..end,
            function,
            model: None,
            query: None,
            study: None,
            settings: Vec::new(),
            array: None,
        };
        for arg in args.into_iter().filter(|a| !a.is_empty()) {
            let upper = arg.to_ascii_uppercase();
            if upper.starts_with("MODEL ") || upper.starts_with("MODEL\n") || upper.starts_with("MODEL\t") {
                call.model = Some(arg[5..].trim().to_string());
            } else if upper.starts_with("TABLE ") || upper.starts_with("TABLE\n") {
                call.add_query(format!("SELECT * FROM {}", arg[5..].trim()))?;
            } else if upper.starts_with("STRUCT") {
                call.settings = parse_struct_settings(&arg)?;
            } else if upper.starts_with("GENERATE_ARRAY") || arg.starts_with('[') {
                call.array = Some(number_array(&arg)?);
            } else if arg.starts_with('(') && arg.ends_with(')') {
                call.add_query(arg[1..arg.len() - 1].trim().to_string())?;
            } else {
                return Err(syntax(format!(
                    "ML.{}: unexpected argument {arg:?} (expected MODEL name, (query), TABLE name, STRUCT(…) or an array)",
                    call.function
                )));
            }
        }
        calls.push(call);
        k = close + 1;
    }
    Ok(calls)
}

/// The tokens of `sql` but whitespace, each with its byte offset.
pub(crate) fn located_tokens(sql: &str) -> Result<Vec<(Token, usize)>, MlError> {
    let tokens = Tokenizer::new(&GenericDialect {}, sql).tokenize_with_location().map_err(|e| syntax(e.to_string()))?;
    Ok(tokens
        .into_iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_) | Token::EOF))
        .map(|t| {
            let at = byte_offset(sql, t.span.start.line, t.span.start.column);
            (t.token, at)
        })
        .collect())
}

/// From the `(` at `toks[open]`: the index of the `)` that closes it, and
/// the text of each top-level argument between them (trimmed; empty ones
/// included). None when it is not closed.
pub(crate) fn call_args(sql: &str, toks: &[(Token, usize)], open: usize) -> Option<(usize, Vec<String>)> {
    let mut depth = 0;
    let mut args = Vec::new();
    let mut arg_start = toks[open].1 + 1;
    for (j, (t, at)) in toks.iter().enumerate().skip(open) {
        match t {
            Token::LParen | Token::LBracket => depth += 1,
            Token::RParen | Token::RBracket => {
                depth -= 1;
                if depth == 0 {
                    args.push(sql[arg_start..*at].trim().to_string());
                    return Some((j, args));
                }
            }
            Token::Comma if depth == 1 => {
                args.push(sql[arg_start..*at].trim().to_string());
                arg_start = at + 1;
            }
            _ => {}
        }
    }
    None
}

/// `STRUCT(5 AS num_folds, 0.5 AS threshold)` → `[("num_folds", 5), …]`.
fn parse_struct_settings(arg: &str) -> Result<Vec<(String, OptValue)>, MlError> {
    let inner = arg.trim()[6..].trim();
    let inner =
        inner.strip_prefix('(').and_then(|s| s.strip_suffix(')')).ok_or_else(|| syntax(format!("bad STRUCT {arg}")))?;
    if inner.trim().is_empty() {
        return Ok(Vec::new());
    }
    let stmts = Parser::parse_sql(&GenericDialect {}, &format!("SELECT {inner}")).map_err(|e| syntax(e.to_string()))?;
    let Some(Statement::Query(q)) = stmts.first() else {
        return Err(syntax(format!("bad STRUCT {arg}")));
    };
    let SetExpr::Select(select) = q.body.as_ref() else {
        return Err(syntax(format!("bad STRUCT {arg}")));
    };
    select
        .projection
        .iter()
        .map(|item| match item {
            SelectItem::ExprWithAlias { expr, alias } => Ok((alias.value.to_ascii_lowercase(), opt_value(expr)?)),
            other => Err(syntax(format!("STRUCT field {other} needs a name: value AS name"))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements() {
        assert_eq!(parse_ml_statement("SELECT 1").unwrap(), None);
        assert_eq!(parse_ml_statement("CREATE TABLE t (a INT)").unwrap(), None);
        let s = parse_ml_statement(
            "create model if not exists m options(model_type='random_forest_classifier', num_parallel_tree=10, \
             input_label_cols=['emotion'], class_weights=[STRUCT('a', 0.5)], early_stop=false, l2_reg=-1) as (select 1)",
        )
        .unwrap()
        .unwrap();
        let MlStatement::CreateModel { options, query, if_not_exists, .. } = s else { panic!() };
        assert!(if_not_exists);
        assert_eq!(query, "select 1");
        assert_eq!(options[1], ("num_parallel_tree".into(), OptValue::Num(10.0)));
        assert_eq!(options[2].1, OptValue::Array(vec![OptValue::Str("emotion".into())]));
        assert_eq!(
            options[3].1,
            OptValue::Array(vec![OptValue::Struct(vec![OptValue::Str("a".into()), OptValue::Num(0.5)])])
        );
        assert_eq!(options[4].1, OptValue::Bool(false));
        assert_eq!(options[5].1, OptValue::Num(-1.0));
        assert_eq!(
            parse_ml_statement("DROP MODEL IF EXISTS m").unwrap(),
            Some(MlStatement::DropModel { name: "m".into(), if_exists: true })
        );
        assert!(parse_ml_statement("CREATE MODEL m OPTIONS (model_type = ) AS SELECT 1").is_err());
        assert!(parse_ml_statement("CREATE MODEL m OPTIONS (a = 1, a = 2) AS SELECT 1").is_err());
        assert!(parse_ml_statement("CREATE MODEL `x;y` AS SELECT 1").is_err());
        // BigQuery's names: dataset.model, backquoted, with a project.
        for (written, name) in [
            ("sales.churn", "sales.churn"),
            ("`sales.churn`", "sales.churn"),
            ("`acme-1`.sales.churn", ""),
            ("`acme.sales.churn`", "acme.sales.churn"),
            ("`sales`.`churn`", "sales.churn"),
        ] {
            let parsed = parse_ml_statement(&format!("CREATE MODEL {written} OPTIONS (model_type = 'x') AS SELECT 1"));
            match parsed {
                Ok(Some(MlStatement::CreateModel { name: got, .. })) => assert_eq!(got, name, "{written}"),
                other => assert!(name.is_empty(), "{written}: {other:?}"),
            }
        }
        assert_eq!(
            parse_ml_statement("DROP MODEL IF EXISTS `a.b.c`").unwrap(),
            Some(MlStatement::DropModel { name: "a.b.c".into(), if_exists: true })
        );
        assert!(parse_ml_statement("CREATE MODEL m OPTIONS (a = 1)").is_err());
    }

    #[test]
    fn search_spaces() {
        let options = |o: &str| match parse_ml_statement(&format!("CREATE MODEL m OPTIONS ({o}) AS SELECT 1")) {
            Ok(Some(MlStatement::CreateModel { options, .. })) => Ok(options[0].1.clone()),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.to_string()),
        };
        assert_eq!(options("a = HPARAM_RANGE(0.5, 2)"), Ok(OptValue::Range(0.5, 2.0)));
        assert_eq!(options("a = hparam_range(-1, -1)"), Ok(OptValue::Range(-1.0, -1.0)));
        assert_eq!(
            options("a = HPARAM_CANDIDATES([4, 8])"),
            Ok(OptValue::Candidates(vec![OptValue::Num(4.0), OptValue::Num(8.0)]))
        );
        assert_eq!(OptValue::Range(1.0, 2.5).to_string(), "HPARAM_RANGE(1, 2.5)");
        for bad in ["HPARAM_RANGE(2, 1)", "HPARAM_RANGE(1)", "HPARAM_RANGE('a', 'b')", "HPARAM_CANDIDATES([])"] {
            let e = options(&format!("a = {bad}")).unwrap_err();
            assert!(e.contains("HPARAM_"), "{bad}: {e}");
        }
    }

    #[test]
    fn calls() {
        let sql = "SELECT * FROM ML.EVALUATE(MODEL m@2, TABLE t, STRUCT(0.5 AS threshold)) e JOIN \
                   ML.PREDICT(MODEL n, (SELECT f(a, b) FROM (SELECT 1) x)) p ON true";
        let calls = find_ml_calls(sql).unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].model.as_deref(), Some("m@2"));
        assert_eq!(calls[0].query.as_deref(), Some("SELECT * FROM t"));
        assert_eq!(calls[0].settings, vec![("threshold".into(), OptValue::Num(0.5))]);
        assert_eq!(&sql[calls[1].span.clone()], "ML.PREDICT(MODEL n, (SELECT f(a, b) FROM (SELECT 1) x))");
        assert!(find_ml_calls("SELECT * FROM ML.PREDICT(MODEL m, (SELECT 1)").is_err());
        let roc = find_ml_calls("SELECT * FROM ML.ROC_CURVE(MODEL m, TABLE t, GENERATE_ARRAY(0.4, 0.6, 0.1))").unwrap();
        let thresholds = roc[0].array.clone().unwrap();
        assert_eq!(thresholds.len(), 3, "{thresholds:?}");
        assert_eq!(thresholds[2], 0.6);
        let listed = find_ml_calls("SELECT * FROM ML.ROC_CURVE(MODEL m, TABLE t, [0.25, 0.75])").unwrap();
        assert_eq!(listed[0].array, Some(vec![0.25, 0.75]));
        assert!(find_ml_calls("SELECT * FROM ML.ROC_CURVE(MODEL m, TABLE t, GENERATE_ARRAY(0, 1, 0))").is_err());
        assert!(find_ml_calls("SELECT * FROM ML.ROC_CURVE(MODEL m, TABLE t, GENERATE_ARRAY(0, 1e6, 1))").is_err());
        assert!(find_ml_calls("SELECT ml_x FROM ml.t").unwrap().is_empty());
    }
}
