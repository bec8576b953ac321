//! A trained `matrix_factorization` model, and the functions that apply it
//! where the rows are:
//!
//! * `sentio_mf_predict(ref, user, item)` — the predicted rating (explicit
//!   feedback) or confidence (implicit) of a pair; NULL when the model does
//!   not know the user or the item;
//! * `sentio_mf_recommend(ref, 'users' | 'items', id, n)` — the `n` best
//!   items for a user (or users for an item), best first, as a list of
//!   `(id, score)`; empty for an unknown id;
//! * `sentio_mf_ids(ref, 'users' | 'items')` — every user (item) the model
//!   knows, as a list;
//! * `sentio_mf_weights(ref, user_col, item_col)` — `ML.WEIGHTS`' rows: each
//!   user's and item's factors and bias (`intercept`), then for explicit
//!   feedback the mean rating as `__INTERCEPT__`;
//! * `sentio_mf_ranks(ref, user, items)` — for each of a list of items,
//!   how many items the model scores higher for `user` (0: it comes first),
//!   for ranking metrics; NULL where either is unknown. The user's scores of
//!   every item are computed once for the whole list.
//!
//! `ref` is a JSON literal ([`FactorRef`]) naming the stored factors; each
//! process reads them from its own object store once and caches them, as
//! `sentio_predict` does its models. Ids are text: the client casts ids to
//! text before calling and casts results back to the training columns' types.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, LazyLock, Mutex};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Float64Builder, Int64Array, ListArray, ListBuilder, StringArray,
    StringBuilder, StructArray, StructBuilder, UInt64Builder,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Fields, Int64Type};
use datafusion::common::{Result, ScalarValue, exec_datafusion_err, exec_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};
use prost::Message;
use sentio_proto::FactorModel;
use serde::{Deserialize, Serialize};

use crate::ml::predict_udf::{ModelSource, fetch_checked};
use crate::ml::text::strings;

/// Version of the [`FactorModel`] encoding this build writes and reads.
pub const FACTOR_FORMAT: u32 = 1;

/// What a plan says about the factors to apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FactorRef {
    /// `name@version`, for messages.
    pub model: String,
    /// URL of the stored [`FactorModel`].
    pub url: String,
    /// [`crate::ml::predict_udf::fingerprint`] of its bytes.
    pub fingerprint: String,
}

/// One side of a model: its ids (sorted) and their vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct Side {
    ids: Vec<String>,
    index: HashMap<String, usize>,
    vectors: Vec<f64>,
}

impl Side {
    fn new(ids: Vec<String>, vectors: Vec<f64>, width: usize, what: &str) -> std::result::Result<Self, String> {
        if vectors.len() != ids.len() * width {
            return Err(format!("{} {what} ids but {} factor values (width {width})", ids.len(), vectors.len()));
        }
        let index = ids.iter().enumerate().map(|(i, id)| (id.clone(), i)).collect();
        Ok(Self { ids, index, vectors })
    }

    /// The ids, sorted.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// The vector of id number `i`.
    pub fn vector(&self, i: usize, width: usize) -> &[f64] {
        &self.vectors[i * width..(i + 1) * width]
    }

    /// The number of `id`, if the model knows it.
    pub fn position(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }
}

/// Which side a recommendation is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Items for a user.
    Users,
    /// Users for an item.
    Items,
}

impl Role {
    fn parse(s: &str) -> Result<Self> {
        match s {
            "users" => Ok(Self::Users),
            "items" => Ok(Self::Items),
            other => exec_err!("unknown side {other:?} (users or items)"),
        }
    }
}

/// A decoded [`FactorModel`].
#[derive(Debug, Clone, PartialEq)]
pub struct Factors {
    /// Implicit feedback (scores are confidences, no biases).
    pub implicit: bool,
    /// Latent factors.
    pub k: usize,
    /// The mean training rating (explicit).
    pub mean: f64,
    /// Users.
    pub users: Side,
    /// Items.
    pub items: Side,
}

/// A scored candidate, ordered so that a max-heap keeps the worst on top.
#[derive(Debug, PartialEq)]
struct Candidate(f64, usize);

impl Eq for Candidate {}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Candidate {
    /// Worse first: a lower score, or at equal scores the later id.
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.total_cmp(&self.0).then(self.1.cmp(&other.1))
    }
}

impl Factors {
    /// Values in a stored vector.
    pub fn width(&self) -> usize {
        if self.implicit { self.k } else { self.k + 1 }
    }

