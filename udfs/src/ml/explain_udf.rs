//! `sentio_explain(model_ref, top_k, class, feature, …)`: each row's
//! prediction explained as BigQuery ML's `ML.EXPLAIN_PREDICT` reports it —
//! the label explained, the `top_k` features with the largest attributions,
//! the baseline and predicted values and the approximation error
//! ([`Predictor::explain`]: exact, so the error is only rounding). `class`
//! (BIGINT, per row) is the index of the label to explain; NULL explains the
//! most probable one. A regressor's prediction is explained (class 0), with
//! a NULL label.
//!
//! Attributions are per input column: a text feature's one-hot columns are
//! summed into their column's.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Float64Builder, Int64Array, ListBuilder, StringBuilder, StructArray,
    StructBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Fields, Int64Type};
use datafusion::common::{Result, ScalarValue, exec_datafusion_err, exec_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

use crate::ml::model::{Predictor, most_probable};
use crate::ml::predict_udf::{ModelSource, load};

/// Fields of one `(feature, attribution)` entry.
pub fn attribution_fields() -> Fields {
    Fields::from(vec![Field::new("feature", DataType::Utf8, true), Field::new("attribution", DataType::Float64, true)])
}

/// The struct `sentio_explain` returns.
pub fn explanation_type() -> DataType {
    let entry = DataType::Struct(attribution_fields());
    DataType::Struct(Fields::from(vec![
        Field::new("label", DataType::Utf8, true),
        Field::new("top_feature_attributions", DataType::List(Arc::new(Field::new("item", entry, true))), true),
        Field::new("baseline_prediction_value", DataType::Float64, true),
        Field::new("prediction_value", DataType::Float64, true),
        Field::new("approximation_error", DataType::Float64, true),
    ]))
}

/// The `sentio_explain` scalar function.
#[derive(Debug)]
pub struct ExplainUdf {
    signature: Signature,
    source: Arc<dyn ModelSource>,
}

impl PartialEq for ExplainUdf {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}
impl Eq for ExplainUdf {}
impl std::hash::Hash for ExplainUdf {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        "sentio_explain".hash(state);
    }
}

impl ExplainUdf {
    /// Creates the function reading models through `source`.
    pub fn new(source: Arc<dyn ModelSource>) -> Self {
        Self { signature: Signature::variadic_any(Volatility::Immutable), source }
    }
}

/// Explains each row of the feature columns: the label `classes` names for
/// it (its most probable one where NULL or not given), and that label's
/// value attributed to the `top_k` input columns that moved it most (by
/// absolute attribution; ties by column order).
pub fn explain_arrays(
    predictor: &Predictor,
    top_k: usize,
    classes: Option<&Int64Array>,
    features: &[ArrayRef],
) -> Result<StructArray> {
    let rows = features.first().map_or(0, |c| c.len());
    let spec = &predictor.spec;
    let x = spec.encode(features)?;
    let regressor = spec.algorithm.is_regressor();
    // A regressor's one output (its prediction) is explained as class 0.
    let (width, k) = (spec.width(), if regressor { 1 } else { spec.labels.len() });
    let owner = spec.encoded_owner();
    let mut labels = StringBuilder::new();
    let mut top = ListBuilder::new(StructBuilder::from_fields(attribution_fields(), top_k));
    let (mut baselines, mut predictions, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    let mut probs = vec![0f64; k];
    for r in 0..rows {
        let row = &x[r * width..(r + 1) * width];
        let class = match classes.filter(|c| c.is_valid(r)).map(|c| c.value(r)) {
            Some(c) if (0..k as i64).contains(&c) => c as usize,
            Some(c) => return exec_err!("sentio_explain: no label {c} in a model of {k} labels"),
            None if regressor => 0,
            None => {
                predictor.probs(row, &mut probs);
                most_probable(&probs)
            }
        };
        let e = predictor.explain(row, class).map_err(|why| exec_datafusion_err!("cannot explain the model: {why}"))?;
        let mut per_column = vec![0f64; spec.features.len()];
        for (j, c) in e.contributions.iter().enumerate() {
            per_column[owner[j]] += c;
        }
        let mut order: Vec<usize> = (0..per_column.len()).collect();
        order.sort_by(|a, b| per_column[*b].abs().total_cmp(&per_column[*a].abs()).then(a.cmp(b)));
        let entries = top.values();
        for &f in order.iter().take(top_k) {
            entries.field_builder::<StringBuilder>(0).expect("feature").append_value(&spec.features[f].name);
            entries.field_builder::<Float64Builder>(1).expect("attribution").append_value(per_column[f]);
            entries.append(true);
        }
        top.append(true);
        match spec.labels.get(class) {
            Some(label) if !regressor => labels.append_value(label),
            _ => labels.append_null(),
        }
        let total: f64 = per_column.iter().sum();
        baselines.push(e.baseline);
        predictions.push(e.prediction);
        errors.push((e.prediction - e.baseline - total).abs());
    }
    let DataType::Struct(fields) = explanation_type() else { unreachable!() };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(labels.finish()),
        Arc::new(top.finish()),
        Arc::new(Float64Array::from(baselines)),
        Arc::new(Float64Array::from(predictions)),
        Arc::new(Float64Array::from(errors)),
    ];
    Ok(StructArray::new(fields, columns, None))
}

