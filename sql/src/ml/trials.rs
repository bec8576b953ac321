//! The trials of a tuned `CREATE MODEL` ([`crate::ml::tuning`]): each trained
//! in the cluster, `max_parallel_trials` at a time, its parameters stored in
//! a file of its own, and scored on the evaluation rows.

use std::time::Instant;

use futures::StreamExt;
use prost::Message;
use sentio_proto::{ModelPayload, model_payload::Algorithm as Payload};
use sentio_udfs::ml::model::Predictor;
use sentio_udfs::ml::predict_udf::{fingerprint, prime_cache};

use crate::ml::create::{Trained, model_ref, train, training_info};
use crate::ml::functions::metrics_of;
use crate::ml::options::TrainOptions;
use crate::ml::parse::OptValue;
use crate::ml::store::{ModelMeta, ModelStore, TrialMeta};
use crate::ml::tuning::{TrialValues, Tuning, draw_trials, is_whole, trial_options};
use crate::ml::{MlContext, MlError};
use crate::sqltext::lit;

/// The optimal trial of a tuning, ready to be stored as the version's model.
pub struct Optimal {
    /// Its options.
    pub opts: TrainOptions,
    /// Its model.
    pub trained: Trained,
    /// Its parameters' file and their fingerprint.
    pub payload_file: String,
    /// See `payload_file`.
    pub payload_fingerprint: String,
}

/// What a tuning left: every trial, and the optimal one's model.
pub struct Tuned {
    /// Every trial, in order, the optimal one marked.
    pub trials: Vec<TrialMeta>,
    /// The optimal trial.
    pub optimal: Optimal,
}

/// A trial that trained and was scored.
struct Scored {
    opts: TrainOptions,
    trained: Trained,
    payload_file: String,
    payload_fingerprint: String,
    metrics: std::collections::BTreeMap<String, Option<f64>>,
}

/// Runs every trial of `tuning` over `query` (the options `base` plus each
/// trial's draw) and picks the best by the objective. Fails when no trial
/// succeeds, with the first trial's error; a failed trial otherwise stays in
/// the record as `FAILED`.
pub async fn run_trials(
    ml: &MlContext,
    store: &ModelStore,
    name: &str,
    tuning: &Tuning,
    base: &[(String, OptValue)],
    seed: u64,
    query: &str,
) -> Result<Tuned, MlError> {
    let started = Instant::now();
    let draws = draw_trials(tuning, seed);
    let runs = futures::stream::iter(draws.into_iter().enumerate().map(|(i, values)| {
        let trial_id = i as u32 + 1;
        async move {
            let from = started.elapsed().as_millis() as u64;
            let result = run_trial(ml, store, name, trial_id, base, &values, query).await;
            (trial_id, values, from, started.elapsed().as_millis() as u64, result)
        }
    }))
    .buffered(tuning.max_parallel_trials as usize)
    .collect::<Vec<_>>()
    .await;

    let mut trials = Vec::with_capacity(runs.len());
    let mut scored: Vec<Option<Scored>> = Vec::with_capacity(runs.len());
    let mut first_error = None;
    for (trial_id, hyperparameters, started_ms, ended_ms, result) in runs {
        let mut meta = TrialMeta {
            trial_id,
            hyperparameters,
            status: "SUCCEEDED".into(),
            error_message: None,
            is_optimal: false,
            spec: None,
            payload_file: None,
            payload_fingerprint: None,
            payload_bytes: 0,
            metrics: Default::default(),
            training_loss: None,
            started_ms,
            ended_ms,
            training_parts: Vec::new(),
            training_info: Vec::new(),
        };
        match result {
            Ok(s) => {
                meta.spec = Some(s.trained.spec.clone());
                meta.payload_file = Some(s.payload_file.clone());
                meta.payload_fingerprint = Some(s.payload_fingerprint.clone());
                meta.payload_bytes = s.trained.payload.len() as u64;
                meta.metrics = s.metrics.clone();
                meta.training_loss = last_training_loss(&s.trained.payload);
                meta.training_parts = s.trained.training_parts.clone();
                if let Ok(payload) = ModelPayload::decode(s.trained.payload.as_slice()) {
                    let took = ended_ms.saturating_sub(started_ms);
                    meta.training_info = training_info(&payload, &s.trained, took, &s.metrics, true);
                }
                scored.push(Some(s));
            }
            Err(e) => {
                meta.status = "FAILED".into();
                meta.error_message = Some(e.to_string());
                first_error.get_or_insert(e);
                scored.push(None);
            }
        }
        trials.push(meta);
    }
    let objective = |t: &TrialMeta| t.metrics.get(&tuning.objective).copied().flatten();
    let mut best: Option<usize> = None;
    for (i, t) in trials.iter().enumerate() {
        if t.status == "SUCCEEDED" && best.is_none_or(|b| tuning.better(objective(t), objective(&trials[b]))) {
            best = Some(i);
        }
    }
    let Some(best) = best else {
        return Err(first_error.unwrap_or_else(|| MlError::Internal("no trial ran".into())));
    };
    trials[best].is_optimal = true;
    let Some(s) = scored.swap_remove(best) else { unreachable!("the optimal trial succeeded") };
    let optimal = Optimal {
        opts: s.opts,
        trained: s.trained,
        payload_file: s.payload_file,
        payload_fingerprint: s.payload_fingerprint,
    };
    Ok(Tuned { trials, optimal })
}

