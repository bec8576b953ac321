//! Plans of the categorical preprocessing functions: `ML.LABEL_ENCODER`,
//! `ML.ONE_HOT_ENCODER`, `ML.MULTI_HOT_ENCODER` (an encoding vocabulary
//! learnt over rows), `ML.HASH_BUCKETIZE`, `ML.FEATURE_CROSS` and
//! `ML.POLYNOMIAL_EXPAND` (each row on its own).

use datafusion::sql::sqlparser::tokenizer::Token;

use super::{Plan, PreCall, Stat, arity, double, unsupported, whole_arg, word_arg};
use crate::ml::MlError;
use crate::ml::parse::{call_args, is_word, located_tokens};
use crate::sqltext::lit;

/// The statistics and expression of a categorical preprocessing call.
pub(super) fn plan(call: &PreCall) -> Result<Plan, MlError> {
    let x = format!("({})", call.args.first().cloned().unwrap_or_default());
    match call.function.as_str() {
        "LABEL_ENCODER" => {
            arity(call, 1, 3, "ML.LABEL_ENCODER(x [, top_k] [, frequency_threshold]) OVER ()")?;
            let vocabulary = vocabulary(call, &x, 1)?;
            Ok(Plan {
                stats: vec![vocabulary],
                render: Box::new(move |s| format!("sentio_vocab_index({x}, {})", s[0])),
            })
        }
        "ONE_HOT_ENCODER" => one_hot(call, &x),
        "MULTI_HOT_ENCODER" => {
            arity(call, 1, 3, "ML.MULTI_HOT_ENCODER(array [, top_k] [, frequency_threshold]) OVER ()")?;
            let vocabulary = vocabulary(call, &x, 1)?;
            Ok(Plan { stats: vec![vocabulary], render: Box::new(move |s| format!("sentio_multi_hot({x}, {})", s[0])) })
        }
        "HASH_BUCKETIZE" => {
            arity(call, 2, 2, "ML.HASH_BUCKETIZE(x, hash_bucket_size)")?;
            let n = whole_arg(call, 1, "hash_bucket_size", 0, 0..u64::MAX)?;
            Ok(Plan { stats: Vec::new(), render: Box::new(move |_| format!("sentio_hash_bucketize({x}, {n})")) })
        }
        "POLYNOMIAL_EXPAND" => {
            arity(call, 1, 2, "ML.POLYNOMIAL_EXPAND(STRUCT(a, b AS name, …) [, degree])")?;
            let fields = struct_fields(call)?;
            let degree = whole_arg(call, 1, "degree", 2, 1..5)? as usize;
            let terms = combinations(fields.len(), degree, true);
            let render = move |_: &[String]| {
                let parts: Vec<String> = terms
                    .iter()
                    .map(|t| {
                        let name = t.iter().map(|&i| fields[i].1.as_str()).collect::<Vec<_>>().join("_");
                        let product = t.iter().map(|&i| double(&fields[i].0)).collect::<Vec<_>>().join(" * ");
                        format!("{}, ({product})", lit(&name))
                    })
                    .collect();
                format!("named_struct({})", parts.join(", "))
            };
            Ok(Plan { stats: Vec::new(), render: Box::new(render) })
        }
        "FEATURE_CROSS" => {
            arity(call, 1, 2, "ML.FEATURE_CROSS(STRUCT(a, b AS name, …) [, degree])")?;
            let fields = struct_fields(call)?;
            let degree = whole_arg(call, 1, "degree", 2, 2..5)? as usize;
            let crosses = combinations(fields.len(), degree, false);
            let crosses: Vec<Vec<usize>> = crosses.into_iter().filter(|c| c.len() >= 2).collect();
            if crosses.is_empty() {
                return Err(unsupported(call, "needs two features or more to cross"));
            }
            let render = move |_: &[String]| {
                let parts: Vec<String> = crosses
                    .iter()
                    .map(|c| {
                        let name = c.iter().map(|&i| fields[i].1.as_str()).collect::<Vec<_>>().join("_");
                        let value = c
                            .iter()
                            .map(|&i| format!("CAST(({}) AS VARCHAR)", fields[i].0))
                            .collect::<Vec<_>>()
                            .join(" || '_' || ");
                        format!("{}, ({value})", lit(&name))
                    })
                    .collect();
                format!("named_struct({})", parts.join(", "))
            };
            Ok(Plan { stats: Vec::new(), render: Box::new(render) })
        }
        other => Err(MlError::Internal(format!("ML.{other} has no plan"))),
    }
}

/// `sentio_vocabulary` of `x` with the call's `top_k` (argument `first`,
/// default 32,000, below 1,000,000) and `frequency_threshold` (the next,
/// default 5), BigQuery ML's defaults.
fn vocabulary(call: &PreCall, x: &str, first: usize) -> Result<Stat, MlError> {
    let top_k = whole_arg(call, first, "top_k", 32_000, 1..1_000_000)?;
    let threshold = whole_arg(call, first + 1, "frequency_threshold", 5, 0..u64::MAX)?;
    Ok(Stat::value(format!("sentio_vocabulary({x}, {top_k}, {threshold})")))
}

