//! `sentio_predict(model_ref, feature, …)`: class and class probabilities of
//! each row, as BigQuery ML's `predicted_<label>` and
//! `predicted_<label>_probs` (the rewrite of `ML.PREDICT` splits the struct);
//! `sentio_predict_value(model_ref, feature, …)`: a regressor's predicted
//! number (`DOUBLE`).
//!
//! `model_ref` is a JSON literal naming the stored model (its URL and
//! fingerprint) and carrying its input spec; the model's parameters are read by
//! each process from its own object store ([`ModelSource`]) once and kept in a
//! per-process cache, so a plan never carries the model itself nor any
//! credential.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use datafusion::arrow::array::{
    ArrayRef, Float64Array, Float64Builder, ListBuilder, StringBuilder, StructArray, StructBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::{Result, exec_datafusion_err, exec_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};
use serde::{Deserialize, Serialize};

use crate::ml::model::{Predictor, most_probable};
use crate::ml::spec::TrainSpec;

/// Reads a stored model's bytes; each process supplies its own (local files,
/// S3 with the process's own credentials).
pub trait ModelSource: std::fmt::Debug + Send + Sync {
    /// The bytes at `url`.
    fn fetch(&self, url: &str) -> std::result::Result<Vec<u8>, String>;
}

/// What a plan says about the model to apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRef {
    /// `name@version`, for messages.
    pub model: String,
    /// URL of the stored `ModelPayload`.
    pub url: String,
    /// [`fingerprint`] of the payload's bytes.
    pub fingerprint: String,
    /// The model's input spec.
    pub spec: TrainSpec,
}

/// A short, stable fingerprint of bytes (two independent 64-bit FNV-1a
/// variants), used to check that a stored model is the one a plan names.
pub fn fingerprint(bytes: &[u8]) -> String {
    let (mut a, mut b) = (0xcbf2_9ce4_8422_2325u64, 0x8422_2325_cbf2_9ce4u64);
    for &x in bytes {
        a = (a ^ u64::from(x)).wrapping_mul(0x0000_0100_0000_01b3);
        b = (b ^ u64::from(x.rotate_left(3))).wrapping_mul(0x0000_0001_0000_01b3 ^ 0x10);
    }
    format!("{a:016x}{b:016x}{:08x}", bytes.len())
}

const CACHE_ENTRIES: usize = 16;

static CACHE: LazyLock<Mutex<HashMap<String, Arc<Predictor>>>> = LazyLock::new(Default::default);

/// The model a reference names, from this process's cache or its store.
pub fn load(source: &dyn ModelSource, reference: &str) -> Result<Arc<Predictor>> {
    if let Some(p) = CACHE.lock().expect("model cache").get(reference) {
        return Ok(Arc::clone(p));
    }
    let r: ModelRef = serde_json::from_str(reference).map_err(|e| exec_datafusion_err!("bad model reference: {e}"))?;
    let bytes = fetch_checked(source, &r.model, &r.url, &r.fingerprint)?;
    let p = Arc::new(Predictor::decode(r.spec, &bytes).map_err(|e| exec_datafusion_err!("model {}: {e}", r.model))?);
    let mut cache = CACHE.lock().expect("model cache");
    if cache.len() >= CACHE_ENTRIES {
        cache.clear();
    }
    cache.insert(reference.to_string(), Arc::clone(&p));
    Ok(p)
}

/// The bytes of model `model` at `url`, read through `source`, if their
/// fingerprint is `fingerprint` (else the error that the file is corrupt or
/// was replaced).
pub fn fetch_checked(source: &dyn ModelSource, model: &str, url: &str, fingerprint_: &str) -> Result<Vec<u8>> {
    let bytes = source.fetch(url).map_err(|e| exec_datafusion_err!("cannot read model {model} from {url}: {e}"))?;
    if fingerprint(&bytes) != fingerprint_ {
        return exec_err!(
            "model {model}: the stored file {url} is not the one that was registered (corrupt or replaced)"
        );
    }
    Ok(bytes)
}

/// Puts a model into this process's cache (the client does after training,
/// so a standalone session need not read back what it just wrote).
pub fn prime_cache(reference: &str, predictor: Predictor) {
    let mut cache = CACHE.lock().expect("model cache");
    if cache.len() >= CACHE_ENTRIES {
        cache.clear();
    }
    cache.insert(reference.to_string(), Arc::new(predictor));
}

/// Fields of one `(label, prob)` entry.
pub fn prob_fields() -> Fields {
    Fields::from(vec![Field::new("label", DataType::Utf8, true), Field::new("prob", DataType::Float64, true)])
}

