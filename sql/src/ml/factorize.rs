//! `CREATE MODEL … OPTIONS (model_type = 'matrix_factorization')`:
//! alternating least squares in the cluster.
//!
//! The ratings (`user_col`, `item_col`, `rating_col` of the training query,
//! ids as text) are split as the other model types' rows are, and the
//! training ratings written to a scratch folder of the model store once
//! sorted by user and once by item (`Scratch`, two [`Snapshot`]s): every
//! half-iteration reads the copy sorted by the side it solves instead of
//! running the training query again. Item factors start seeded
//! and small; then each iteration solves every user against the items'
//! factors, and every item against the users' — each half one `sentio_als`
//! aggregate grouped by the solved side, run where the ratings are, reading
//! the fixed side's factors from a factor file in the scratch folder. The
//! solved factors come back to the planning process (users × factors
//! values), which writes them for the next half. Iterations stop at
//! `max_iterations`, or with `early_stop` when
//! the training loss improves by less than `min_rel_progress`. The factors
//! are stored as the version's payload ([`FactorModel`]) and evaluated on
//! the held-out ratings ([`crate::ml::recommend::metrics`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use prost::Message;
use sentio_proto::FactorModel;
use sentio_udfs::ml::als::{AlsParams, prime_fixed};
use sentio_udfs::ml::factors::{FACTOR_FORMAT, Factors, prime};
use sentio_udfs::ml::predict_udf::fingerprint;
use sentio_udfs::ml::spec::{Algorithm, Encoding, FeatureSpec, Params, TrainSpec};
use sentio_udfs::rng::Rng;

use crate::ids::unique_name;
use crate::ml::create::{Existing, existing_versions, list_version, options_text, split_rows};
use crate::ml::options::{ClassWeights, FactorOptions, SplitMethod, TrainOptions};
use crate::ml::recommend::{factor_ref, metrics};
use crate::ml::snapshot::Snapshot;
use crate::ml::store::{FactorizationMeta, FeatureStat, Iteration, META_FORMAT, ModelMeta, ModelStore};
use crate::ml::{MlContext, MlError};
use crate::sqltext::{const_arg, qcol};

/// The factors of one side (users or items), ids sorted.
#[derive(Debug, Clone, Default)]
struct SideFactors {
    ids: Vec<String>,
    /// Row-major, `ids.len() × width`.
    vectors: Vec<f64>,
}

/// Carries out a `CREATE MODEL` of a `matrix_factorization` model.
pub async fn create_model(
    ml: &MlContext,
    name: &str,
    statement: crate::ml::create::Statement<'_>,
    opts: FactorOptions,
) -> Result<Vec<RecordBatch>, MlError> {
    let what = format!("CREATE MODEL {name}");
    if statement.transform.is_some() {
        return Err(MlError::Syntax(format!("{what}: TRANSFORM is not implemented for matrix_factorization models")));
    }
    let store = ml.store()?.clone();
    let existing = match existing_versions(&store, name, statement.or_replace, statement.if_not_exists).await? {
        Existing::Versions(v) => v,
        Existing::Done(batches) => return Ok(batches),
    };
    let started = Instant::now();
    let prepared = prepare(ml, &opts, statement.query, &what).await?;
    let trained = train(ml, &store, name, &opts, &prepared, &what).await?;
    let bytes = trained.model.encode_to_vec();
    let payload_fingerprint = fingerprint(&bytes);
    let payload_file = store.put_payload(name, &payload_fingerprint, bytes.clone()).await?;
    let result =
        claim(ml, &store, name, &existing, &statement, &opts, &prepared, trained, &payload_file, started).await;
    match result {
        Ok(meta) => {
            list_version(&store, &meta).await?;
            summary(&meta)
        }
        // A version that may exist names the file: keep it.
        Err(e @ MlError::Unsettled(_)) => Err(e),
        Err(e) => {
            let _ = store.discard_payload(&payload_file).await;
            Err(e)
        }
    }
}