/// `ML.ONE_HOT_ENCODER(x [, drop] [, top_k] [, frequency_threshold]) OVER ()`:
/// a one-element `ARRAY<STRUCT<index, value>>`, the value 0 for the
/// dropped (most frequent) category under `drop = 'most_frequent'`.
fn one_hot(call: &PreCall, x: &str) -> Result<Plan, MlError> {
    arity(call, 1, 4, "ML.ONE_HOT_ENCODER(x [, drop] [, top_k] [, frequency_threshold]) OVER ()")?;
    let drop = match word_arg(call, 1, "drop", "none")?.as_str() {
        "none" => false,
        "most_frequent" => true,
        other => return Err(unsupported(call, &format!("drop '{other}': write 'none' or 'most_frequent'"))),
    };
    // The input as it is (not cast): window statistics of one query must
    // differ in name, and DataFusion names `f(CAST(x AS …))` like `f(x)`.
    let x = x.to_string();
    let mut stats = vec![vocabulary(call, &x, 2)?];
    if drop {
        stats.push(Stat::value(format!("sentio_most_frequent({x})")));
    }
    Ok(Plan {
        stats,
        render: Box::new(move |s| {
            let value = match s.get(1) {
                Some(dropped) => format!("CASE WHEN {x} = {dropped} THEN 0.0 ELSE 1.0 END"),
                None => "1.0".to_string(),
            };
            format!("make_array(named_struct('index', sentio_vocab_index({x}, {}), 'value', {value}))", s[0])
        }),
    })
}

/// The features of a `STRUCT(expr [AS name], …)` argument: each
/// expression and its name (a column's own name when not given), at most
/// 10, named once each.
fn struct_fields(call: &PreCall) -> Result<Vec<(String, String)>, MlError> {
    let arg = call.args.first().map(|a| a.trim()).unwrap_or_default();
    let toks = located_tokens(arg)?;
    let is_struct = toks.len() >= 2 && is_word(&toks[0].0, "struct") && toks[1].0 == Token::LParen;
    let items = is_struct.then(|| call_args(arg, &toks, 1)).flatten().filter(|(end, _)| *end + 1 == toks.len());
    let Some((_, items)) = items else {
        return Err(unsupported(call, "its first argument must be STRUCT(a, b AS name, …)"));
    };
    let mut fields: Vec<(String, String)> = Vec::new();
    for item in items.iter().filter(|i| !i.is_empty()) {
        let t = located_tokens(item)?;
        let named = match t.as_slice() {
            [.., (as_, at), (Token::Word(name), _)] if t.len() > 2 && is_word(as_, "as") => {
                Some((item[..*at].trim().to_string(), name.value.clone()))
            }
            [(Token::Word(name), _)] => Some((item.clone(), name.value.clone())),
            [.., (Token::Period, _), (Token::Word(name), _)] => Some((item.clone(), name.value.clone())),
            _ => None,
        };
        let Some((expr, name)) = named else {
            return Err(unsupported(call, &format!("name the feature {item}: write {item} AS name")));
        };
        if fields.iter().any(|(_, n)| n.eq_ignore_ascii_case(&name)) {
            return Err(unsupported(call, &format!("the feature {name} is given twice")));
        }
        fields.push((expr, name));
    }
    if fields.is_empty() || fields.len() > 10 {
        return Err(unsupported(call, "takes from 1 to 10 features"));
    }
    Ok(fields)
}

/// The combinations of `n` features of 1 to `degree` of them, in
/// lexicographic order (`[0], [0, 0], [0, 1], [1], [1, 1]` for two features
/// of degree 2 with `repeat`; without it, each feature at most once).
fn combinations(n: usize, degree: usize, repeat: bool) -> Vec<Vec<usize>> {
    fn extend(n: usize, degree: usize, repeat: bool, prefix: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        let start = match prefix.last() {
            None => 0,
            Some(&l) if repeat => l,
            Some(&l) => l + 1,
        };
        for i in start..n {
            prefix.push(i);
            out.push(prefix.clone());
            if prefix.len() < degree {
                extend(n, degree, repeat, prefix, out);
            }
            prefix.pop();
        }
    }
    let mut out = Vec::new();
    extend(n, degree, repeat, &mut Vec::new(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combinations_are_in_bigquerys_order() {
        assert_eq!(combinations(2, 2, true), [vec![0], vec![0, 0], vec![0, 1], vec![1], vec![1, 1]]);
        let crosses: Vec<Vec<usize>> = combinations(3, 2, false).into_iter().filter(|c| c.len() > 1).collect();
        assert_eq!(crosses, [vec![0, 1], vec![0, 2], vec![1, 2]]);
        assert_eq!(combinations(3, 3, false).len(), 7);
    }
}
