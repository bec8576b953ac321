//! Procedural statements in scripts, as BigQuery writes them: `DECLARE`,
//! `SET` of a declared variable, `IF … THEN … [ELSEIF … THEN …] [ELSE …]
//! END IF` and `ASSERT (condition) [AS 'message']`.
//!
//! A script's statements ([`crate::script::split_statements`]) are read
//! into [`Step`]s here; the runner carries them out, evaluating conditions
//! and values as queries (so on the cluster when there is one) and writing
//! each variable's value into later statements as a literal ([`substitute`]).
//!
//! ```
//! use sentio_cli::procedural::{Step, parse};
//! use sentio_cli::script::split_statements;
//! let script = "DECLARE n INT64 DEFAULT 3;\nIF n > 2 THEN\n  SELECT 'big';\nELSE\n  SELECT 'small';\nEND IF;";
//! let steps = parse(&split_statements(script).unwrap()).unwrap();
//! assert_eq!(steps.len(), 2);
//! assert!(matches!(&steps[1], Step::If { branches, otherwise, .. } if branches.len() == 1 && otherwise.len() == 1));
//! ```

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use sentio_sql::sqltext::lit;

use crate::script::{Statement, offset_of};

/// One step of a script.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A statement for the engine.
    Run(Statement),
    /// `DECLARE a, b [type] [DEFAULT expr]`: the value of `expr` (NULL
    /// without one), as `type` when given.
    Declare {
        /// The variables, lower case.
        names: Vec<String>,
        /// Their SQL type, if given (BigQuery's names are mapped).
        sql_type: Option<String>,
        /// The default's expression.
        default: Option<String>,
        /// Where it is.
        line: usize,
    },
    /// `SET name = expr` of a declared variable.
    Set {
        /// The variable, lower case.
        name: String,
        /// Its new value's expression.
        expr: String,
        /// Where it is.
        line: usize,
    },
    /// `IF … THEN … [ELSEIF … THEN …] [ELSE …] END IF`.
    If {
        /// Each condition and its steps, in order.
        branches: Vec<(String, Vec<Step>)>,
        /// The `ELSE` steps.
        otherwise: Vec<Step>,
        /// Where the `IF` is.
        line: usize,
    },
    /// `ASSERT condition [AS 'message']`.
    Assert {
        /// The condition.
        condition: String,
        /// The message, if given.
        message: Option<String>,
        /// Where it is.
        line: usize,
    },
}

/// A script whose procedural statements do not fit together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Where.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

fn error(line: usize, message: impl Into<String>) -> ParseError {
    ParseError { line, message: message.into() }
}

/// The significant tokens of `text`, each with its byte range.
fn tokens(text: &str) -> Vec<(Token, std::ops::Range<usize>)> {
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, text).tokenize_with_location() else { return Vec::new() };
    let mut line_starts = vec![0];
    line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
    let offset = |l: u64, c: u64| offset_of(&line_starts, text, l, c);
    tokens
        .into_iter()
        .filter(|t: &TokenWithSpan| !matches!(t.token, Token::Whitespace(_) | Token::EOF))
        .map(|t| {
            let range = offset(t.span.start.line, t.span.start.column)..offset(t.span.end.line, t.span.end.column);
            (t.token, range)
        })
        .collect()
}

fn is_word(t: &Token, w: &str) -> bool {
    matches!(t, Token::Word(word) if word.quote_style.is_none() && word.value.eq_ignore_ascii_case(w))
}

/// The leading keyword of a statement's tokens, upper case.
fn keyword(toks: &[(Token, std::ops::Range<usize>)]) -> Option<String> {
    match toks.first() {
        Some((Token::Word(w), _)) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
        _ => None,
    }
}

/// Lines of `text` before the first non-blank character from byte `from` on.
fn lines_before(text: &str, from: usize) -> usize {
    let rest = &text[from..];
    text[..from + rest.len() - rest.trim_start().len()].matches('\n').count()
}