/// The ratings of a training query, split.
struct Prepared {
    /// `__u`, `__i` (text) and `__r` (DOUBLE) of the training ratings.
    train: String,
    /// The same of the evaluation ratings, if split off.
    eval: Option<String>,
    /// The split as options (for `ML.EVALUATE` of the model's own rows).
    train_options: TrainOptions,
    user_type: String,
    item_type: String,
    /// The schema of the ratings (`__u`, `__i`, `__r`).
    schema: Schema,
}

/// The SQL type ids of `t` are cast back to.
fn id_type(t: &DataType, option: &str, column: &str, what: &str) -> Result<String, MlError> {
    Ok(match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _) => "VARCHAR".into(),
        t if t.is_integer() => "BIGINT".into(),
        other => {
            return Err(MlError::Data(format!(
                "{what}: {option} {column:?} has type {other}; user and item ids must be integers or text"
            )));
        }
    })
}

/// Binds the training query's columns and splits its ratings.
async fn prepare(ml: &MlContext, opts: &FactorOptions, query: &str, what: &str) -> Result<Prepared, MlError> {
    let query = crate::ml::functions::rewrite(ml, query).await?;
    let schema = ml.ctx.sql(&query).await?.schema().as_arrow().clone();
    let column = |option: &str, c: &str| {
        schema.field_with_name(c).map(|f| f.data_type().clone()).map_err(|_| {
            MlError::Data(format!(
                "{what}: the training query has no {option} column {c:?}; its columns are {}",
                schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
            ))
        })
    };
    let user_type = id_type(&column("user_col", &opts.user_col)?, "user_col", &opts.user_col, what)?;
    let item_type = id_type(&column("item_col", &opts.item_col)?, "item_col", &opts.item_col, what)?;
    let rating = column("rating_col", &opts.rating_col)?;
    if !rating.is_numeric() {
        return Err(MlError::Data(format!(
            "{what}: rating_col {:?} has type {rating}; ratings must be numbers",
            opts.rating_col
        )));
    }
    // A CUSTOM split's column travels with the ratings as `__split`.
    let (split_method, split_col) = match &opts.split {
        SplitMethod::Custom(c) => {
            if column("data_split_col", c)? != DataType::Boolean {
                return Err(MlError::Data(format!("{what}: data_split_col {c:?} must be BOOLEAN")));
            }
            (SplitMethod::Custom("__split".into()), format!(", {} AS __split", qcol("__q", c)))
        }
        other => (other.clone(), String::new()),
    };
    let (u, i, r) = (qcol("__q", &opts.user_col), qcol("__q", &opts.item_col), qcol("__q", &opts.rating_col));
    let ratings = format!(
        "SELECT CAST({u} AS VARCHAR) AS __u, CAST({i} AS VARCHAR) AS __i, CAST({r} AS DOUBLE) AS __r{split_col} \
         FROM ({query}) __q WHERE {u} IS NOT NULL AND {i} IS NOT NULL AND NOT isnan(CAST({r} AS DOUBLE))"
    );
    let train_options = TrainOptions {
        algorithm: Algorithm::MatrixFactorization,
        label: "__r".into(),
        split: split_method,
        class_weights: ClassWeights::None,
        seed: opts.seed,
        params: params_of(opts),
        global_explain: false,
    };
    let ratings_schema = ml.ctx.sql(&ratings).await?.schema().as_arrow().clone();
    let split = split_rows(ml, &train_options, &ratings, &ratings_schema).await?;
    Ok(Prepared { train: split.train, eval: split.eval, train_options, user_type, item_type, schema: ratings_schema })
}

/// The hyperparameters a factorization shares with the other model types.
fn params_of(opts: &FactorOptions) -> Params {
    Params {
        max_iterations: opts.max_iterations,
        l2_reg: opts.l2_reg,
        min_rel_progress: opts.min_rel_progress,
        ..Params::default()
    }
}