/// Trains trial `trial_id`, stores its parameters and scores it on the
/// evaluation rows.
async fn run_trial(
    ml: &MlContext,
    store: &ModelStore,
    name: &str,
    trial_id: u32,
    base: &[(String, OptValue)],
    values: &TrialValues,
    query: &str,
) -> Result<Scored, MlError> {
    let opts = TrainOptions::from_options(&trial_options(base, values))?;
    let what = format!("CREATE MODEL {name} (trial {trial_id})");
    let trained = train(ml, &opts, query, &what).await?;
    let Some(eval) = trained.eval_query.clone() else {
        return Err(MlError::Data(format!(
            "{what}: tuning scores each trial on evaluation rows, and the split left none ({} training rows); use \
             data_split_method = 'RANDOM' or 'CUSTOM', or more rows",
            trained.training_rows
        )));
    };
    let payload_fingerprint = fingerprint(&trained.payload);
    let payload_file = store.put_payload(name, &payload_fingerprint, trained.payload.clone()).await?;
    let reference =
        model_ref(&format!("{name} trial {trial_id}"), store.url(&payload_file), &trained.spec, &payload_fingerprint);
    let scored = async {
        let predictor = Predictor::decode(trained.spec.clone(), &trained.payload).map_err(MlError::Internal)?;
        prime_cache(&reference, predictor);
        metrics_of(ml, &reference, &trained.spec, &trained.label, &trained.schema, &eval, None).await
    }
    .await;
    match scored {
        Ok((_, metrics)) => Ok(Scored { opts, trained, payload_file, payload_fingerprint, metrics }),
        Err(e) => {
            let _ = store.discard_payload(&payload_file).await;
            Err(e)
        }
    }
}

/// The last loss of the optimiser (logistic regression, boosting), if it
/// has one.
fn last_training_loss(payload: &[u8]) -> Option<f64> {
    match ModelPayload::decode(payload).ok()?.algorithm? {
        Payload::Logistic(l) => l.loss_history.last().copied(),
        Payload::Boosted(b) => b.loss_history.last().copied(),
        _ => None,
    }
}

/// SQL of `ML.TRIAL_INFO(MODEL meta)`: one row per trial with BigQuery ML's
/// columns — `trial_id`, `hyperparameters` (a struct of the tuned ones),
/// `hparam_tuning_evaluation_metrics` (the objective), `training_loss`,
/// `eval_loss` (log loss on the evaluation rows; a regressor's mean squared
/// error), `status`,
/// `error_message`, `is_optimal`.
pub fn trials_sql(meta: &ModelMeta) -> Result<String, MlError> {
    if meta.trials.is_empty() {
        return Err(MlError::Data(format!(
            "ML.TRIAL_INFO: {}@{} has no trials (it was created without num_trials)",
            meta.name, meta.version
        )));
    }
    let objective = meta.tuning_objective.as_deref().unwrap_or("roc_auc");
    // A classifier's loss is its log loss, a regressor's the mean squared error.
    let eval_loss = if meta.spec.algorithm.is_regressor() { "mean_squared_error" } else { "log_loss" };
    let selects: Vec<String> = meta
        .trials
        .iter()
        .map(|t| {
            let hyperparameters: Vec<String> = t
                .hyperparameters
                .iter()
                .map(|(k, v)| {
                    let value = if is_whole(k) { format!("CAST({} AS BIGINT)", *v as i64) } else { double(Some(*v)) };
                    format!("{}, {value}", lit(k))
                })
                .collect();
            let score = t.metrics.get(objective).copied().flatten();
            format!(
                "SELECT CAST({} AS BIGINT) AS trial_id, named_struct({}) AS hyperparameters, \
                 named_struct({}, {}) AS hparam_tuning_evaluation_metrics, {} AS training_loss, {} AS eval_loss, \
                 {} AS status, {} AS error_message, {} AS is_optimal",
                t.trial_id,
                hyperparameters.join(", "),
                lit(objective),
                double(score),
                double(t.training_loss),
                double(t.metrics.get(eval_loss).copied().flatten()),
                lit(&t.status),
                t.error_message.as_deref().map_or("CAST(NULL AS VARCHAR)".to_string(), lit),
                t.is_optimal,
            )
        })
        .collect();
    Ok(format!("SELECT * FROM ({}) __t ORDER BY trial_id", selects.join(" UNION ALL ")))
}

/// A DOUBLE literal (NULL for none or a non-finite value).
fn double(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("CAST({v:?} AS DOUBLE)"),
        _ => "CAST(NULL AS DOUBLE)".into(),
    }
}
