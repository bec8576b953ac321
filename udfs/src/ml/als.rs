//! `sentio_als(params, fixed_id, rating)`: alternating least squares, one
//! half-iteration of training a `matrix_factorization` model.
//!
//! The client writes each half-iteration as an aggregate where the ratings
//! are; the other side's factors are a stored factor file the params name
//! ([`AlsParams::fixed`]), which each process reads once (a standalone
//! client has it in its cache already):
//!
//! ```sql
//! SELECT __u AS id, sentio_als('<params json>', __i, __r) AS solved
//! FROM <ratings> GROUP BY __u
//! ```
//!
//! Each group (a user; in the other half an item) accumulates the normal
//! equations of its least-squares problem — `Σ d dᵀ`, `Σ t d` and `Σ t²`
//! over its ratings — and solves them at `evaluate`. The sums are kept in
//! fixed point (`i128` of value × 2^40, each term rounded half to even), so
//! they do not depend on the order in which partial aggregates meet: the
//! same ratings, options and seed give the same factors bit for bit however
//! the cluster partitioned the work. A rating whose fixed id the factor file
//! does not hold is left out.
//!
//! Explicit feedback ([`AlsParams::implicit`] false) fits
//! `r ≈ mean + x·y + b_user + b_item`: a stored vector is the factors and
//! then the bias. The design row of a rating is the other side's factors
//! and a 1 (whose coefficient is this side's bias); the target is the rating
//! less the mean and the other side's bias. Implicit feedback is weighted
//! ALS after Hu, Koren and Volinsky: preference `p = (r > 0)`, confidence
//! `c = 1 + alpha·r`, and the other side's whole Gram matrix `YᵀY` (given in
//! the params) stands for the unrated items. Both penalise the solved
//! vector's squared norm by `l2_reg` times the group's number of ratings
//! (ALS-WR, as Spark's ALS: the best `l2_reg` then hardly depends on how
//! many ratings there are — 0.1 on the sample ratings at 20k and 75k).
//!
//! The result is the solved vector followed by the group's share of the
//! objective (its squared error, weighted for implicit feedback), from which
//! the client reports each iteration's training loss.

use std::collections::VecDeque;
use std::sync::{Arc, LazyLock, Mutex};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Float64Builder, ListBuilder};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{Result, ScalarValue, exec_datafusion_err, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility};
use serde::{Deserialize, Serialize};

use crate::ml::factors::{Factors, read};
use crate::ml::predict_udf::ModelSource;
use crate::ml::text::strings;
use crate::ml::train_udaf::literal_text;

/// What a half-iteration solves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlsParams {
    /// Implicit feedback (weighted ALS) rather than explicit ratings.
    pub implicit: bool,
    /// Latent factors per user and item (`num_factors`).
    pub num_factors: usize,
    /// L2 penalty per rating (`l2_reg`).
    pub l2_reg: f64,
    /// Confidence per unit of rating (`wals_alpha`; implicit only).
    pub alpha: f64,
    /// The mean training rating (explicit only; 0 for implicit).
    pub mean: f64,
    /// The other side's Gram matrix `YᵀY`, row-major, `num_factors²`
    /// (implicit only).
    #[serde(default)]
    pub gram: Vec<f64>,
    /// The fixed side's factors: a [`crate::ml::factors::FactorRef`] (JSON)
    /// of a stored factor file whose *items* are the fixed side, whichever
    /// side that is.
    pub fixed: String,
}

impl AlsParams {
    /// Values in a stored vector: the factors, and a bias for explicit
    /// feedback.
    pub fn width(&self) -> usize {
        if self.implicit { self.num_factors } else { self.num_factors + 1 }
    }

    /// Parses params from their JSON text.
    pub fn from_json(s: &str) -> Result<Self> {
        let p: Self = serde_json::from_str(s).map_err(|e| exec_datafusion_err!("bad ALS params: {e}"))?;
        if p.num_factors == 0 || (p.implicit && p.gram.len() != p.num_factors * p.num_factors) {
            return exec_err!("bad ALS params: {} factors, a Gram matrix of {} values", p.num_factors, p.gram.len());
        }
        Ok(p)
    }

