//! Seeded mutations of SQL text, for the fuzz tests of every parser that
//! reads what a user typed (the script splitter, the ML and extract
//! statements, `OPTIONS` and `STRUCT`).
//!
//! A [`Mutator`] takes a valid statement and deletes, repeats, swaps or
//! replaces a few of its tokens (with hostile ones: unbalanced quotes and
//! brackets, huge and non-finite numbers, NUL, multi-byte text), cuts it
//! short or nests it. The same seed gives the same statements, so a failure
//! is reproduced by its seed.
//!
//! ```
//! use sentio_sql::mutate::Mutator;
//! let mut m = Mutator::new(7);
//! let a: Vec<String> = (0..3).map(|_| m.mutate("SELECT 1 AS x")).collect();
//! let mut m = Mutator::new(7);
//! let b: Vec<String> = (0..3).map(|_| m.mutate("SELECT 1 AS x")).collect();
//! assert_eq!(a, b);
//! ```

/// Tokens a mutation puts in: what breaks parsers.
const HOSTILE: &[&str] = &[
    "NULL",
    "'",
    "\"",
    "`",
    "(",
    ")",
    ",",
    "*",
    ";",
    "--",
    "/*",
    "*/",
    "[",
    "]",
    "-1",
    "0",
    "1e309",
    "-1e309",
    "9223372036854775808",
    "-9223372036854775809",
    "'NaN'",
    "''",
    "MODEL",
    "STRUCT(",
    "ML.PREDICT",
    "ML.EVALUATE(MODEL",
    "@",
    "@0",
    "@-1",
    "@99999999999",
    "OPTIONS(",
    "AS",
    "TRUE",
    "[",
    "'2024-13-45'",
    "é漢🙂",
    "\0",
    "\\",
    "SELECT",
    "FROM",
    "WHERE",
    "EXTRACT",
    "REFRESH",
    "FULL",
    "extracts.",
    "ml.",
    "TRANSFORM(",
    "GENERATE_ARRAY(0, 1, 0)",
    "GENERATE_ARRAY(0, 1, -1)",
    "0.0",
    "((((((((",
    "))))))))",
    "$$",
    "$1",
    "\n",
    "\t",
];

/// A seeded source of mutated statements.
#[derive(Debug, Clone)]
pub struct Mutator {
    state: u64,
}

impl Mutator {
    /// A mutator whose statements depend on `seed` only.
    pub fn new(seed: u64) -> Self {
        Self { state: seed ^ 0x9E37_79B9_7F4A_7C15 }
    }

    /// A number in `0..n` (splitmix64).
    fn below(&mut self, n: usize) -> usize {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % n.max(1) as u64) as usize
    }

    /// `sql` with one to three mutations.
    pub fn mutate(&mut self, sql: &str) -> String {
        let mut t = tokens(sql);
        for _ in 0..1 + self.below(3) {
            if t.is_empty() {
                t.push(HOSTILE[self.below(HOSTILE.len())].to_string());
            }
            let i = self.below(t.len());
            match self.below(7) {
                0 => {
                    t.remove(i);
                }
                1 => t.insert(i, t[i].clone()),
                2 => {
                    let j = self.below(t.len());
                    t.swap(i, j);
                }
                3 => t[i] = HOSTILE[self.below(HOSTILE.len())].to_string(),
                4 => t.insert(i, format!(" {} ", HOSTILE[self.below(HOSTILE.len())])),
                5 => t.truncate(i),
                _ => {
                    t.insert(0, "SELECT * FROM (".into());
                    t.push(") AS nested_q".into());
                }
            }
        }
        t.concat()
    }
}

/// `sql` cut into words, runs of space, quoted strings and single other
/// characters.
fn tokens(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = sql.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        let same = |d: char| {
            if c.is_alphanumeric() || c == '_' {
                d.is_alphanumeric() || d == '_'
            } else if c.is_whitespace() {
                d.is_whitespace()
            } else {
                false
            }
        };
        let mut end = start + c.len_utf8();
        if c == '\'' {
            for (i, d) in chars.by_ref() {
                end = i + d.len_utf8();
                if d == '\'' {
                    break;
                }
            }
        } else {
            while let Some(&(i, d)) = chars.peek() {
                if !same(d) {
                    break;
                }
                end = i + d.len_utf8();
                chars.next();
            }
        }
        out.push(sql[start..end].to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_put_back_together_are_the_text() {
        for sql in ["SELECT a, 'b c' FROM t WHERE x = 'it''s'", "é漢🙂 'unclosed", ""] {
            assert_eq!(tokens(sql).concat(), sql);
        }
        assert_eq!(tokens("a  'b c'(")[..], ["a", "  ", "'b c'", "("]);
    }
}