    /// Decodes stored factors.
    pub fn decode(bytes: &[u8]) -> std::result::Result<Self, String> {
        let m = FactorModel::decode(bytes).map_err(|e| format!("cannot decode factors: {e}"))?;
        if m.format_version != FACTOR_FORMAT {
            return Err(format!("factors of format {}, this build reads {FACTOR_FORMAT}", m.format_version));
        }
        let k = m.num_factors as usize;
        let width = if m.implicit { k } else { k + 1 };
        Ok(Self {
            implicit: m.implicit,
            k,
            mean: m.global_mean,
            users: Side::new(m.user_ids, m.user_factors, width, "user")?,
            items: Side::new(m.item_ids, m.item_factors, width, "item")?,
        })
    }

    /// The score of user number `u` and item number `i`.
    pub fn score(&self, u: usize, i: usize) -> f64 {
        let w = self.width();
        let (x, y) = (self.users.vector(u, w), self.items.vector(i, w));
        let dot: f64 = x[..self.k].iter().zip(&y[..self.k]).map(|(a, b)| a * b).sum();
        if self.implicit { dot } else { self.mean + dot + x[self.k] + y[self.k] }
    }

    /// The score of a pair of ids; None when either is unknown.
    pub fn predict(&self, user: &str, item: &str) -> Option<f64> {
        Some(self.score(self.users.position(user)?, self.items.position(item)?))
    }

    /// How many items score higher than `item` for `user`; None when
    /// either is unknown.
    pub fn rank(&self, user: &str, item: &str) -> Option<u64> {
        self.ranks(user, &[Some(item)])[0]
    }

    /// [`Factors::rank`] of each of `items` for `user`: the user's score of
    /// every item computed once and sorted, each rank a binary search.
    pub fn ranks(&self, user: &str, items: &[Option<&str>]) -> Vec<Option<u64>> {
        let Some(u) = self.users.position(user) else { return vec![None; items.len()] };
        let mut scores: Vec<f64> = (0..self.items.ids.len()).map(|j| self.score(u, j)).collect();
        let own: Vec<Option<f64>> = items.iter().map(|i| Some(scores[self.items.position((*i)?)?])).collect();
        scores.sort_by(|a, b| b.total_cmp(a));
        own.into_iter().map(|o| o.map(|o| scores.partition_point(|s| *s > o) as u64)).collect()
    }

    /// The `n` best of the other side for `id` of side `role`, best first
    /// (ties: in id order); empty for an unknown id.
    pub fn top(&self, role: Role, id: &str, n: usize) -> Vec<(&str, f64)> {
        let (own, other) = match role {
            Role::Users => (&self.users, &self.items),
            Role::Items => (&self.items, &self.users),
        };
        let Some(me) = own.position(id) else { return Vec::new() };
        let mut heap = BinaryHeap::with_capacity(n + 1);
        for j in 0..other.ids.len() {
            let s = match role {
                Role::Users => self.score(me, j),
                Role::Items => self.score(j, me),
            };
            heap.push(Candidate(s, j));
            if heap.len() > n {
                heap.pop();
            }
        }
        let mut best: Vec<Candidate> = heap.into_vec();
        best.sort();
        best.into_iter().map(|Candidate(s, j)| (other.ids[j].as_str(), s)).collect()
    }
}

const CACHE_ENTRIES: usize = 8;

static CACHE: LazyLock<Mutex<HashMap<String, Arc<Factors>>>> = LazyLock::new(Default::default);

/// The factors a reference names, from this process's cache or its store.
pub fn load(source: &dyn ModelSource, reference: &str) -> Result<Arc<Factors>> {
    if let Some(f) = CACHE.lock().expect("factor cache").get(reference) {
        return Ok(Arc::clone(f));
    }
    let f = read(source, reference)?;
    prime(reference, Arc::clone(&f));
    Ok(f)
}

/// The factors a reference names, from its store (checked against the
/// reference's fingerprint), not cached.
pub fn read(source: &dyn ModelSource, reference: &str) -> Result<Arc<Factors>> {
    let r: FactorRef = serde_json::from_str(reference).map_err(|e| exec_datafusion_err!("bad model reference: {e}"))?;
    let bytes = fetch_checked(source, &r.model, &r.url, &r.fingerprint)?;
    Ok(Arc::new(Factors::decode(&bytes).map_err(|e| exec_datafusion_err!("model {}: {e}", r.model))?))
}

