//! `sentio_most_frequent(x)` and `sentio_vocabulary(x, top_k,
//! frequency_threshold)`: how often each value occurs, summarised as the
//! most frequent value or as an encoding vocabulary.
//!
//! Both work as plain aggregates and as window aggregates (`… OVER ()`,
//! `OVER (PARTITION BY …)`); partial counts merge across partitions and
//! executors, so the answer does not depend on how the rows were split.
//!
//! ```sql
//! SELECT sentio_vocabulary(outcome, 32000, 5) FROM training.sessions;   -- '["abandoned","completed"]'
//! SELECT sentio_most_frequent(device) FROM training.sessions;           -- 'mobile'
//! ```

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, UInt64Type};
use datafusion::common::{Result, ScalarValue, exec_datafusion_err, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Signature, Volatility};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Literal;

use super::list_rows;

/// How often each non-NULL value occurs.
#[derive(Debug, Default)]
struct Counts {
    map: HashMap<ScalarValue, u64>,
}

/// Which occurrences count: every value, or each row's distinct elements
/// once (an array column: a category's frequency is the rows that have it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Values,
    Rows,
}

impl Counts {
    /// Adds (or with `add` false, removes) the occurrences in `values`.
    fn apply(&mut self, values: &ArrayRef, unit: Unit, add: bool) -> Result<()> {
        match unit {
            Unit::Values => {
                for i in 0..values.len() {
                    if values.is_valid(i) {
                        self.bump(ScalarValue::try_from_array(values, i)?, 1, add);
                    }
                }
            }
            Unit::Rows => {
                let lists = list_rows(values, "a vocabulary's array column")?;
                for row in lists.into_iter().flatten() {
                    let mut seen = HashSet::new();
                    for i in 0..row.len() {
                        if row.is_valid(i) {
                            let v = ScalarValue::try_from_array(&row, i)?;
                            if seen.insert(v.clone()) {
                                self.bump(v, 1, add);
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn bump(&mut self, value: ScalarValue, n: u64, add: bool) {
        if add {
            *self.map.entry(value).or_default() += n;
        } else if let Some(c) = self.map.get_mut(&value) {
            *c = c.saturating_sub(n);
            if *c == 0 {
                self.map.remove(&value);
            }
        }
    }

    /// The counts as two lists (values of `key_type`, counts).
    fn state(&self, key_type: &DataType) -> Result<Vec<ScalarValue>> {
        let (keys, counts): (Vec<ScalarValue>, Vec<ScalarValue>) =
            self.map.iter().map(|(k, c)| (k.clone(), ScalarValue::UInt64(Some(*c)))).unzip();
        Ok(vec![
            ScalarValue::List(ScalarValue::new_list_nullable(&keys, key_type)),
            ScalarValue::List(ScalarValue::new_list_nullable(&counts, &DataType::UInt64)),
        ])
    }

    /// Adds partial counts made by [`Counts::state`].
    fn merge(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [keys, counts] = states else {
            return exec_err!("partial counts must be two lists, not {}", states.len());
        };
        let (keys, counts) = (keys.as_list::<i32>(), counts.as_list::<i32>());
        for r in 0..keys.len() {
            if keys.is_null(r) || counts.is_null(r) {
                continue;
            }
            let (k, c) = (keys.value(r), counts.value(r));
            let c = c.as_primitive::<UInt64Type>();
            for i in 0..k.len() {
                self.bump(ScalarValue::try_from_array(&k, i)?, c.value(i), true);
            }
        }
        Ok(())
    }

    /// Values by count, most frequent first; ties in ascending value order.
    fn ranked(&self) -> Vec<(&ScalarValue, u64)> {
        let mut all: Vec<(&ScalarValue, u64)> = self.map.iter().map(|(k, c)| (k, *c)).collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.partial_cmp(b.0).unwrap_or(Ordering::Equal)));
        all
    }

    fn size(&self) -> usize {
        std::mem::size_of::<Self>() + self.map.keys().map(|k| k.size() + 8).sum::<usize>()
    }
}

/// A value as text: a string's own characters, any other value printed.
fn as_text(v: &ScalarValue) -> Option<String> {
    match v {
        ScalarValue::Utf8(s) | ScalarValue::LargeUtf8(s) | ScalarValue::Utf8View(s) => s.clone(),
        v if v.is_null() => None,
        v => Some(v.to_string()),
    }
}

/// An integer literal argument of an aggregate call.
fn literal_u64(expr: Option<&Arc<dyn PhysicalExpr>>, what: &str) -> Result<u64> {
    let value = expr.and_then(|e| e.downcast_ref::<Literal>()).map(Literal::value);
    match value {
        Some(ScalarValue::Int64(Some(v))) if *v >= 0 => Ok(*v as u64),
        Some(ScalarValue::Int32(Some(v))) if *v >= 0 => Ok(*v as u64),
        Some(ScalarValue::UInt64(Some(v))) => Ok(*v),
        _ => exec_err!("{what} must be a whole number literal, 0 or more"),
    }
}

/// The element type of a list type, or the type itself.
fn key_type(input: &DataType) -> (DataType, Unit) {
    match input {
        DataType::List(f) | DataType::LargeList(f) => (f.data_type().clone(), Unit::Rows),
        t => (t.clone(), Unit::Values),
    }
}

fn state_fields(args: &StateFieldsArgs, key: &DataType) -> Vec<FieldRef> {
    vec![
        Arc::new(Field::new(format!("{}[values]", args.name), DataType::new_list(key.clone(), true), true)),
        Arc::new(Field::new(format!("{}[counts]", args.name), DataType::new_list(DataType::UInt64, true), true)),
    ]
}

/// The `sentio_most_frequent(x)` aggregate: the most frequent non-NULL
/// value (ties: the smallest), NULL when there is none.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MostFrequent {
    signature: Signature,
}

impl Default for MostFrequent {
    fn default() -> Self {
        Self::new()
    }
}

impl MostFrequent {
    /// Creates the function.
    pub fn new() -> Self {
        Self { signature: Signature::any(1, Volatility::Immutable) }
    }
}

impl AggregateUDFImpl for MostFrequent {
    fn name(&self) -> &str {
        "sentio_most_frequent"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        arg_types.first().cloned().ok_or_else(|| exec_datafusion_err!("sentio_most_frequent takes one argument"))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let key = args.return_field.data_type().clone();
        Ok(Box::new(CountsAccumulator { counts: Counts::default(), key, unit: Unit::Values, summary: Summary::Mode }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(state_fields(&args, args.return_field.data_type()))
    }
}

/// The `sentio_vocabulary(x, top_k, frequency_threshold)` aggregate: the
/// values occurring at least `frequency_threshold` times, the `top_k` most
/// frequent of them (ties: the smaller value), as a sorted JSON array of
/// strings. For an array column a value's frequency is the rows holding it.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Vocabulary {
    signature: Signature,
}

impl Default for Vocabulary {
    fn default() -> Self {
        Self::new()
    }
}

impl Vocabulary {
    /// Creates the function.
    pub fn new() -> Self {
        Self { signature: Signature::any(3, Volatility::Immutable) }
    }
}

impl AggregateUDFImpl for Vocabulary {
    fn name(&self) -> &str {
        "sentio_vocabulary"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(vocabulary_type())
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let top_k = literal_u64(args.exprs.get(1), "sentio_vocabulary's top_k")?;
        let threshold = literal_u64(args.exprs.get(2), "sentio_vocabulary's frequency_threshold")?;
        let input = args.exprs[0].data_type(args.schema)?;
        let (key, unit) = key_type(&input);
        Ok(Box::new(CountsAccumulator {
            counts: Counts::default(),
            key,
            unit,
            summary: Summary::Vocabulary { top_k, threshold },
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let (key, _) = key_type(args.input_fields[0].data_type());
        Ok(state_fields(&args, &key))
    }
}

/// The type `sentio_vocabulary` returns: its JSON text, dictionary-encoded,
/// so that a window aggregate's rows (`… OVER ()`) share one copy of it
/// rather than each holding its own.
pub fn vocabulary_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// What a [`CountsAccumulator`] answers.
#[derive(Debug)]
enum Summary {
    Mode,
    Vocabulary { top_k: u64, threshold: u64 },
}

#[derive(Debug)]
struct CountsAccumulator {
    counts: Counts,
    key: DataType,
    unit: Unit,
    summary: Summary,
}

/// The vocabulary of `ranked` counts (see [`Vocabulary`]).
fn vocabulary(ranked: &[(&ScalarValue, u64)], top_k: u64, threshold: u64) -> Vec<String> {
    let mut words: Vec<String> = ranked
        .iter()
        .filter(|(_, c)| *c >= threshold)
        .take(usize::try_from(top_k).unwrap_or(usize::MAX))
        .filter_map(|(v, _)| as_text(v))
        .collect();
    words.sort();
    words.dedup();
    words
}

impl Accumulator for CountsAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.counts.apply(&values[0], self.unit, true)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.counts.apply(&values[0], self.unit, false)
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.counts.merge(states)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.counts.state(&self.key)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let ranked = self.counts.ranked();
        Ok(match self.summary {
            Summary::Mode => match ranked.first() {
                Some((v, _)) => (*v).clone(),
                None => ScalarValue::try_from(&self.key)?,
            },
            Summary::Vocabulary { top_k, threshold } => {
                let words = vocabulary(&ranked, top_k, threshold);
                let json = serde_json::to_string(&words).map_err(|e| exec_datafusion_err!("{e}"))?;
                ScalarValue::Dictionary(Box::new(DataType::Int32), Box::new(ScalarValue::Utf8(Some(json))))
            }
        })
    }

    fn size(&self) -> usize {
        self.counts.size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ListBuilder, StringArray, StringBuilder};

    fn strings(v: &[Option<&str>]) -> ArrayRef {
        Arc::new(StringArray::from(v.to_vec()))
    }

    fn words(v: &[Option<&str>], top_k: u64, threshold: u64) -> Vec<String> {
        let mut c = Counts::default();
        c.apply(&strings(v), Unit::Values, true).unwrap();
        vocabulary(&c.ranked(), top_k, threshold)
    }

    #[test]
    fn vocabulary_keeps_the_top_k_frequent_enough_values_sorted() {
        // BigQuery ML's LABEL_ENCODER example: top 2, at least twice.
        let v = [None, Some("a"), Some("b"), Some("b"), Some("c"), Some("c"), Some("c"), Some("d"), Some("d")];
        assert_eq!(words(&v, 2, 2), ["b", "c"]);
        assert_eq!(words(&v, 10, 1), ["a", "b", "c", "d"]);
        assert_eq!(words(&v, 10, 3), ["c"]);
        assert!(words(&v, 0, 1).is_empty());
    }

    /// A list-of-strings column.
    fn string_lists(rows: &[Option<&[Option<&str>]>]) -> ArrayRef {
        let mut b = ListBuilder::new(StringBuilder::new());
        for row in rows {
            match row {
                Some(values) => {
                    for v in *values {
                        b.values().append_option(*v);
                    }
                    b.append(true);
                }
                None => b.append(false),
            }
        }
        Arc::new(b.finish())
    }

    #[test]
    fn an_array_column_counts_rows_not_repeats() {
        // BigQuery ML's MULTI_HOT_ENCODER example: top 3, at least once.
        let lists = string_lists(&[
            Some(&[Some("a"), Some("b"), Some("b"), Some("c"), None]),
            Some(&[Some("c"), Some("c"), Some("d"), Some("d"), None]),
            None,
        ]);
        let mut c = Counts::default();
        c.apply(&lists, Unit::Rows, true).unwrap();
        assert_eq!(vocabulary(&c.ranked(), 3, 1), ["a", "b", "c"]);
    }

    #[test]
    fn counts_merge_and_retract() {
        let mut a = Counts::default();
        a.apply(&strings(&[Some("x"), Some("y"), Some("y")]), Unit::Values, true).unwrap();
        let state = a.state(&DataType::Utf8).unwrap();
        let arrays: Vec<ArrayRef> = state.iter().map(|s| s.to_array().unwrap()).collect();
        let mut b = Counts::default();
        b.apply(&strings(&[Some("x"), Some("x")]), Unit::Values, true).unwrap();
        b.merge(&arrays).unwrap();
        assert_eq!(b.ranked()[0], (&ScalarValue::Utf8(Some("x".into())), 3));
        b.apply(&strings(&[Some("x")]), Unit::Values, false).unwrap();
        // x and y both twice now: the tie goes to the smaller value.
        assert_eq!(b.ranked()[0].0, &ScalarValue::Utf8(Some("x".into())));
        b.apply(&strings(&[Some("x")]), Unit::Values, false).unwrap();
        assert_eq!(b.ranked()[0].0, &ScalarValue::Utf8(Some("y".into())));
    }
}