/// Splits `text` (after its first `skip` tokens; on line `line`) at the
/// first top-level `THEN` (outside parentheses and `CASE … END`): the
/// condition, and the statement after it (empty when none) with its line.
fn at_then(text: &str, skip: usize, line: usize) -> Result<(String, String, usize), ParseError> {
    let toks = tokens(text);
    let (mut depth, mut cases) = (0i32, 0i32);
    for (i, (t, range)) in toks.iter().enumerate().skip(skip) {
        match t {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            t if depth == 0 && is_word(t, "case") => cases += 1,
            t if depth == 0 && is_word(t, "end") => cases -= 1,
            t if depth == 0 && cases == 0 && is_word(t, "then") => {
                let start = toks.get(skip).map_or(range.start, |(_, r)| r.start);
                let condition = text[start..range.start].trim().to_string();
                if condition.is_empty() || i == skip {
                    return Err(error(line, "IF/ELSEIF has no condition before THEN"));
                }
                return Ok((condition, text[range.end..].trim().to_string(), line + lines_before(text, range.end)));
            }
            _ => {}
        }
    }
    Err(error(line, "IF/ELSEIF without THEN"))
}

/// Where a block ended.
enum End {
    /// The end of the script.
    Script,
    /// Its condition, the statement after its `THEN` and that statement's
    /// line.
    ElseIf(String, String, usize),
    /// The statement after `ELSE` and its line.
    Else(String, usize),
    /// `END IF`.
    Fi,
}

/// Reads `statements` into steps.
pub fn parse(statements: &[Statement]) -> Result<Vec<Step>, ParseError> {
    let mut at = 0;
    let (steps, end) = block(statements, &mut at)?;
    match end {
        End::Script => Ok(steps),
        End::ElseIf(.., line) | End::Else(_, line) => Err(error(line, "ELSEIF/ELSE without IF")),
        End::Fi => Err(error(statements[at - 1].line, "END IF without IF")),
    }
}

/// Steps from `statements[*at..]` until the end of the script or of the
/// enclosing `IF`'s branch.
fn block(statements: &[Statement], at: &mut usize) -> Result<(Vec<Step>, End), ParseError> {
    let mut steps = Vec::new();
    let mut declared_all = false;
    while *at < statements.len() {
        let s = &statements[*at];
        *at += 1;
        let (text, line) = (s.text.as_str(), s.line);
        let toks = tokens(text);
        match keyword(&toks).as_deref() {
            Some("DECLARE") => {
                if declared_all {
                    return Err(error(line, "DECLARE must come before the script's other statements"));
                }
                steps.push(declare(text, line)?);
            }
            Some("IF") => {
                declared_all = true;
                let (condition, first, first_line) = at_then(text, 1, line)?;
                steps.push(if_steps(statements, at, (condition, first, first_line), line)?);
            }
            Some("ELSEIF") => {
                let (condition, first, first_line) = at_then(text, 1, line)?;
                return Ok((steps, End::ElseIf(condition, first, first_line)));
            }
            Some("ELSE") => {
                let (rest, rest_line) = match toks.get(1) {
                    Some((_, r)) => (text[r.start..].trim().to_string(), line + lines_before(text, r.start)),
                    None => (String::new(), line),
                };
                return Ok((steps, End::Else(rest, rest_line)));
            }
            Some("END") if toks.get(1).is_some_and(|(t, _)| is_word(t, "if")) => {
                if toks.len() > 2 {
                    return Err(error(line, "END IF must end its statement: write END IF;"));
                }
                return Ok((steps, End::Fi));
            }
            Some("ASSERT") => {
                declared_all = true;
                steps.push(assert(text, line)?);
            }
            _ => {
                declared_all = true;
                steps.push(Step::Run(s.clone()));
            }
        }
    }
    Ok((steps, End::Script))
}

/// The rest of an `IF` on `line` whose condition, first statement (after
/// `THEN`) and that statement's line are given.
fn if_steps(
    statements: &[Statement],
    at: &mut usize,
    first: (String, String, usize),
    line: usize,
) -> Result<Step, ParseError> {
    let mut branches = Vec::new();
    let mut current = first;
    loop {
        let (steps, end) = branch(statements, at, &current.1, current.2)?;
        match end {
            End::ElseIf(c, f, l) => {
                branches.push((current.0, steps));
                current = (c, f, l);
            }
            End::Else(f, l) => {
                branches.push((current.0, steps));
                let (otherwise, end) = branch(statements, at, &f, l)?;
                return match end {
                    End::Fi => Ok(Step::If { branches, otherwise, line }),
                    _ => Err(error(line, "IF … ELSE without END IF")),
                };
            }
            End::Fi => {
                branches.push((current.0, steps));
                return Ok(Step::If { branches, otherwise: Vec::new(), line });
            }
            End::Script => return Err(error(line, "IF without END IF")),
        }
    }
}