/// Puts factors into this process's cache (the client does after training).
pub fn prime(reference: &str, factors: Arc<Factors>) {
    let mut cache = CACHE.lock().expect("factor cache");
    if cache.len() >= CACHE_ENTRIES {
        cache.clear();
    }
    cache.insert(reference.to_string(), factors);
}

/// What a [`FactorUdf`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FactorFn {
    /// `sentio_mf_predict`.
    Predict,
    /// `sentio_mf_recommend`.
    Recommend,
    /// `sentio_mf_ids`.
    Ids,
    /// `sentio_mf_ranks`.
    Ranks,
    /// `sentio_mf_weights`.
    Weights,
}

/// Fields of one recommendation: the other side's id and its score.
pub fn recommendation_fields() -> Fields {
    Fields::from(vec![Field::new("id", DataType::Utf8, true), Field::new("score", DataType::Float64, true)])
}

/// Fields of one `(factor, weight)` entry of `ML.WEIGHTS`.
pub fn factor_weight_fields() -> Fields {
    Fields::from(vec![Field::new("factor", DataType::Int64, false), Field::new("weight", DataType::Float64, false)])
}

/// Fields of one row of `ML.WEIGHTS` of a factorization, as BigQuery ML
/// names them.
pub fn weight_fields() -> Fields {
    let entry = DataType::Struct(factor_weight_fields());
    Fields::from(vec![
        Field::new("processed_input", DataType::Utf8, false),
        Field::new("feature", DataType::Utf8, true),
        Field::new("factor_weights", DataType::List(Arc::new(Field::new("item", entry, true))), false),
        Field::new("intercept", DataType::Float64, true),
    ])
}

/// `ML.WEIGHTS`' rows of `f`, as one list: every user (`processed_input` =
/// `user_col`), every item, then for explicit feedback the mean rating
/// (`__INTERCEPT__`, no factors).
fn weights(f: &Factors, user_col: &str, item_col: &str) -> Result<ListArray> {
    let width = f.width();
    let sides = [(user_col, &f.users), (item_col, &f.items)];
    let rows = f.users.ids.len() + f.items.ids.len() + usize::from(!f.implicit);
    let (mut inputs, mut features, mut intercepts) = (Vec::with_capacity(rows), Vec::with_capacity(rows), Vec::new());
    let (mut factor, mut weight, mut offsets) = (Vec::new(), Vec::new(), vec![0i32]);
    for (input, side) in sides {
        for (i, id) in side.ids.iter().enumerate() {
            let v = side.vector(i, width);
            inputs.push(input.to_string());
            features.push(Some(id.clone()));
            factor.extend(0..f.k as i64);
            weight.extend_from_slice(&v[..f.k]);
            offsets.push(factor.len() as i32);
            intercepts.push((!f.implicit).then(|| v[f.k]));
        }
    }
    if !f.implicit {
        inputs.push("__INTERCEPT__".to_string());
        features.push(None);
        offsets.push(factor.len() as i32);
        intercepts.push(Some(f.mean));
    }
    let entries = StructArray::try_new(
        factor_weight_fields(),
        vec![Arc::new(Int64Array::from(factor)), Arc::new(Float64Array::from(weight))],
        None,
    )?;
    let entry_field = Arc::new(Field::new("item", DataType::Struct(factor_weight_fields()), true));
    let lists = ListArray::try_new(entry_field, OffsetBuffer::new(offsets.into()), Arc::new(entries), None)?;
    let row = StructArray::try_new(
        weight_fields(),
        vec![
            Arc::new(StringArray::from(inputs)),
            Arc::new(StringArray::from(features)),
            Arc::new(lists),
            Arc::new(Float64Array::from(intercepts)),
        ],
        None,
    )?;
    let n = row.len() as i32;
    let field = Arc::new(Field::new("item", DataType::Struct(weight_fields()), true));
    Ok(ListArray::try_new(field, OffsetBuffer::new(vec![0, n].into()), Arc::new(row), None)?)
}

/// One of the `sentio_mf_*` scalar functions.
#[derive(Debug)]
pub struct FactorUdf {
    function: FactorFn,
    signature: Signature,
    source: Arc<dyn ModelSource>,
}

impl PartialEq for FactorUdf {
    fn eq(&self, other: &Self) -> bool {
        self.function == other.function
    }
}
impl Eq for FactorUdf {}
impl std::hash::Hash for FactorUdf {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.function.hash(state);
    }
}