    /// The params as JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("ALS params serialise")
    }
}

/// Fixed-point scale of the accumulated sums.
const SCALE: f64 = (1u64 << 40) as f64;

/// Largest magnitude a summed term may have (far inside `i128` even summed
/// over billions of ratings).
const MAX_TERM: f64 = 1e15;

#[inline(always)]
fn fixed(v: f64) -> Result<i128> {
    let y = v * SCALE;
    if y.abs() < FAST_LIMIT {
        return Ok(i128::from(round_small(y)));
    }
    if !v.is_finite() || v.abs() > MAX_TERM {
        return exec_err!("a rating or factor of {v} is out of range for matrix factorization");
    }
    Ok(y.round_ties_even() as i128)
}

/// Below this magnitude, [`round_small`] applies (2^51).
const FAST_LIMIT: f64 = (1u64 << 51) as f64;

/// `y.round_ties_even()` as an integer, for `|y| < 2^51`, in three
/// instructions: adding 1.5 · 2^52 leaves a float whose last mantissa bits
/// are the rounded integer. The general float-to-`i128` conversion took most
/// of a half-iteration's time adding ratings (78 sums per rating with 10
/// factors).
fn round_small(y: f64) -> i64 {
    const MAGIC: f64 = (3u64 << 51) as f64;
    (y + MAGIC).to_bits() as i64 - MAGIC.to_bits() as i64
}

fn float(v: i128) -> f64 {
    v as f64 / SCALE
}

/// The normal equations of one group: the packed upper triangle of `Σ w d dᵀ`,
/// `Σ w' t d` and `Σ w' t²` (see the module doc for the weights), and the
/// number of ratings.
#[derive(Debug, Clone, PartialEq)]
pub struct Normal {
    d: usize,
    /// Upper triangle, row by row: `d (d + 1) / 2` entries.
    a: Vec<i128>,
    b: Vec<i128>,
    tt: i128,
    n: i64,
}

impl Normal {
    /// Empty equations of dimension `d`.
    pub fn new(d: usize) -> Self {
        Self { d, a: vec![0; d * (d + 1) / 2], b: vec![0; d], tt: 0, n: 0 }
    }

    /// Adds one rating `r` of the other side's stored vector `v`.
    pub fn add(&mut self, p: &AlsParams, v: &[f64], r: f64) -> Result<()> {
        let k = p.num_factors;
        if v.len() != p.width() {
            return exec_err!("sentio_als: a factor vector of {} values, expected {}", v.len(), p.width());
        }
        let mut design = [0f64; 257];
        let d = self.d;
        if d > design.len() {
            return exec_err!("sentio_als: at most {} factors", design.len() - 1);
        }
        design[..k].copy_from_slice(&v[..k]);
        let (w_a, w_b, t) = if p.implicit {
            let c = 1.0 + p.alpha * r;
            let pref = if r > 0.0 { 1.0 } else { 0.0 };
            (c - 1.0, c, pref)
        } else {
            design[k] = 1.0;
            (1.0, 1.0, r - p.mean - v[k])
        };
        let mut at = 0;
        for i in 0..d {
            for j in i..d {
                self.a[at] += fixed(w_a * design[i] * design[j])?;
                at += 1;
            }
            self.b[i] += fixed(w_b * t * design[i])?;
        }
        self.tt += fixed(w_b * t * t)?;
        self.n += 1;
        Ok(())
    }

    /// Adds another group's equations (a partial aggregate's).
    pub fn merge(&mut self, other: &Normal) {
        for (x, y) in self.a.iter_mut().zip(&other.a) {
            *x += y;
        }
        for (x, y) in self.b.iter_mut().zip(&other.b) {
            *x += y;
        }
        self.tt += other.tt;
        self.n += other.n;
    }