/// A branch: the statement that follows its `THEN` or `ELSE` (if any), then
/// the statements up to the next `ELSEIF`, `ELSE` or `END IF`.
fn branch(statements: &[Statement], at: &mut usize, first: &str, line: usize) -> Result<(Vec<Step>, End), ParseError> {
    if first.is_empty() {
        return block(statements, at);
    }
    // The statement after THEN is read as if it stood alone.
    let mut joined = vec![Statement { text: first.to_string(), line }];
    joined.extend_from_slice(&statements[*at..]);
    let mut inner = 0;
    let result = block(&joined, &mut inner)?;
    *at += inner - 1;
    Ok(result)
}

/// BigQuery's type names as DataFusion's.
fn sql_type(t: &str) -> String {
    match t.to_ascii_uppercase().as_str() {
        "INT64" | "INTEGER" | "INT" => "BIGINT".into(),
        "FLOAT64" => "DOUBLE".into(),
        "STRING" => "VARCHAR".into(),
        "BOOL" => "BOOLEAN".into(),
        other => other.to_string(),
    }
}

/// `DECLARE a, b [type] [DEFAULT expr]`.
fn declare(text: &str, line: usize) -> Result<Step, ParseError> {
    let toks = tokens(text);
    let mut names = Vec::new();
    let mut i = 1;
    loop {
        match toks.get(i) {
            Some((Token::Word(w), _)) if w.quote_style.is_none() || w.quote_style == Some('`') => {
                names.push(w.value.to_ascii_lowercase());
            }
            _ => return Err(error(line, "DECLARE needs variable names: DECLARE name [type] [DEFAULT value]")),
        }
        i += 1;
        if matches!(toks.get(i), Some((Token::Comma, _))) {
            i += 1;
        } else {
            break;
        }
    }
    let default_at = toks.iter().position(|(t, _)| is_word(t, "default"));
    let type_end = default_at.map_or(text.len(), |d| toks[d].1.start);
    let type_start = toks.get(i).map_or(text.len(), |(_, r)| r.start).min(type_end);
    let type_text = text[type_start..type_end].trim();
    let sql_type = (!type_text.is_empty()).then(|| sql_type(type_text));
    let default = match default_at {
        Some(d) => {
            let expr = toks.get(d + 1).map_or("", |(_, r)| text[r.start..].trim());
            if expr.is_empty() {
                return Err(error(line, "DECLARE … DEFAULT needs a value"));
            }
            Some(expr.to_string())
        }
        None => None,
    };
    if sql_type.is_none() && default.is_none() {
        return Err(error(line, "DECLARE needs a type or a DEFAULT value"));
    }
    Ok(Step::Declare { names, sql_type, default, line })
}

/// `ASSERT condition [AS 'message']`.
fn assert(text: &str, line: usize) -> Result<Step, ParseError> {
    let toks = tokens(text);
    let n = toks.len();
    let (end, message) = match (n >= 3).then(|| (&toks[n - 2], &toks[n - 1])) {
        Some(((t, r), (Token::SingleQuotedString(m), _))) if is_word(t, "as") => (r.start, Some(m.clone())),
        _ => (text.len(), None),
    };
    let start = toks.get(1).map_or(text.len(), |(_, r)| r.start).min(end);
    let condition = text[start..end].trim().to_string();
    if condition.is_empty() {
        return Err(error(line, "ASSERT needs a condition: ASSERT (condition) [AS 'message']"));
    }
    Ok(Step::Assert { condition, message, line })
}

/// Whether `text` is `SET name = …` of a declared variable; its name and
/// expression.
pub fn set_of(text: &str, declared: &dyn Fn(&str) -> bool) -> Option<(String, String)> {
    let toks = tokens(text);
    match toks.as_slice() {
        [(s, _), (Token::Word(w), _), (Token::Eq, eq), rest @ ..]
            if is_word(s, "set")
                && w.quote_style.is_none()
                && declared(&w.value.to_ascii_lowercase())
                && !rest.is_empty() =>
        {
            Some((w.value.to_ascii_lowercase(), text[eq.end..].trim().to_string()))
        }
        _ => None,
    }
}

