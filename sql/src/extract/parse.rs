//! Recognising the extract statements, which DataFusion's parser does not
//! know (`REFRESH EXTRACT`) or would run against the wrong thing
//! (`CREATE TABLE extracts.… AS`, `DROP TABLE extracts.…`).
//!
//! ```
//! use sentio_sql::extract::parse::{parse_extract_statement, ExtractStatement};
//! let s = parse_extract_statement(
//!     "CREATE TABLE extracts.sessions OPTIONS (watermark = 'session_id') AS SELECT * FROM opdb.sessions",
//! ).unwrap().unwrap();
//! let ExtractStatement::Create { name, watermark, query, .. } = s else { panic!() };
//! assert_eq!((name.as_str(), watermark.as_deref()), ("sessions", Some("session_id")));
//! assert_eq!(query, "SELECT * FROM opdb.sessions");
//!
//! let s = parse_extract_statement("REFRESH EXTRACT extracts.sessions FULL").unwrap().unwrap();
//! assert_eq!(s, ExtractStatement::Refresh { name: "sessions".into(), full: true });
//! assert!(parse_extract_statement("CREATE TABLE t AS SELECT 1").unwrap().is_none());
//! ```

use datafusion::sql::sqlparser::ast::ObjectName;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

use super::{ExtractError, MANIFEST_TABLE, SCHEMA};
use crate::ml::parse::{OptValue, byte_offset, is_word, parse_options};

/// An extract statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtractStatement {
    /// `CREATE [OR REPLACE] TABLE [IF NOT EXISTS] extracts.name
    /// [OPTIONS (watermark = 'column')] AS query`.
    Create {
        /// Extract name.
        name: String,
        /// OR REPLACE given.
        or_replace: bool,
        /// IF NOT EXISTS given.
        if_not_exists: bool,
        /// The watermark column, if chosen.
        watermark: Option<String>,
        /// The source query's text.
        query: String,
    },
    /// `REFRESH EXTRACT [extracts.]name [FULL]`.
    Refresh {
        /// Extract name.
        name: String,
        /// FULL given: rebuild instead of adding what is new.
        full: bool,
    },
    /// `DROP TABLE [IF EXISTS] extracts.name`.
    Drop {
        /// Extract name.
        name: String,
        /// IF EXISTS given.
        if_exists: bool,
    },
}

fn syntax(message: impl Into<String>) -> ExtractError {
    ExtractError::Syntax(message.into())
}

/// Extract names: letters, digits and `_`, not starting with a digit, not
/// `manifest`.
pub fn check_extract_name(name: &str) -> Result<(), ExtractError> {
    let plain = !name.is_empty()
        && name.len() <= 128
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !plain {
        return Err(syntax(format!(
            "invalid extract name {name:?}: use letters, digits and _ (not starting with a digit)"
        )));
    }
    if name.eq_ignore_ascii_case(MANIFEST_TABLE) {
        return Err(syntax(format!("extracts.{MANIFEST_TABLE} is the list of extracts; choose another name")));
    }
    Ok(())
}

/// `extracts.name` → `Some(name)`; any other name → `None`.
fn extract_name(n: &ObjectName, allow_bare: bool) -> Result<Option<String>, ExtractError> {
    let parts: Vec<String> =
        n.0.iter().map(|p| p.as_ident().map(|i| i.value.clone()).unwrap_or_else(|| p.to_string())).collect();
    let name = match parts.as_slice() {
        [schema, name] if schema.eq_ignore_ascii_case(SCHEMA) => name.clone(),
        [name] if allow_bare => name.clone(),
        _ => return Ok(None),
    };
    check_extract_name(&name)?;
    Ok(Some(name.to_ascii_lowercase()))
}