impl FactorUdf {
    /// The function `function`, reading models through `source`.
    pub fn new(function: FactorFn, source: Arc<dyn ModelSource>) -> Self {
        let arity = match function {
            FactorFn::Predict | FactorFn::Ranks | FactorFn::Weights => 3,
            FactorFn::Recommend => 4,
            FactorFn::Ids => 2,
        };
        Self { function, signature: Signature::any(arity, Volatility::Immutable), source }
    }
}

/// The text of a literal argument.
fn literal(v: &ColumnarValue, what: &str) -> Result<String> {
    match v {
        ColumnarValue::Scalar(s) => match s.try_as_str() {
            Some(Some(text)) => Ok(text.to_string()),
            _ => exec_err!("{what} must be a text literal"),
        },
        ColumnarValue::Array(_) => exec_err!("{what} must be a literal"),
    }
}

impl FactorUdf {
    fn predict(&self, f: &Factors, users: &ArrayRef, items: &ArrayRef) -> Result<ArrayRef> {
        let (users, items) = (strings(users, "user")?, strings(items, "item")?);
        let scores: Float64Array =
            users.iter().zip(&items).map(|(u, i)| f.predict((*u)?, (*i)?)).collect::<Vec<_>>().into();
        Ok(Arc::new(scores))
    }

    fn ranks(&self, f: &Factors, users: &ArrayRef, items: &ArrayRef) -> Result<ArrayRef> {
        let users = strings(users, "user")?;
        let lists: &ListArray = match items.data_type() {
            DataType::List(_) => items.as_list::<i32>(),
            other => return exec_err!("sentio_mf_ranks takes a list of items, not {other}"),
        };
        let mut out = ListBuilder::new(UInt64Builder::new());
        for (r, user) in users.iter().enumerate() {
            let (Some(user), true) = (user, lists.is_valid(r)) else {
                out.append(false);
                continue;
            };
            let row = lists.value(r);
            for rank in f.ranks(user, &strings(&row, "item")?) {
                out.values().append_option(rank);
            }
            out.append(true);
        }
        Ok(Arc::new(out.finish()))
    }

    fn recommend(&self, f: &Factors, role: Role, ids: &ArrayRef, n: &ArrayRef) -> Result<ArrayRef> {
        let ids = strings(ids, "id")?;
        let n = datafusion::arrow::compute::cast(n, &DataType::Int64)?;
        let n = n.as_primitive::<Int64Type>();
        let mut out = ListBuilder::new(StructBuilder::from_fields(recommendation_fields(), 0));
        for (row, id) in ids.iter().enumerate() {
            let count = if n.is_null(row) { usize::MAX } else { usize::try_from(n.value(row)).unwrap_or(0) };
            let count = count.min(match role {
                Role::Users => f.items.ids.len(),
                Role::Items => f.users.ids.len(),
            });
            if let Some(id) = id {
                let entries = out.values();
                for (other, score) in f.top(role, id, count) {
                    entries.field_builder::<StringBuilder>(0).expect("id").append_value(other);
                    entries.field_builder::<Float64Builder>(1).expect("score").append_value(score);
                    entries.append(true);
                }
            }
            out.append(true);
        }
        Ok(Arc::new(out.finish()))
    }
}