/// `text` with every unquoted identifier that names a variable (and is not
/// part of a qualified name, nor an alias after `AS`) replaced by the
/// variable's value, a literal.
pub fn substitute(text: &str, value: &dyn Fn(&str) -> Option<String>) -> String {
    let toks = tokens(text);
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (i, (t, range)) in toks.iter().enumerate() {
        let Token::Word(w) = t else { continue };
        let qualified =
            i > 0 && toks[i - 1].0 == Token::Period || toks.get(i + 1).is_some_and(|(t, _)| *t == Token::Period);
        let alias = i > 0 && is_word(&toks[i - 1].0, "as");
        if w.quote_style.is_some() || qualified || alias {
            continue;
        }
        if let Some(v) = value(&w.value.to_ascii_lowercase()) {
            out.push_str(&text[last..range.start]);
            out.push_str(&v);
            last = range.end;
        }
    }
    out.push_str(&text[last..]);
    out
}

/// DataFusion's SQL name of a type a variable can hold.
fn sql_name(t: &DataType) -> Option<&'static str> {
    Some(match t {
        DataType::Boolean => "BOOLEAN",
        t if t.is_integer() => "BIGINT",
        DataType::Float32 => "FLOAT",
        DataType::Float64 => "DOUBLE",
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "VARCHAR",
        DataType::Date32 => "DATE",
        DataType::Timestamp(..) => "TIMESTAMP",
        DataType::Null => "NULL",
        _ => return None,
    })
}