    /// The equations as bytes: each sum, then `n`, zigzag-encoded as a
    /// LEB128 varint. Sums of 2^40-scaled terms take 6–7 bytes where a
    /// fixed `i128` took 16, and these states are what a half-iteration
    /// shuffles (each partition's every group).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity((self.a.len() + self.b.len() + 2) * 8);
        for v in self.a.iter().chain(&self.b).copied().chain([self.tt, i128::from(self.n)]) {
            let mut z = ((v << 1) ^ (v >> 127)) as u128;
            while z >= 0x80 {
                out.push((z as u8) | 0x80);
                z >>= 7;
            }
            out.push(z as u8);
        }
        out
    }

    /// Reads equations of dimension `d` written by [`Self::to_bytes`].
    pub fn from_bytes(d: usize, bytes: &[u8]) -> Result<Self> {
        let mut out = Self::new(d);
        let mut rest = bytes;
        let mut next = || -> Result<i128> {
            let mut z: u128 = 0;
            for shift in (0..128).step_by(7) {
                let Some((&byte, tail)) = rest.split_first() else {
                    return exec_err!("sentio_als: a partial state of {} bytes ends early", bytes.len());
                };
                rest = tail;
                if shift == 126 && byte & 0x7f > 0b11 {
                    break;
                }
                z |= u128::from(byte & 0x7f) << shift;
                if byte < 0x80 {
                    return Ok(((z >> 1) as i128) ^ -((z & 1) as i128));
                }
            }
            exec_err!("sentio_als: a partial state holds a number longer than 128 bits")
        };
        for v in out.a.iter_mut().chain(out.b.iter_mut()) {
            *v = next()?;
        }
        out.tt = next()?;
        let n = next()?;
        out.n = i64::try_from(n).map_err(|_| exec_datafusion_err!("sentio_als: a partial state counts {n} ratings"))?;
        if !rest.is_empty() {
            return exec_err!("sentio_als: a partial state has {} bytes left over", rest.len());
        }
        Ok(out)
    }

    /// Bytes held.
    fn size(&self) -> usize {
        std::mem::size_of::<Self>() + (self.a.len() + self.b.len()) * 16
    }

    /// The full symmetric matrix `Σ w d dᵀ` (plus the Gram matrix for
    /// implicit feedback), row-major.
    fn matrix(&self, p: &AlsParams) -> Vec<f64> {
        let d = self.d;
        let mut m = vec![0f64; d * d];
        let mut at = 0;
        for i in 0..d {
            for j in i..d {
                let v = float(self.a[at]);
                m[i * d + j] = v;
                m[j * d + i] = v;
                at += 1;
            }
        }
        if p.implicit {
            for (x, g) in m.iter_mut().zip(&p.gram) {
                *x += g;
            }
        }
        m
    }

    /// The solved vector and the group's share of the objective: squared
    /// error (weighted, for implicit feedback) plus the penalty.
    pub fn solve(&self, p: &AlsParams) -> Option<(Vec<f64>, f64)> {
        if self.n == 0 {
            return None;
        }
        let d = self.d;
        let unpenalised = self.matrix(p);
        let penalty = p.l2_reg * self.n as f64;
        let mut m = unpenalised.clone();
        for i in 0..d {
            m[i * d + i] += penalty.max(1e-9);
        }
        let b: Vec<f64> = self.b.iter().map(|v| float(*v)).collect();
        let x = crate::ml::cholesky::solve_spd(m, d, &b, 0.0)?;
        let mut quad = 0.0;
        for i in 0..d {
            for j in 0..d {
                quad += x[i] * unpenalised[i * d + j] * x[j];
            }
        }
        let cross: f64 = x.iter().zip(&b).map(|(x, b)| x * b).sum();
        let norm: f64 = x.iter().map(|v| v * v).sum();
        let loss = (float(self.tt) - 2.0 * cross + quad).max(0.0) + penalty * norm;
        Some((x, loss))
    }
}