/// What training produced.
struct Trained {
    model: FactorModel,
    rows: u64,
    /// Fingerprint of the training ratings.
    data_fingerprint: String,
    iterations: Vec<Iteration>,
    timings_ms: BTreeMap<String, u64>,
}

/// Statistics of the training ratings (the table `ratings`): count, mean,
/// minimum.
async fn rating_statistics(ml: &MlContext, ratings: &str) -> Result<(i64, f64, f64), MlError> {
    let b = ml.collect(&format!("SELECT COUNT(*), AVG(__r), MIN(__r) FROM {ratings}")).await?;
    let b = b.first().ok_or_else(|| MlError::Internal("no statistics row".into()))?;
    let n = b.column(0).as_primitive::<Int64Type>().value(0);
    let f = |c: usize| {
        let c = b.column(c).as_primitive::<Float64Type>();
        if c.is_null(0) { 0.0 } else { c.value(0) }
    };
    Ok((n, f(1), f(2)))
}

/// The default number of factors: log2 of the training ratings, as
/// BigQuery ML.
fn default_factors(rows: i64) -> u32 {
    ((rows.max(2) as f64).log2().round() as u32).clamp(1, crate::ml::options::MAX_FACTORS as u32)
}

/// Trains the factors of the training ratings.
async fn train(
    ml: &MlContext,
    store: &ModelStore,
    name: &str,
    opts: &FactorOptions,
    prepared: &Prepared,
    what: &str,
) -> Result<Trained, MlError> {
    let t = Instant::now();
    let mut timings_ms = BTreeMap::new();
    // Counted first: an aggregate over an empty input cannot be planned on
    // a cluster in every shape (its columns' qualifiers are lost).
    if crate::ml::create::count_rows(ml, &prepared.train).await? == 0 {
        return Err(MlError::Data(format!(
            "{what}: the training set is empty (no rows with a user, an item and a rating)"
        )));
    }
    let data_fingerprint = crate::ml::create::rows_fingerprint(ml, &prepared.schema, &prepared.train).await?;
    let scratch = Scratch::take(ml, store, name, &prepared.train).await?;
    let result = train_on(&scratch, opts, what, &mut timings_ms, t).await;
    scratch.discard().await;
    let Fit { users, items, rows, mean, k, iterations } = result?;
    let model = FactorModel {
        format_version: FACTOR_FORMAT,
        implicit: opts.implicit,
        num_factors: k as u32,
        global_mean: mean,
        user_ids: users.ids,
        user_factors: users.vectors,
        item_ids: items.ids,
        item_factors: items.vectors,
    };
    Ok(Trained { model, rows: rows as u64, data_fingerprint, iterations, timings_ms })
}

/// What alternating least squares found.
struct Fit {
    users: SideFactors,
    items: SideFactors,
    /// Training ratings.
    rows: i64,
    /// The mean rating the factors are relative to (0 for implicit).
    mean: f64,
    /// Factors per user and item.
    k: usize,
    iterations: Vec<Iteration>,
}

/// Trains the factors on the scratch copy of the training ratings.
async fn train_on(
    scratch: &Scratch<'_>,
    opts: &FactorOptions,
    what: &str,
    timings_ms: &mut BTreeMap<String, u64>,
    started: Instant,
) -> Result<Fit, MlError> {
    let ratings = scratch.ratings();
    let (rows, mean, min) = rating_statistics(scratch.ml, &ratings).await?;
    if opts.implicit && min < 0.0 {
        return Err(MlError::Data(format!(
            "{what}: implicit feedback needs ratings of at least 0 (a confidence); the least is {min}"
        )));
    }
    let k = opts.num_factors.unwrap_or_else(|| default_factors(rows)) as usize;
    let mean = if opts.implicit { 0.0 } else { mean };
    let mut items = initial_items(scratch.ml, &ratings, opts, k).await?;
    timings_ms.insert("statistics".to_string(), started.elapsed().as_millis() as u64);
    let t = Instant::now();
    let (users, iterations) = iterate(scratch, opts, k, mean, rows, &mut items).await?;
    timings_ms.insert("training".to_string(), t.elapsed().as_millis() as u64);
    Ok(Fit { users, items, rows, mean, k, iterations })
}