/// The first value of `column` as a SQL literal of its type.
pub fn literal(column: &ArrayRef) -> Result<String, String> {
    if column.is_empty() {
        return Err("the expression gave no row".into());
    }
    let t = column.data_type();
    let Some(name) = sql_name(t) else { return Err(format!("a variable cannot hold a {t} value")) };
    let v = ScalarValue::try_from_array(column, 0).map_err(|e| e.to_string())?;
    if v.is_null() {
        return Ok(if name == "NULL" { "NULL".into() } else { format!("CAST(NULL AS {name})") });
    }
    Ok(match &v {
        ScalarValue::Boolean(Some(b)) => if *b { "TRUE" } else { "FALSE" }.to_string(),
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => lit(s),
        ScalarValue::Float64(Some(f)) => format!("CAST('{f:?}' AS DOUBLE)"),
        ScalarValue::Float32(Some(f)) => format!("CAST('{f:?}' AS FLOAT)"),
        v if t.is_integer() => format!("CAST({v} AS BIGINT)"),
        _ => format!("CAST('{v}' AS {name})"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::{SplitError, split_statements};

    fn steps(script: &str) -> Result<Vec<Step>, ParseError> {
        parse(&split_statements(script).unwrap())
    }

    #[test]
    fn blocks_nest_and_keep_their_lines() {
        let s = steps(
            "DECLARE a, b INT64 DEFAULT 1;\nDECLARE msg STRING;\nIF a > (SELECT CASE WHEN b = 1 THEN 0 END) THEN\n  \
             SELECT 1;\n  IF b = 2 THEN SELECT 2; END IF;\nELSEIF a = 0 THEN SELECT 3;\nELSE\n  SELECT 4;\n  \
             SELECT 5;\nEND IF;\nASSERT (a = 1) AS 'a is one';\nSELECT 6",
        )
        .unwrap();
        assert_eq!(s.len(), 5, "{s:#?}");
        assert!(matches!(&s[0], Step::Declare { names, sql_type: Some(t), default: Some(d), .. }
            if names == &["a", "b"] && t == "BIGINT" && d == "1"));
        assert!(matches!(&s[1], Step::Declare { sql_type: Some(t), default: None, .. } if t == "VARCHAR"));
        let Step::If { branches, otherwise, line } = &s[2] else { panic!("{s:#?}") };
        assert_eq!(*line, 3);
        assert_eq!(branches.len(), 2);
        assert_eq!(branches[0].0, "a > (SELECT CASE WHEN b = 1 THEN 0 END)");
        assert_eq!(branches[0].1.len(), 2, "SELECT 1 and the inner IF: {:#?}", branches[0].1);
        assert!(matches!(&branches[0].1[0], Step::Run(st) if st.text == "SELECT 1" && st.line == 4));
        assert!(matches!(&branches[0].1[1], Step::If { branches, .. } if branches[0].1.len() == 1));
        assert_eq!(branches[1].0, "a = 0");
        assert!(matches!(&branches[1].1[..], [Step::Run(st)] if st.text == "SELECT 3"));
        assert_eq!(otherwise.len(), 2);
        assert!(
            matches!(&s[3], Step::Assert { condition, message: Some(m), .. } if condition == "(a = 1)" && m == "a is one")
        );
        assert!(matches!(&s[4], Step::Run(st) if st.text == "SELECT 6" && st.line == 12));
    }

    #[test]
    fn mismatched_blocks_are_errors_with_lines() {
        let e = |script: &str| steps(script).unwrap_err();
        assert_eq!(e("SELECT 1;\nIF TRUE THEN SELECT 2;").line, 2);
        assert!(e("SELECT 1;\nEND IF").message.contains("END IF without IF"));
        assert!(e("ELSE SELECT 1; END IF").message.contains("without IF"));
        assert!(e("IF TRUE SELECT 1; END IF").message.contains("without THEN"));
        assert!(e("SELECT 1;\nDECLARE x INT64").message.contains("before the script's other statements"));
        assert!(e("DECLARE x").message.contains("a type or a DEFAULT"));
        assert!(e("ASSERT").message.contains("needs a condition"));
    }

    #[test]
    fn variables_become_literals_but_not_in_names_or_strings() {
        let value = |n: &str| (n == "n").then(|| "42".to_string());
        assert_eq!(
            substitute("SELECT n, t.n, \"n\", 'n', N + 1 AS n FROM t WHERE n.x = n", &value),
            "SELECT 42, t.n, \"n\", 'n', 42 + 1 AS n FROM t WHERE n.x = 42"
        );
        let declared = |n: &str| n == "n";
        assert_eq!(set_of("SET n = n + 1", &declared), Some(("n".into(), "n + 1".into())));
        assert_eq!(set_of("SET datafusion.execution.batch_size = 10", &declared), None);
        assert_eq!(set_of("SET other = 1", &declared), None);
    }

    /// Mutated scripts (`sentio_sql::mutate`): statements or an error with
    /// a line of the script, never a panic (nor from their procedural
    /// reading); every statement is a piece of the script and starts on one
    /// of its lines.
    #[test]
    fn mutated_scripts_split_or_fail_with_a_line() {
        let script = "-- header; not a statement\n/* block; */ SELECT 'a;b' AS x, \"q;\" FROM t;\n\n\
                      CREATE MODEL m OPTIONS (model_type = 'logistic_reg') AS SELECT * FROM t;\n\
                      SELECT $$x;y$$, E'\\n', 1e309 -- tail;\n;;\nREFRESH EXTRACT extracts.s FULL;\n\
                      DECLARE n INT64 DEFAULT 2; IF n > (CASE WHEN n THEN 1 END) THEN SET n = n + 1; \
                      ELSEIF n = 0 THEN SELECT 1; ELSE SELECT 2; END IF; ASSERT (n > 1) AS 'msg'";
        let mut m = sentio_sql::mutate::Mutator::new(11);
        let lines = |s: &str| s.lines().count().max(1);
        for i in 0..20_000 {
            let src = m.mutate(script);
            let split = std::panic::catch_unwind(|| {
                let statements = split_statements(&src)?;
                // The procedural reading of them: steps or an error, too.
                let _ = parse(&statements);
                Ok::<_, SplitError>(statements)
            });
            match split {
                Ok(Ok(statements)) => {
                    for s in statements {
                        assert!(src.contains(&s.text), "mutation {i}: {:?} is not in {src:?}", s.text);
                        assert!((1..=lines(&src)).contains(&s.line), "mutation {i}: line {} of {src:?}", s.line);
                    }
                }
                Ok(Err(e)) => assert!((1..=lines(&src) + 1).contains(&e.line), "mutation {i}: {e:?} for {src:?}"),
                Err(_) => panic!("the splitter panicked on mutation {i}: {src:?}"),
            }
        }
    }
}

/// What carrying out a script's steps needs of the runner.
pub trait Engine {
    /// Runs `statement` (its variables already written in) and prints its
    /// result, as a script's statement.
    fn run(&mut self, statement: &Statement) -> impl std::future::Future<Output = crate::Result<()>>;
    /// The first column of the answer to `query` (a `SELECT` of one value).
    fn value(&mut self, query: &str) -> impl std::future::Future<Output = crate::Result<ArrayRef>>;
}

/// A script's variables: each one's SQL type (if declared with one) and
/// value, a literal.
#[derive(Debug, Default)]
pub struct Variables(std::collections::BTreeMap<String, (Option<String>, String)>);

impl Variables {
    fn value(&self, name: &str) -> Option<String> {
        self.0.get(name).map(|(_, v)| v.clone())
    }

    /// `text` with the variables written in.
    fn written_in(&self, text: &str) -> String {
        if self.0.is_empty() { text.to_string() } else { substitute(text, &|n| self.value(n)) }
    }
}

/// Carries out `steps` of the script `source` on `engine`; stops at the
/// first failure, which names the line.
pub async fn execute<E: Engine>(steps: &[Step], source: &str, engine: &mut E) -> crate::Result<()> {
    let mut vars = Variables::default();
    run_steps(steps, source, engine, &mut vars).await
}

fn failed(source: &str, line: usize, message: impl Into<String>) -> crate::CliError {
    crate::CliError::Statement { source_name: source.to_string(), line, message: message.into() }
}

/// The value of `expr` (with the variables written in), as `sql_type` when
/// given, as a literal.
async fn evaluate<E: Engine>(
    engine: &mut E,
    vars: &Variables,
    expr: &str,
    sql_type: Option<&str>,
    source: &str,
    line: usize,
) -> crate::Result<String> {
    let expr = vars.written_in(expr);
    let query = match sql_type {
        Some(t) => format!("SELECT CAST(({expr}) AS {t})"),
        None => format!("SELECT ({expr})"),
    };
    let column = engine.value(&query).await.map_err(|e| relined(e, source, line))?;
    literal(&column).map_err(|why| failed(source, line, why))
}

/// The truth of `condition`, which must be BOOLEAN; NULL is not true.
async fn truth<E: Engine>(
    engine: &mut E,
    vars: &Variables,
    condition: &str,
    what: &str,
    source: &str,
    line: usize,
) -> crate::Result<bool> {
    let column = engine
        .value(&format!("SELECT ({})", vars.written_in(condition)))
        .await
        .map_err(|e| relined(e, source, line))?;
    if column.data_type() != &DataType::Boolean && column.data_type() != &DataType::Null {
        return Err(failed(source, line, format!("{what}: the condition must be BOOLEAN, not {}", column.data_type())));
    }
    Ok(literal(&column).map_err(|why| failed(source, line, why))? == "TRUE")
}

/// An error of a query the script ran for `line`, said at that line
/// (interruptions pass unchanged: they end the command with their status).
fn relined(e: crate::CliError, source: &str, line: usize) -> crate::CliError {
    match e {
        e @ (crate::CliError::Interrupted { .. } | crate::CliError::Statement { .. }) => e,
        e => failed(source, line, e.to_string()),
    }
}

fn run_steps<'a, E: Engine>(
    steps: &'a [Step],
    source: &'a str,
    engine: &'a mut E,
    vars: &'a mut Variables,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = crate::Result<()>> + 'a>> {
    Box::pin(async move {
        for step in steps {
            match step {
                Step::Run(statement) => {
                    if let Some((name, expr)) = set_of(&statement.text, &|n| vars.0.contains_key(n)) {
                        let sql_type = vars.0[&name].0.clone();
                        let value = evaluate(engine, vars, &expr, sql_type.as_deref(), source, statement.line).await?;
                        vars.0.insert(name, (sql_type, value));
                        continue;
                    }
                    let text = vars.written_in(&statement.text);
                    engine.run(&Statement { text, line: statement.line }).await?;
                }
                Step::Declare { names, sql_type, default, line } => {
                    let value = match default {
                        Some(expr) => evaluate(engine, vars, expr, sql_type.as_deref(), source, *line).await?,
                        None => format!("CAST(NULL AS {})", sql_type.as_deref().unwrap_or("VARCHAR")),
                    };
                    for name in names {
                        if vars.0.contains_key(name) {
                            return Err(failed(source, *line, format!("variable {name} is declared twice")));
                        }
                        vars.0.insert(name.clone(), (sql_type.clone(), value.clone()));
                    }
                }
                Step::Set { name, expr, line } => {
                    let sql_type = vars.0.get(name).and_then(|(t, _)| t.clone());
                    let value = evaluate(engine, vars, expr, sql_type.as_deref(), source, *line).await?;
                    vars.0.insert(name.clone(), (sql_type, value));
                }
                Step::If { branches, otherwise, line } => {
                    let mut chosen: &[Step] = otherwise;
                    for (condition, then) in branches {
                        if truth(engine, vars, condition, "IF", source, *line).await? {
                            chosen = then;
                            break;
                        }
                    }
                    run_steps(chosen, source, engine, vars).await?;
                }
                Step::Assert { condition, message, line } => {
                    if !truth(engine, vars, condition, "ASSERT", source, *line).await? {
                        let said = message.clone().unwrap_or_else(|| condition.clone());
                        return Err(failed(source, *line, format!("Assertion failed: {said}")));
                    }
                }
            }
        }
        Ok(())
    })
}