/// How many half-iterations' fixed sides a process keeps: the running half's,
/// and one for another training at the same time (a side of a million users
/// with 10 factors is ~100 MB with its index).
const FIXED_ENTRIES: usize = 2;

/// The fixed sides this process read or was given last, newest at the back:
/// a half-iteration's tasks share one copy, and a finished training's sides
/// leave as newer ones come (kept apart from the models' cache: they are
/// never read again once their half is done).
static FIXED: LazyLock<Mutex<VecDeque<Kept>>> = LazyLock::new(Default::default);

/// A fixed side and the reference it was read by.
type Kept = (String, Arc<Factors>);

/// Keeps `factors` as the fixed side `reference` names (the client does
/// before a half-iteration, so a standalone session need not read back what
/// it just wrote).
pub fn prime_fixed(reference: &str, factors: Arc<Factors>) {
    let mut fixed = FIXED.lock().unwrap_or_else(|e| e.into_inner());
    if fixed.iter().any(|(r, _)| r == reference) {
        return;
    }
    if fixed.len() >= FIXED_ENTRIES {
        fixed.pop_front();
    }
    fixed.push_back((reference.to_string(), factors));
}

/// The fixed side `reference` names, kept or read from `models`.
fn fixed_side(models: &dyn ModelSource, reference: &str) -> Result<Arc<Factors>> {
    let kept = FIXED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|(r, _)| r == reference)
        .map(|(_, f)| Arc::clone(f));
    if let Some(f) = kept {
        return Ok(f);
    }
    let f = read(models, reference)?;
    prime_fixed(reference, Arc::clone(&f));
    Ok(f)
}

/// The params literal of a call of `sentio_als`.
fn params_of(args: &AccumulatorArgs) -> Result<AlsParams> {
    let expr = args.exprs.first().ok_or_else(|| exec_datafusion_err!("sentio_als needs its params"))?;
    AlsParams::from_json(&literal_text(expr, "sentio_als")?)
}

/// The `sentio_als` aggregate function.
#[derive(Debug)]
pub struct AlsUdaf {
    signature: Signature,
    models: Arc<dyn ModelSource>,
}

impl PartialEq for AlsUdaf {
    fn eq(&self, other: &Self) -> bool {
        self.signature == other.signature
    }
}

impl Eq for AlsUdaf {}

impl std::hash::Hash for AlsUdaf {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.signature.hash(state);
    }
}

impl AlsUdaf {
    /// Creates the function; it reads the fixed side's factors through
    /// `models`.
    pub fn new(models: Arc<dyn ModelSource>) -> Self {
        Self { signature: Signature::any(3, Volatility::Immutable), models }
    }

    /// The params of a call and the fixed side's factors they name.
    fn setup(&self, args: &AccumulatorArgs) -> Result<(Arc<AlsParams>, Arc<Factors>)> {
        let params = params_of(args)?;
        let fixed = fixed_side(self.models.as_ref(), &params.fixed)?;
        if fixed.width() != params.width() {
            return exec_err!(
                "sentio_als: the fixed side's factors have {} values each, expected {}",
                fixed.width(),
                params.width()
            );
        }
        Ok((Arc::new(params), fixed))
    }
}

/// The type `sentio_als` returns: the solved vector, then the loss.
pub fn solved_type() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Float64, true)))
}

impl AggregateUDFImpl for AlsUdaf {
    fn name(&self) -> &str {
        "sentio_als"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(solved_type())
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let (params, fixed) = self.setup(&args)?;
        let normal = Normal::new(params.width());
        Ok(Box::new(AlsAccumulator { params, fixed, normal }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(format!("{}[normal]", args.name), DataType::Binary, true))])
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        let (params, fixed) = self.setup(&args)?;
        Ok(Box::new(AlsGroups { params, fixed, normals: Vec::new() }))
    }
}