/// Parses `sql` as an extract statement; `Ok(None)` when it is not one.
pub fn parse_extract_statement(sql: &str) -> Result<Option<ExtractStatement>, ExtractError> {
    let dialect = GenericDialect {};
    let Ok(mut p) = Parser::new(&dialect).try_with_sql(sql) else {
        return Ok(None);
    };
    if is_word(&p.peek_token().token, "refresh") {
        p.next_token();
        if !is_word(&p.peek_token().token, "extract") {
            return Ok(None);
        }
        p.next_token();
        let n = p
            .parse_object_name(false)
            .map_err(|_| syntax("REFRESH EXTRACT needs the extract: REFRESH EXTRACT extracts.<name> [FULL]"))?;
        let Some(name) = extract_name(&n, true)? else {
            return Err(syntax(format!("REFRESH EXTRACT names an extract (extracts.<name>), not {n}")));
        };
        let full = is_word(&p.peek_token().token, "full");
        if full {
            p.next_token();
        }
        let _ = p.consume_token(&Token::SemiColon);
        if p.peek_token().token != Token::EOF {
            return Err(syntax(format!("unexpected {} after REFRESH EXTRACT {name}", p.peek_token().token)));
        }
        return Ok(Some(ExtractStatement::Refresh { name, full }));
    }
    if p.parse_keyword(Keyword::DROP) {
        if !p.parse_keyword(Keyword::TABLE) {
            return Ok(None);
        }
        let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
        let Ok(n) = p.parse_object_name(false) else { return Ok(None) };
        let Some(name) = extract_name(&n, false)? else { return Ok(None) };
        let _ = p.consume_token(&Token::SemiColon);
        if p.peek_token().token != Token::EOF {
            return Err(syntax(format!("unexpected {} after DROP TABLE extracts.{name}", p.peek_token().token)));
        }
        return Ok(Some(ExtractStatement::Drop { name, if_exists }));
    }
    if !p.parse_keyword(Keyword::CREATE) {
        return Ok(None);
    }
    let or_replace = p.parse_keywords(&[Keyword::OR, Keyword::REPLACE]);
    if !p.parse_keyword(Keyword::TABLE) {
        return Ok(None);
    }
    let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let Ok(n) = p.parse_object_name(false) else { return Ok(None) };
    let Some(name) = extract_name(&n, false)? else { return Ok(None) };
    if or_replace && if_not_exists {
        return Err(syntax("OR REPLACE and IF NOT EXISTS cannot be used together"));
    }
    let mut watermark = None;
    if p.parse_keyword(Keyword::OPTIONS) {
        for (key, value) in parse_options(&mut p).map_err(|e| syntax(e.to_string()))? {
            match (key.as_str(), value) {
                ("watermark", OptValue::Str(s)) if !s.is_empty() => watermark = Some(s),
                ("watermark", other) => {
                    return Err(syntax(format!("watermark is a column name in quotes, not {other}")));
                }
                (other, _) => {
                    return Err(syntax(format!("CREATE TABLE extracts.{name} has no option {other} (watermark)")));
                }
            }
        }
    }
    if !p.parse_keyword(Keyword::AS) {
        return Err(syntax(format!(
            "expected AS SELECT … after CREATE TABLE extracts.{name}, found {}",
            p.peek_token().token
        )));
    }
    let start = p.peek_token().span.start;
    if p.peek_token().token == Token::EOF {
        return Err(syntax(format!("CREATE TABLE extracts.{name} has no query after AS")));
    }
    let query = sql[byte_offset(sql, start.line, start.column)..].trim().trim_end_matches(';').trim().to_string();
    Ok(Some(ExtractStatement::Create { name, or_replace, if_not_exists, watermark, query }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_and_what_is_not_ours() {
        let s = parse_extract_statement("create or replace table EXTRACTS.S as\n  select id from opdb.t where id > 3")
            .unwrap()
            .unwrap();
        assert_eq!(
            s,
            ExtractStatement::Create {
                name: "s".into(),
                or_replace: true,
                if_not_exists: false,
                watermark: None,
                query: "select id from opdb.t where id > 3".into()
            }
        );
        assert_eq!(
            parse_extract_statement("DROP TABLE IF EXISTS extracts.s").unwrap(),
            Some(ExtractStatement::Drop { name: "s".into(), if_exists: true })
        );
        assert_eq!(
            parse_extract_statement("REFRESH EXTRACT s").unwrap(),
            Some(ExtractStatement::Refresh { name: "s".into(), full: false })
        );
        for other in ["DROP TABLE t", "CREATE TABLE adhoc.t AS SELECT 1", "SELECT * FROM extracts.s", "REFRESH x"] {
            assert_eq!(parse_extract_statement(other).unwrap(), None, "{other}");
        }
    }

    #[test]
    fn clear_errors() {
        let err = |sql: &str| parse_extract_statement(sql).unwrap_err().to_string();
        assert!(err("CREATE TABLE extracts.manifest AS SELECT 1").contains("list of extracts"));
        assert!(err("CREATE TABLE extracts.\"a;b\" AS SELECT 1").contains("invalid extract name"));
        assert!(err("CREATE TABLE extracts.s OPTIONS (key = 'x') AS SELECT 1").contains("no option key"));
        assert!(err("CREATE TABLE extracts.s OPTIONS (watermark = 3) AS SELECT 1").contains("column name in quotes"));
        assert!(err("CREATE TABLE extracts.s SELECT 1").contains("expected AS"));
        assert!(err("CREATE TABLE extracts.s AS").contains("no query"));
        assert!(err("REFRESH EXTRACT s PARTIAL").contains("unexpected"));
        assert!(err("REFRESH EXTRACT adhoc.s").contains("names an extract"));
        assert!(err("REFRESH EXTRACT").contains("REFRESH EXTRACT extracts.<name> [FULL]"));
    }
}