/// The struct `sentio_predict` returns: `label` and `probs`.
pub fn prediction_type() -> DataType {
    DataType::Struct(Fields::from(vec![
        Field::new("label", DataType::Utf8, true),
        Field::new("probs", DataType::List(Arc::new(Field::new("item", DataType::Struct(prob_fields()), true))), true),
    ]))
}

/// The model a call of `function` names (its first argument, a literal
/// reference) and its feature columns (the other arguments).
fn model_and_features(
    source: &dyn ModelSource,
    args: &ScalarFunctionArgs,
    function: &str,
) -> Result<(Arc<Predictor>, Vec<ArrayRef>)> {
    let Some(ColumnarValue::Scalar(reference)) = args.args.first() else {
        return exec_err!("{function}: the first argument must be a model reference literal");
    };
    let Some(Some(reference)) = reference.try_as_str() else {
        return exec_err!("{function}: the model reference must be text");
    };
    let predictor = load(source, reference)?;
    let features: Vec<ArrayRef> = args.args[1..].iter().map(|v| v.to_array(args.number_rows)).collect::<Result<_>>()?;
    if features.is_empty() && args.number_rows > 0 && !predictor.spec.features.is_empty() {
        return exec_err!("{function}: no features given");
    }
    Ok((predictor, features))
}

/// The `sentio_predict` scalar function.
#[derive(Debug)]
pub struct PredictUdf {
    signature: Signature,
    source: Arc<dyn ModelSource>,
}

impl PartialEq for PredictUdf {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}
impl Eq for PredictUdf {}
impl std::hash::Hash for PredictUdf {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        "sentio_predict".hash(state);
    }
}

impl PredictUdf {
    /// Creates the function reading models through `source`.
    pub fn new(source: Arc<dyn ModelSource>) -> Self {
        Self { signature: Signature::variadic_any(Volatility::Immutable), source }
    }
}

/// Applies `predictor` to feature columns: the predicted labels and, per row,
/// the probability of each label.
pub fn predict_arrays(predictor: &Predictor, features: &[ArrayRef]) -> Result<StructArray> {
    let rows = features.first().map_or(0, |c| c.len());
    let x = predictor.spec.encode(features)?;
    let k = predictor.spec.labels.len();
    let mut labels = StringBuilder::new();
    let mut probs = ListBuilder::new(StructBuilder::from_fields(prob_fields(), k));
    let mut all = vec![0f64; rows * k];
    predictor.probs_batch(&x, rows, &mut all);
    for r in 0..rows {
        let p = &all[r * k..(r + 1) * k];
        let best = most_probable(p);
        labels.append_value(&predictor.spec.labels[best]);
        let entries = probs.values();
        for (c, label) in predictor.spec.labels.iter().enumerate() {
            entries.field_builder::<StringBuilder>(0).expect("label").append_value(label);
            entries.field_builder::<Float64Builder>(1).expect("prob").append_value(p[c]);
            entries.append(true);
        }
        probs.append(true);
    }
    let DataType::Struct(fields) = prediction_type() else { unreachable!() };
    Ok(StructArray::new(fields, vec![Arc::new(labels.finish()), Arc::new(probs.finish())], None))
}

impl ScalarUDFImpl for PredictUdf {
    fn name(&self) -> &str {
        "sentio_predict"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(prediction_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (predictor, features) = model_and_features(self.source.as_ref(), &args, "sentio_predict")?;
        Ok(ColumnarValue::Array(Arc::new(predict_arrays(&predictor, &features)?)))
    }
}

/// The `sentio_predict_value` scalar function: a regressor's prediction.
#[derive(Debug)]
pub struct PredictValueUdf {
    signature: Signature,
    source: Arc<dyn ModelSource>,
}

impl PartialEq for PredictValueUdf {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}
impl Eq for PredictValueUdf {}
impl std::hash::Hash for PredictValueUdf {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        "sentio_predict_value".hash(state);
    }
}

impl PredictValueUdf {
    /// Creates the function reading models through `source`.
    pub fn new(source: Arc<dyn ModelSource>) -> Self {
        Self { signature: Signature::variadic_any(Volatility::Immutable), source }
    }
}

impl ScalarUDFImpl for PredictValueUdf {
    fn name(&self) -> &str {
        "sentio_predict_value"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (predictor, features) = model_and_features(self.source.as_ref(), &args, "sentio_predict_value")?;
        let values = predictor.values(&features).map_err(|e| exec_datafusion_err!("sentio_predict_value: {e}"))?;
        Ok(ColumnarValue::Array(Arc::new(Float64Array::from(values))))
    }
}