/// A 64-bit FNV-1a hash of an id: where its initial factors are drawn.
fn id_hash(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// Every item of the training ratings (the table `ratings`) with seeded
/// initial factors (small normal values, drawn from the seed and the id
/// alone, so they do not depend on the order items arrive in) and no bias.
async fn initial_items(ml: &MlContext, ratings: &str, opts: &FactorOptions, k: usize) -> Result<SideFactors, MlError> {
    let batches = ml.collect(&format!("SELECT DISTINCT __i FROM {ratings}")).await?;
    let mut ids: Vec<String> = Vec::new();
    for b in &batches {
        let c = datafusion::arrow::compute::cast(b.column(0), &DataType::Utf8)?;
        ids.extend(c.as_string::<i32>().iter().flatten().map(str::to_string));
    }
    ids.sort();
    let width = if opts.implicit { k } else { k + 1 };
    let mut vectors = Vec::with_capacity(ids.len() * width);
    for id in &ids {
        let mut rng = Rng::stream(opts.seed, "mf-item", id_hash(id));
        vectors.extend((0..k).map(|_| 0.1 * rng.normal()));
        if !opts.implicit {
            vectors.push(0.0);
        }
    }
    Ok(SideFactors { ids, vectors })
}

/// Alternates users and items until `max_iterations` or early stopping;
/// `items` ends as the items' factors. Returns the users' and each
/// iteration's loss.
#[allow(clippy::too_many_arguments)]
async fn iterate(
    scratch: &Scratch<'_>,
    opts: &FactorOptions,
    k: usize,
    mean: f64,
    rows: i64,
    items: &mut SideFactors,
) -> Result<(SideFactors, Vec<Iteration>), MlError> {
    let mut iterations: Vec<Iteration> = Vec::new();
    let mut users = SideFactors::default();
    for it in 0..opts.max_iterations {
        let t = Instant::now();
        let params = |fixed: &SideFactors| AlsParams {
            implicit: opts.implicit,
            num_factors: k,
            l2_reg: opts.l2_reg,
            alpha: opts.wals_alpha,
            mean,
            gram: if opts.implicit { gram(fixed, k) } else { Vec::new() },
            fixed: String::new(),
        };
        (users, _) = scratch.solve(params(items), items, "__u", "__i").await?;
        let (solved, loss) = scratch.solve(params(&users), &users, "__i", "__u").await?;
        *items = solved;
        let loss = loss / rows as f64;
        let previous = iterations.last().and_then(|i| i.loss);
        iterations.push(Iteration {
            iteration: i64::from(it),
            loss: Some(loss),
            eval_loss: None,
            learning_rate: None,
            duration_ms: t.elapsed().as_millis() as i64,
        });
        if let Some(prev) = previous
            && opts.early_stop
            && prev > 0.0
            && (prev - loss) / prev < opts.min_rel_progress
        {
            break;
        }
    }
    Ok((users, iterations))
}

/// `YᵀY` of a side's factors (the first `k` of each vector).
fn gram(side: &SideFactors, k: usize) -> Vec<f64> {
    let width = if side.ids.is_empty() { k } else { side.vectors.len() / side.ids.len() };
    let mut g = vec![0f64; k * k];
    for v in side.vectors.chunks_exact(width.max(1)) {
        for a in 0..k {
            for b in 0..k {
                g[a * k + b] += v[a] * v[b];
            }
        }
    }
    g
}

/// The training ratings written once to a scratch folder of the model
/// store, with the fixed side's factors of each half-iteration beside them;
/// removed at the end (a killed statement's are swept with its parameter
/// files, [`ModelStore::sweep_orphan_payloads`]).
struct Scratch<'a> {
    ml: &'a MlContext,
    store: &'a ModelStore,
    /// `__u`, `__i`, `__r` of the training ratings, sorted by user.
    by_user: Snapshot<'a>,
    /// The same sorted by item.
    by_item: Snapshot<'a>,
    model: String,
    halves: std::sync::atomic::AtomicU32,
}