impl ScalarUDFImpl for FactorUdf {
    fn name(&self) -> &str {
        match self.function {
            FactorFn::Predict => "sentio_mf_predict",
            FactorFn::Recommend => "sentio_mf_recommend",
            FactorFn::Ids => "sentio_mf_ids",
            FactorFn::Ranks => "sentio_mf_ranks",
            FactorFn::Weights => "sentio_mf_weights",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.function {
            FactorFn::Predict => DataType::Float64,
            FactorFn::Ranks => DataType::List(Arc::new(Field::new("item", DataType::UInt64, true))),
            FactorFn::Weights => DataType::List(Arc::new(Field::new("item", DataType::Struct(weight_fields()), true))),
            FactorFn::Recommend => {
                DataType::List(Arc::new(Field::new("item", DataType::Struct(recommendation_fields()), true)))
            }
            FactorFn::Ids => DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = self.name();
        let f = load(self.source.as_ref(), &literal(&args.args[0], &format!("{name}'s model reference"))?)?;
        let rows = args.number_rows;
        let array = |i: usize| args.args[i].to_array(rows);
        match self.function {
            FactorFn::Predict => Ok(ColumnarValue::Array(self.predict(&f, &array(1)?, &array(2)?)?)),
            FactorFn::Ranks => Ok(ColumnarValue::Array(self.ranks(&f, &array(1)?, &array(2)?)?)),
            FactorFn::Weights => {
                let user_col = literal(&args.args[1], &format!("{name}'s user column"))?;
                let item_col = literal(&args.args[2], &format!("{name}'s item column"))?;
                Ok(ColumnarValue::Scalar(ScalarValue::List(Arc::new(weights(&f, &user_col, &item_col)?))))
            }
            FactorFn::Recommend => {
                let role = Role::parse(&literal(&args.args[1], &format!("{name}'s side"))?)?;
                Ok(ColumnarValue::Array(self.recommend(&f, role, &array(2)?, &array(3)?)?))
            }
            FactorFn::Ids => {
                let side = match Role::parse(&literal(&args.args[1], &format!("{name}'s side"))?)? {
                    Role::Users => &f.users,
                    Role::Items => &f.items,
                };
                let ids: Vec<ScalarValue> = side.ids.iter().map(|id| ScalarValue::Utf8(Some(id.clone()))).collect();
                let list = ScalarValue::List(ScalarValue::new_list_nullable(&ids, &DataType::Utf8));
                Ok(ColumnarValue::Scalar(list))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(implicit: bool) -> Factors {
        let m = FactorModel {
            format_version: FACTOR_FORMAT,
            implicit,
            num_factors: 1,
            global_mean: if implicit { 0.0 } else { 3.0 },
            user_ids: vec!["u1".into(), "u2".into()],
            user_factors: if implicit { vec![1.0, -1.0] } else { vec![1.0, 0.5, -1.0, 0.0] },
            item_ids: vec!["a".into(), "b".into(), "c".into()],
            item_factors: if implicit { vec![2.0, 1.0, 1.0] } else { vec![2.0, 0.0, 1.0, 0.0, 1.0, 1.5] },
        };
        Factors::decode(&m.encode_to_vec()).unwrap()
    }

    #[test]
    fn scores_pairs_with_mean_and_biases() {
        let f = model(false);
        // 3 + 1·2 + 0.5 + 0 = 5.5
        assert_eq!(f.predict("u1", "a"), Some(5.5));
        assert_eq!(f.predict("u2", "c"), Some(3.0 - 1.0 + 0.0 + 1.5));
        assert_eq!(f.predict("nobody", "a"), None);
        assert_eq!(model(true).predict("u2", "a"), Some(-2.0));
    }

    #[test]
    fn top_n_is_best_first_with_ties_in_id_order() {
        let f = model(true);
        assert_eq!(f.top(Role::Users, "u1", 2), vec![("a", 2.0), ("b", 1.0)]);
        assert_eq!(f.top(Role::Users, "u1", 10).len(), 3);
        assert_eq!(f.top(Role::Items, "a", 1), vec![("u1", 2.0)]);
        assert!(f.top(Role::Users, "nobody", 3).is_empty());
        assert_eq!((f.rank("u1", "a"), f.rank("u1", "b"), f.rank("u2", "a")), (Some(0), Some(1), Some(2)));
        assert_eq!(f.rank("u1", "zzz"), None);
        // Several at once, as ML.EVALUATE ranks a user's held-out items: ties
        // do not count, unknown items and users give NULL.
        assert_eq!(
            f.ranks("u1", &[Some("b"), Some("zzz"), None, Some("c"), Some("a")]),
            [Some(1), None, None, Some(1), Some(0)]
        );
        assert_eq!(f.ranks("nobody", &[Some("a")]), [None]);
        let w = weights(&model(false), "user", "item").unwrap();
        let rows = w.value(0);
        let rows = rows.as_struct();
        // Two users, three items, the intercept.
        assert_eq!(rows.len(), 6);
        let intercept = rows.column(3).as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        assert_eq!((intercept.value(0), intercept.value(4), intercept.value(5)), (0.5, 1.5, 3.0));
        assert!(rows.column(1).is_null(5));
    }

    #[test]
    fn refuses_factors_that_do_not_fit_their_ids() {
        let m = FactorModel {
            format_version: FACTOR_FORMAT,
            num_factors: 2,
            user_ids: vec!["u".into()],
            user_factors: vec![1.0],
            ..Default::default()
        };
        assert!(Factors::decode(&m.encode_to_vec()).unwrap_err().contains("factor values"));
        assert!(Factors::decode(&[1, 2, 3]).is_err());
    }
}