/// One group's normal equations (DataFusion's path without `GROUP BY`).
#[derive(Debug)]
struct AlsAccumulator {
    params: Arc<AlsParams>,
    fixed: Arc<Factors>,
    normal: Normal,
}

/// A batch's ratings with the fixed side's vectors, looked up once for all
/// its rows.
struct Ratings<'a> {
    fixed: &'a Factors,
    /// The fixed side's number of each row's id, if it has one.
    positions: Vec<Option<usize>>,
    ratings: Vec<Option<f64>>,
}

impl<'a> Ratings<'a> {
    /// Looks up the `ids` column (the fixed side's ids, text) and decodes
    /// the `ratings` column.
    fn decode(fixed: &'a Factors, ids: &ArrayRef, ratings: &ArrayRef) -> Result<Self> {
        let positions = strings(ids, "sentio_als's fixed id")?
            .into_iter()
            .map(|id| id.and_then(|id| fixed.items.position(id)))
            .collect();
        let ratings = datafusion::arrow::compute::cast(ratings, &DataType::Float64)?;
        let ratings = ratings.as_primitive::<Float64Type>();
        let ratings = ratings.iter().map(|r| r.filter(|v| v.is_finite())).collect();
        Ok(Self { fixed, positions, ratings })
    }

    /// Row `row`'s fixed vector and rating, if both are there.
    fn row(&self, row: usize) -> Option<(&[f64], f64)> {
        let r = self.ratings[row]?;
        let at = self.positions[row]?;
        Some((self.fixed.items.vector(at, self.fixed.width()), r))
    }
}