impl ScalarUDFImpl for ExplainUdf {
    fn name(&self) -> &str {
        "sentio_explain"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(explanation_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (Some(ColumnarValue::Scalar(reference)), Some(ColumnarValue::Scalar(top_k))) =
            (args.args.first(), args.args.get(1))
        else {
            return exec_err!("sentio_explain: the model reference and top_k must be literals");
        };
        let Some(Some(reference)) = reference.try_as_str() else {
            return exec_err!("sentio_explain: the model reference must be text");
        };
        let top_k = match top_k {
            ScalarValue::Int64(Some(n)) if *n >= 0 => *n as usize,
            other => return exec_err!("sentio_explain: top_k must be a whole number, not {other}"),
        };
        let predictor = load(self.source.as_ref(), reference)?;
        let Some(classes) = args.args.get(2) else {
            return exec_err!("sentio_explain takes (model_ref, top_k, class, feature, …)");
        };
        let classes = datafusion::arrow::compute::cast(&classes.to_array(args.number_rows)?, &DataType::Int64)?;
        let features: Vec<ArrayRef> =
            args.args[3..].iter().map(|v| v.to_array(args.number_rows)).collect::<Result<_>>()?;
        let classes = classes.as_primitive::<Int64Type>();
        Ok(ColumnarValue::Array(Arc::new(explain_arrays(&predictor, top_k, Some(classes), &features)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::spec::{Algorithm, Encoding, FeatureSpec, Params, TrainSpec};

    #[test]
    fn a_logistic_regression_is_explained_by_its_terms() {
        let spec = TrainSpec {
            algorithm: Algorithm::LogisticReg,
            features: vec![
                FeatureSpec {
                    name: "a".into(),
                    sql_type: "Float64".into(),
                    encoding: Encoding::Numeric { mean: 0.0, std: 1.0 },
                },
                FeatureSpec {
                    name: "b".into(),
                    sql_type: "Float64".into(),
                    encoding: Encoding::Numeric { mean: 0.0, std: 1.0 },
                },
            ],
            labels: vec!["no".into(), "yes".into()],
            class_weights: vec![1.0, 1.0],
            seed: 0,
            buckets: 1,
            groups: 0,
            params: Params::default(),
            target: None,
            eval_flag: false,
            cuts: None,
            evaluate_training_rows: false,
        };
        // Class "yes": 2·a − 1·b + 0.5; class "no": all zero.
        let payload = sentio_proto::ModelPayload {
            format_version: crate::ml::model::PAYLOAD_FORMAT,
            num_features: 2,
            num_classes: 2,
            algorithm: Some(sentio_proto::model_payload::Algorithm::Logistic(sentio_proto::Logistic {
                weights: vec![0.0, 0.0, 0.0, 2.0, -1.0, 0.5],
                ..Default::default()
            })),
            parts: Vec::new(),
        };
        let predictor = Predictor { spec, payload };
        let a: ArrayRef = Arc::new(Float64Array::from(vec![3.0]));
        let b: ArrayRef = Arc::new(Float64Array::from(vec![4.0]));
        let out = explain_arrays(&predictor, 1, None, &[a.clone(), b.clone()]).unwrap();
        assert_eq!(out.column(0).as_string::<i32>().value(0), "yes");
        let top = out.column(1).as_list::<i32>().value(0);
        let top = top.as_struct();
        assert_eq!(top.len(), 1, "top_k = 1");
        assert_eq!(top.column(0).as_string::<i32>().value(0), "a", "|2·3| > |−1·4|");
        assert_eq!(top.column(1).as_primitive::<datafusion::arrow::datatypes::Float64Type>().value(0), 6.0);
        let value = |i: usize| out.column(i).as_primitive::<datafusion::arrow::datatypes::Float64Type>().value(0);
        assert_eq!((value(2), value(3), value(4)), (0.5, 0.5 + 6.0 - 4.0, 0.0));
        // Asked for, the other label is explained: all of its terms are 0.
        let no = explain_arrays(&predictor, 2, Some(&Int64Array::from(vec![0])), &[a, b]).unwrap();
        assert_eq!(no.column(0).as_string::<i32>().value(0), "no");
        let valued = |i: usize| no.column(i).as_primitive::<datafusion::arrow::datatypes::Float64Type>().value(0);
        assert_eq!((valued(2), valued(3)), (0.0, 0.0));
    }
}