impl<'a> Scratch<'a> {
    /// Writes the ratings of the query `train` for the model `name`, once
    /// sorted by user and once by item: a half reads the copy sorted by the
    /// side it solves, so each task's share holds whole groups (one partial
    /// state per group to shuffle instead of one per task, and a group's
    /// sums stay in cache while its ratings are added).
    async fn take(ml: &'a MlContext, store: &'a ModelStore, name: &str, train: &str) -> Result<Self, MlError> {
        let unique = unique_name();
        let sorted = |by: &str| format!("SELECT __u, __i, __r FROM ({train}) __t ORDER BY {by}, __u, __i");
        let by_user = Snapshot::take(ml, store, name, &format!("mf-{unique}-users"), &sorted("__u")).await?;
        match Snapshot::take(ml, store, name, &format!("mf-{unique}-items"), &sorted("__i")).await {
            Ok(by_item) => {
                Ok(Self { ml, store, by_user, by_item, model: name.to_string(), halves: Default::default() })
            }
            Err(e) => {
                by_user.discard().await;
                Err(e)
            }
        }
    }

    /// The table of the training ratings (sorted by user).
    fn ratings(&self) -> String {
        self.by_user.table()
    }

    /// Solves the side `solve` (`__u` or `__i`) of the ratings against
    /// `fixed`, the factors of the side `by`: the solved factors and the
    /// summed loss.
    async fn solve(
        &self,
        mut params: AlsParams,
        fixed: &SideFactors,
        solve: &str,
        by: &str,
    ) -> Result<(SideFactors, f64), MlError> {
        let half = self.halves.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let file = self.by_user.scratch_file(&format!("half-{half}.pb"));
        let bytes = fixed_side(fixed, &params).encode_to_vec();
        self.store.put_bytes(&file, bytes.clone()).await?;
        let what = format!("{} (training, half-iteration {})", self.model, half + 1);
        params.fixed = factor_ref(&what, self.store.url(&file), &fingerprint(&bytes));
        // This process's executors (standalone) need not read it back.
        prime_fixed(&params.fixed, Arc::new(Factors::decode(&bytes).map_err(MlError::Internal)?));
        let sql = format!(
            "SELECT {solve} AS id, sentio_als({}, {by}, __r) AS solved FROM {} GROUP BY {solve}",
            const_arg(&params.to_json()),
            if solve == "__u" { self.by_user.table() } else { self.by_item.table() }
        );
        let batches = self.ml.collect(&sql).await;
        let _ = self.store.delete_file(&file).await;
        solved_side(&batches?, params.width())
    }

    async fn discard(&self) {
        self.by_user.discard().await;
        self.by_item.discard().await;
    }
}

/// A half-iteration's fixed side as a factor file: its ids and vectors as
/// the *items* of a [`FactorModel`] (what `sentio_als` reads).
fn fixed_side(fixed: &SideFactors, params: &AlsParams) -> FactorModel {
    FactorModel {
        format_version: FACTOR_FORMAT,
        implicit: params.implicit,
        num_factors: params.num_factors as u32,
        global_mean: params.mean,
        user_ids: Vec::new(),
        user_factors: Vec::new(),
        item_ids: fixed.ids.clone(),
        item_factors: fixed.vectors.clone(),
    }
}