impl Accumulator for AlsAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let [_, ids, ratings] = values else {
            return exec_err!("sentio_als takes params, a fixed id and a rating");
        };
        let batch = Ratings::decode(&self.fixed, ids, ratings)?;
        for row in 0..batch.ratings.len() {
            if let Some((v, r)) = batch.row(row) {
                self.normal.add(&self.params, v, r)?;
            }
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let states = states[0].as_binary::<i32>();
        for row in 0..states.len() {
            if !states.is_null(row) {
                self.normal.merge(&Normal::from_bytes(self.normal.d, states.value(row))?);
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Binary(Some(self.normal.to_bytes()))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let mut out = ListBuilder::new(Float64Builder::new());
        append_solved(&mut out, &self.normal, &self.params);
        Ok(ScalarValue::List(Arc::new(out.finish())))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.normal.size()
    }
}

/// Appends a group's solved vector and loss to `out` (an empty list when it
/// has no ratings or its equations are singular).
fn append_solved(out: &mut ListBuilder<Float64Builder>, normal: &Normal, params: &AlsParams) {
    if let Some((x, loss)) = normal.solve(params) {
        out.values().append_slice(&x);
        out.values().append_value(loss);
    }
    out.append(true);
}

/// Every group's normal equations at once (DataFusion's `GROUP BY` path):
/// a batch's factor lists are decoded once, not row by row per group.
#[derive(Debug)]
struct AlsGroups {
    params: Arc<AlsParams>,
    fixed: Arc<Factors>,
    normals: Vec<Normal>,
}

impl AlsGroups {
    fn grow(&mut self, total: usize) {
        let d = self.params.width();
        if self.normals.len() < total {
            self.normals.resize_with(total, || Normal::new(d));
        }
    }
}

impl GroupsAccumulator for AlsGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let [_, ids, ratings] = values else {
            return exec_err!("sentio_als takes params, a fixed id and a rating");
        };
        self.grow(total_num_groups);
        let batch = Ratings::decode(&self.fixed, ids, ratings)?;
        for (row, g) in group_indices.iter().enumerate() {
            if opt_filter.is_some_and(|f| !f.is_valid(row) || !f.value(row)) {
                continue;
            }
            if let Some((v, r)) = batch.row(row) {
                self.normals[*g].add(&self.params, v, r)?;
            }
        }
        Ok(())
    }

    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        self.grow(total_num_groups);
        let d = self.params.width();
        let states = values[0].as_binary::<i32>();
        for (row, g) in group_indices.iter().enumerate() {
            if !states.is_null(row) {
                self.normals[*g].merge(&Normal::from_bytes(d, states.value(row))?);
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let mut out = ListBuilder::new(Float64Builder::new());
        for normal in emit_to.take_needed(&mut self.normals) {
            append_solved(&mut out, &normal, &self.params);
        }
        Ok(Arc::new(out.finish()))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let states: BinaryArray = emit_to.take_needed(&mut self.normals).iter().map(|n| Some(n.to_bytes())).collect();
        Ok(vec![Arc::new(states)])
    }

    fn convert_to_state(&self, values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        let [_, ids, ratings] = values else {
            return exec_err!("sentio_als takes params, a fixed id and a rating");
        };
        let batch = Ratings::decode(&self.fixed, ids, ratings)?;
        let mut states = Vec::with_capacity(batch.ratings.len());
        for row in 0..batch.ratings.len() {
            let mut normal = Normal::new(self.params.width());
            let kept = opt_filter.is_none_or(|f| f.is_valid(row) && f.value(row));
            if let (true, Some((v, r))) = (kept, batch.row(row)) {
                normal.add(&self.params, v, r)?;
            }
            states.push(Some(normal.to_bytes()));
        }
        Ok(vec![Arc::new(BinaryArray::from_iter(states))])
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.normals.first().map_or(0, Normal::size) * self.normals.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explicit(k: usize) -> AlsParams {
        AlsParams {
            implicit: false,
            num_factors: k,
            l2_reg: 0.0,
            alpha: 0.0,
            mean: 0.0,
            gram: Vec::new(),
            fixed: String::new(),
        }
    }

    #[test]
    fn solves_a_least_squares_problem_exactly() {
        // Ratings r = 2·y0 − y1 + 0.5 (bias) of three items: the solution is
        // x = (2, −1), bias 0.5, with no error.
        let p = explicit(2);
        let mut n = Normal::new(3);
        for (y, r) in [([1.0, 0.0], 2.5), ([0.0, 1.0], -0.5), ([1.0, 1.0], 1.5), ([2.0, 1.0], 3.5)] {
            n.add(&p, &[y[0], y[1], 0.0], r).unwrap();
        }
        let (x, loss) = n.solve(&p).unwrap();
        for (got, want) in x.iter().zip([2.0, -1.0, 0.5]) {
            assert!((got - want).abs() < 1e-6, "{x:?}");
        }
        assert!(loss < 1e-6, "{loss}");
    }

    #[test]
    fn partial_states_merge_to_the_same_equations_in_any_order() {
        let p = explicit(2);
        let rows: Vec<([f64; 3], f64)> =
            (0..40).map(|i| ([(i as f64 * 0.37).sin(), (i as f64 * 0.11).cos(), 0.1], (i % 5) as f64)).collect();
        let mut whole = Normal::new(3);
        for (v, r) in &rows {
            whole.add(&p, v, *r).unwrap();
        }
        let (mut a, mut b) = (Normal::new(3), Normal::new(3));
        for (i, (v, r)) in rows.iter().enumerate() {
            if i % 3 == 0 { a.add(&p, v, *r).unwrap() } else { b.add(&p, v, *r).unwrap() }
        }
        let mut ab = Normal::from_bytes(3, &a.to_bytes()).unwrap();
        ab.merge(&b);
        let mut ba = b.clone();
        ba.merge(&a);
        assert_eq!(ab, whole);
        assert_eq!(ba, whole);
        assert!(Normal::from_bytes(3, &[0u8; 5]).is_err());
        // Any sums survive the encoding, and damaged bytes are refused.
        let mut extreme = Normal::new(2);
        extreme.a = vec![i128::MIN, i128::MAX, -1];
        extreme.b = vec![0, 1 << 100];
        extreme.tt = -(1 << 47);
        extreme.n = i64::MAX;
        let bytes = extreme.to_bytes();
        assert_eq!(Normal::from_bytes(2, &bytes).unwrap(), extreme);
        assert!(Normal::from_bytes(2, &bytes[..bytes.len() - 1]).is_err());
        assert!(Normal::from_bytes(2, &[bytes.as_slice(), &[0]].concat()).is_err());
        assert!(Normal::from_bytes(2, &[0xff; 40]).is_err());
        assert!(Normal::from_bytes(2, &[[0xff; 18].as_slice(), &[0x04]].concat()).is_err());
        assert!(whole.to_bytes().len() < 8 * 11, "{} bytes", whole.to_bytes().len());
    }

    #[test]
    fn implicit_feedback_counts_the_unrated_through_the_gram_matrix() {
        // One rated item with confidence 1 + 1·1 = 2 among the Gram matrix
        // of all items: (G + (c−1) y yᵀ + λ n I) x = c p y.
        let y = [1.0, 0.0];
        let p = AlsParams {
            implicit: true,
            num_factors: 2,
            l2_reg: 0.5,
            alpha: 1.0,
            mean: 0.0,
            gram: vec![2.0, 0.0, 0.0, 1.0],
            fixed: String::new(),
        };
        let mut n = Normal::new(2);
        n.add(&p, &y, 1.0).unwrap();
        let (x, _) = n.solve(&p).unwrap();
        // [2 + 1 + 0.5] x0 = 2 → x0 = 2 / 3.5; x1 = 0.
        assert!((x[0] - 2.0 / 3.5).abs() < 1e-9 && x[1].abs() < 1e-12, "{x:?}");
    }

    #[derive(Debug)]
    struct NoModels;

    impl ModelSource for NoModels {
        fn fetch(&self, url: &str) -> std::result::Result<Vec<u8>, String> {
            Err(format!("no {url}"))
        }
    }

    /// Explicit params whose fixed side is items `a` (1, 0), `b` (2, 0.5)
    /// and `c` (0.5, −0.5): one factor and a bias each, in the cache.
    fn fixed_items(reference: &str) -> AlsParams {
        use prost::Message;
        let model = sentio_proto::FactorModel {
            format_version: crate::ml::factors::FACTOR_FORMAT,
            implicit: false,
            num_factors: 1,
            global_mean: 0.0,
            user_ids: Vec::new(),
            user_factors: Vec::new(),
            item_ids: vec!["a".into(), "b".into(), "c".into()],
            item_factors: vec![1.0, 0.0, 2.0, 0.5, 0.5, -0.5],
        };
        let factors = Factors::decode(&model.encode_to_vec()).unwrap();
        prime_fixed(reference, Arc::new(factors));
        AlsParams { fixed: reference.to_string(), ..explicit(1) }
    }

    #[test]
    fn groups_accumulate_what_each_group_would_alone() {
        use datafusion::arrow::array::{Float64Array, StringArray};
        let p = fixed_items("als-test-groups");
        let ids: ArrayRef = Arc::new(StringArray::from(vec![Some("a"), Some("b"), Some("c"), Some("unknown"), None]));
        let ratings: ArrayRef =
            Arc::new(Float64Array::from(vec![Some(3.0), Some(4.0), Some(f64::NAN), Some(2.0), Some(1.0)]));
        let params: ArrayRef = Arc::new(StringArray::from(vec![p.to_json(); 5]));
        let values = [params, ids, ratings];
        let fixed = fixed_side(&NoModels, &p.fixed).unwrap();
        let mut groups = AlsGroups { params: Arc::new(p.clone()), fixed: Arc::clone(&fixed), normals: Vec::new() };
        groups.update_batch(&values, &[0, 1, 0, 1, 1], None, 2).unwrap();
        // Group 0 has row 0 (row 2's rating is NaN), group 1 row 1 (row 3's
        // id has no factors, row 4 no id).
        let mut alone = Normal::new(2);
        alone.add(&p, &[1.0, 0.0], 3.0).unwrap();
        assert_eq!(groups.normals[0], alone);
        assert_eq!(groups.normals[1].n, 1);
        let states = groups.state(EmitTo::All).unwrap();
        let mut merged = AlsGroups { params: Arc::new(p), fixed, normals: Vec::new() };
        merged.merge_batch(&states, &[1, 0], 2).unwrap();
        assert_eq!(merged.normals[1], alone);
        let solved = merged.evaluate(EmitTo::All).unwrap();
        assert_eq!(solved.len(), 2);
        let converted = merged.convert_to_state(&values, None).unwrap();
        assert_eq!(converted[0].len(), 5);
    }

    #[test]
    fn the_fixed_side_is_read_through_the_model_source_and_checked() {
        // Not in the cache and not in the store: the store's error.
        let udaf = AlsUdaf::new(Arc::new(NoModels));
        let reference = r#"{"model":"m@1","url":"file:///nowhere/half.pb","fingerprint":"x"}"#;
        let p = AlsParams { fixed: reference.to_string(), ..explicit(1) };
        let err = fixed_side(&NoModels, &p.fixed).unwrap_err().to_string();
        assert!(err.contains("cannot read model m@1"), "{err}");
        // Factors of another width are refused.
        let two = AlsParams { fixed: fixed_items("als-test-width").fixed, ..explicit(2) };
        let schema = datafusion::arrow::datatypes::Schema::empty();
        let expr: Arc<dyn datafusion::physical_expr::PhysicalExpr> =
            Arc::new(datafusion::physical_expr::expressions::Literal::new(ScalarValue::Utf8(Some(two.to_json()))));
        let field: FieldRef = Arc::new(Field::new("solved", solved_type(), true));
        let args = AccumulatorArgs {
            return_field: field,
            schema: &schema,
            ignore_nulls: false,
            order_bys: &[],
            is_reversed: false,
            name: "sentio_als",
            is_distinct: false,
            exprs: &[expr],
            expr_fields: &[Arc::new(Field::new("params", DataType::Utf8, false))],
        };
        let err = udaf.setup(&args).unwrap_err().to_string();
        assert!(err.contains("2 values each, expected 3"), "{err}");
    }

    #[test]
    fn fixed_point_rounds_half_to_even() {
        // Scaled values: ties, the fast path's limit, beyond it, and random
        // magnitudes from 1e-5 to 1e25.
        let mut scaled = vec![0.0, -0.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 0.49999999999999994, -0.49999999999999994];
        scaled.extend([
            FAST_LIMIT,
            -FAST_LIMIT,
            FAST_LIMIT - 0.5,
            -FAST_LIMIT + 0.5,
            4503599627370497.0,
            9.2e18,
            -1e25,
        ]);
        let mut rng = crate::rng::Rng::stream(7, "round", 0);
        for _ in 0..100_000 {
            let magnitude = 10f64.powi((rng.f64() * 30.0) as i32 - 5);
            scaled.push(rng.normal() * magnitude);
            scaled.push((rng.normal() * magnitude).round() + 0.5);
        }
        for y in scaled {
            // `y / SCALE * SCALE == y`: SCALE is a power of two.
            assert_eq!(fixed(y / SCALE).unwrap(), y.round_ties_even() as i128, "{y:e}");
        }
        assert!(fixed(2e15).is_err() && fixed(f64::NAN).is_err() && fixed(f64::NEG_INFINITY).is_err());
    }

    #[test]
    fn refuses_out_of_range_values() {
        let mut n = Normal::new(2);
        assert!(n.add(&explicit(1), &[1.0, 0.0], f64::INFINITY).is_err());
        assert!(n.add(&explicit(1), &[1.0], 1.0).is_err());
        assert!(crate::ml::cholesky::solve_spd(vec![0.0], 1, &[1.0], 0.0).is_none());
    }
}
