//! Splitting SQL scripts into statements, each with the line it starts on.
//!
//! ```
//! use sentio_cli::script::split_statements;
//! let stmts = split_statements("-- counts\nSELECT 1;\n\nSELECT ';'\n  AS x;").unwrap();
//! assert_eq!(stmts.len(), 2);
//! assert_eq!((stmts[0].line, stmts[0].text.as_str()), (2, "SELECT 1"));
//! assert_eq!(stmts[1].line, 4);
//! ```

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

/// One statement of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The statement's text, without the terminating `;`.
    pub text: String,
    /// 1-based line of the script on which the statement starts.
    pub line: usize,
}

/// A script that cannot even be tokenized (e.g. an unterminated string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitError {
    /// 1-based line of the problem.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Byte offset of a 1-based (line, column-in-chars) position.
pub(crate) fn offset_of(line_starts: &[usize], src: &str, line: u64, column: u64) -> usize {
    let Some(&start) = line_starts.get((line as usize).saturating_sub(1)) else {
        return src.len();
    };
    src[start..].char_indices().nth((column as usize).saturating_sub(1)).map(|(i, _)| start + i).unwrap_or(src.len())
}

/// Splits `src` at top-level `;` (quotes and comments respected). Empty
/// statements and comment-only tails are dropped.
pub fn split_statements(src: &str) -> Result<Vec<Statement>, SplitError> {
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, src)
        .tokenize_with_location()
        .map_err(|e| SplitError { line: e.location.line.max(1) as usize, message: e.message })?;
    let mut line_starts = vec![0];
    line_starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));

    let mut out = Vec::new();
    let mut start: Option<(u64, u64)> = None;
    let mut end = (0u64, 0u64);
    let flush = |start: &mut Option<(u64, u64)>, end: (u64, u64), out: &mut Vec<Statement>| {
        if let Some((l, c)) = start.take() {
            let a = offset_of(&line_starts, src, l, c);
            let b = offset_of(&line_starts, src, end.0, end.1);
            let text = src[a..b.max(a)].trim().to_string();
            if !text.is_empty() {
                out.push(Statement { text, line: l as usize });
            }
        }
    };
    for t in &tokens {
        match &t.token {
            Token::SemiColon => {
                flush(&mut start, (t.span.start.line, t.span.start.column), &mut out);
            }
            Token::Whitespace(_) | Token::EOF => {}
            _ => {
                if start.is_none() {
                    start = Some((t.span.start.line, t.span.start.column));
                }
                end = (t.span.end.line, t.span.end.column);
            }
        }
    }
    flush(&mut start, end, &mut out);
    Ok(out)
}

/// Moves a `Line: N` position inside an error message (relative to the
/// statement) to the script's numbering, and returns the absolute line.
pub fn absolute_error_line(statement_line: usize, message: &str) -> usize {
    message
        .find("Line: ")
        .and_then(|i| {
            message[i + 6..].split(|c: char| !c.is_ascii_digit()).next().and_then(|n| n.parse::<usize>().ok())
        })
        .map(|rel| statement_line + rel.saturating_sub(1))
        .unwrap_or(statement_line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_quotes_and_lines() {
        let src = "/* header\n comment */\nSELECT 'a;b' -- c;\n, 2;\n-- trailing\n";
        let s = split_statements(src).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].line, 3);
        assert!(s[0].text.starts_with("SELECT 'a;b'"));
        assert!(s[0].text.ends_with(", 2"));
    }

    #[test]
    fn unterminated_string_names_line() {
        let e = split_statements("SELECT 1;\n\nSELECT 'oops;\n").unwrap_err();
        assert_eq!(e.line, 3);
    }

    #[test]
    fn relative_lines() {
        assert_eq!(absolute_error_line(10, "Expected x, found y at Line: 2, Column: 5"), 11);
        assert_eq!(absolute_error_line(10, "no position"), 10);
    }
}