/// The solved side from a half's result rows, sorted by id, and its summed
/// loss.
fn solved_side(batches: &[RecordBatch], width: usize) -> Result<(SideFactors, f64), MlError> {
    let mut rows: Vec<(String, Vec<f64>)> = Vec::new();
    for b in batches {
        let ids = datafusion::arrow::compute::cast(b.column(0), &DataType::Utf8)?;
        let ids = ids.as_string::<i32>();
        let solved = b.column(1).as_list::<i32>();
        for r in 0..b.num_rows() {
            let v = solved.value(r);
            let v = v.as_primitive::<Float64Type>();
            if v.len() != width + 1 {
                return Err(MlError::Data(format!(
                    "matrix factorization: id {:?} could not be solved (its equations were singular)",
                    ids.value(r)
                )));
            }
            rows.push((ids.value(r).to_string(), v.values().to_vec()));
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let mut side = SideFactors { ids: Vec::with_capacity(rows.len()), vectors: Vec::with_capacity(rows.len() * width) };
    let mut loss = 0.0;
    for (id, v) in rows {
        side.ids.push(id);
        side.vectors.extend_from_slice(&v[..width]);
        loss += v[width];
    }
    Ok((side, loss))
}

/// Evaluates the trained factors and commits them as the next free version.
#[allow(clippy::too_many_arguments)]
async fn claim(
    ml: &MlContext,
    store: &ModelStore,
    name: &str,
    existing: &[u32],
    statement: &crate::ml::create::Statement<'_>,
    opts: &FactorOptions,
    prepared: &Prepared,
    trained: Trained,
    payload_file: &str,
    started: Instant,
) -> Result<ModelMeta, MlError> {
    let Trained { model, rows, data_fingerprint, mut iterations, mut timings_ms } = trained;
    let bytes = model.encode_to_vec();
    let payload_fingerprint = fingerprint(&bytes);
    let version = existing.last().copied().unwrap_or(0) + 1;
    let factorization = FactorizationMeta {
        feedback_type: if opts.implicit { "implicit" } else { "explicit" }.to_string(),
        user_col: opts.user_col.clone(),
        item_col: opts.item_col.clone(),
        rating_col: opts.rating_col.clone(),
        user_type: prepared.user_type.clone(),
        item_type: prepared.item_type.clone(),
        num_factors: model.num_factors,
        users: model.user_ids.len() as u64,
        items: model.item_ids.len() as u64,
    };
    let reference = factor_ref(&format!("{name}@{version}"), store.url(payload_file), &payload_fingerprint);
    let factors = Factors::decode(&bytes).map_err(MlError::Internal)?;
    prime(&reference, Arc::new(factors));
    let t = Instant::now();
    let (metrics_query, metrics_on) = match &prepared.eval {
        Some(q) => (q.clone(), "evaluation split"),
        None => (prepared.train.clone(), "training rows"),
    };
    let (eval_rows, metrics) = metrics(ml, &reference, opts.implicit, factorization.items, &metrics_query).await?;
    timings_ms.insert("evaluation".to_string(), t.elapsed().as_millis() as u64);
    timings_ms.insert("total".to_string(), started.elapsed().as_millis() as u64);
    if let Some(last) = iterations.last_mut() {
        last.eval_loss = metrics.get("mean_squared_error").copied().flatten();
    }
    let id_stat = |input: &str, count: u64| FeatureStat {
        input: input.to_string(),
        min: None,
        max: None,
        mean: None,
        median: None,
        stddev: None,
        category_count: Some(count as i64),
        null_count: 0,
    };
    let id_spec = |name: &str, sql_type: &str| FeatureSpec {
        name: name.to_string(),
        sql_type: sql_type.to_string(),
        encoding: Encoding::Categorical { categories: Vec::new() },
    };
    let mut meta = ModelMeta {
        format: META_FORMAT,
        name: name.to_string(),
        version,
        model_type: Algorithm::MatrixFactorization.model_type().to_string(),
        created: chrono::Utc::now().to_rfc3339(),
        library: format!("sentio {}", env!("CARGO_PKG_VERSION")),
        label: opts.rating_col.clone(),
        label_type: "DOUBLE".to_string(),
        spec: TrainSpec {
            algorithm: Algorithm::MatrixFactorization,
            features: vec![id_spec(&opts.user_col, &prepared.user_type), id_spec(&opts.item_col, &prepared.item_type)],
            labels: Vec::new(),
            class_weights: Vec::new(),
            seed: opts.seed,
            buckets: 1,
            groups: 0,
            params: params_of(opts),
            target: None,
            eval_flag: false,
            cuts: None,
            evaluate_training_rows: false,
        },
        options: options_text(statement.options),
        train_options: prepared.train_options.clone(),
        training_query: statement.query.to_string(),
        training_rows: rows,
        eval_rows: if prepared.eval.is_some() { eval_rows as u64 } else { 0 },
        fit_rows: Some(rows),
        data_fingerprint,
        metrics,
        metrics_on: metrics_on.to_string(),
        feature_info: vec![id_stat(&opts.user_col, factorization.users), id_stat(&opts.item_col, factorization.items)],
        training_info: std::mem::take(&mut iterations),
        feature_importance: Vec::new(),
        timings_ms,
        training_parts: Vec::new(),
        payload_fingerprint,
        payload_bytes: bytes.len() as u64,
        payload_file: Some(payload_file.to_string()),
        global_explain: Vec::new(),
        trials: Vec::new(),
        tuning_objective: None,
        transform: Vec::new(),
        factorization: Some(factorization),
    };
    while !store.commit(&meta).await? {
        meta.version = store.versions(name).await?.last().copied().unwrap_or(meta.version).max(meta.version) + 1;
    }
    Ok(meta)
}

/// What `CREATE MODEL` of a factorization answers: the version, its size
/// and its metrics.
fn summary(meta: &ModelMeta) -> Result<Vec<RecordBatch>, MlError> {
    let f = meta.factorization.as_ref().ok_or_else(|| MlError::Internal("not a factorization".into()))?;
    let mut fields = vec![
        Field::new("model", DataType::Utf8, false),
        Field::new("version", DataType::Int64, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("model_type", DataType::Utf8, false),
        Field::new("feedback_type", DataType::Utf8, false),
        Field::new("training_rows", DataType::Int64, false),
        Field::new("eval_rows", DataType::Int64, false),
        Field::new("users", DataType::Int64, false),
        Field::new("items", DataType::Int64, false),
        Field::new("num_factors", DataType::Int64, false),
        Field::new("iterations", DataType::Int64, false),
    ];
    let int = |v: u64| Arc::new(Int64Array::from(vec![v as i64])) as ArrayRef;
    let text = |v: &str| Arc::new(StringArray::from(vec![v.to_string()])) as ArrayRef;
    let mut cols = vec![
        text(&meta.name),
        int(u64::from(meta.version)),
        text("created"),
        text(&meta.model_type),
        text(&f.feedback_type),
        int(meta.training_rows),
        int(meta.eval_rows),
        int(f.users),
        int(f.items),
        int(u64::from(f.num_factors)),
        int(meta.training_info.len() as u64),
    ];
    for name in crate::ml::recommend::metric_names(f.implicit()) {
        fields.push(Field::new(*name, DataType::Float64, true));
        cols.push(Arc::new(datafusion::arrow::array::Float64Array::from(vec![
            meta.metrics.get(*name).copied().flatten(),
        ])));
    }
    Ok(vec![RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).map_err(|e| MlError::Internal(e.to_string()))?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_factors_follow_bigquery() {
        assert_eq!(default_factors(100_000), 17);
        assert_eq!(default_factors(0), 1);
    }

    #[test]
    fn gram_sums_outer_products() {
        let side = SideFactors { ids: vec!["a".into(), "b".into()], vectors: vec![1.0, 2.0, 9.0, 3.0, 4.0, 9.0] };
        assert_eq!(gram(&side, 2), vec![10.0, 14.0, 14.0, 20.0]);
    }
}
