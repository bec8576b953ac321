//! `sentio_weights(model_ref, standardize)`: a linear model's weights as
//! BigQuery ML's `ML.WEIGHTS` reports them — one entry per input column
//! (`processed_input`), numeric columns with a `weight`, text columns with
//! one weight per training category (`category_weights`), and the
//! intercept as `__INTERCEPT__`.
//!
//! Sentio fits linear and logistic regression on standardised numeric features
//! (`(x − mean) / std`). With `standardize = FALSE` the weights are turned
//! back to the columns' own units (`w / std`, the intercept less
//! `Σ w · mean / std`), so `intercept + Σ weight · x` is the model's score
//! of the raw row; with `TRUE` they are the fitted ones, comparable in size.
//!
//! A linear regression reports its prediction (one row per input). A
//! binary model reports the log-odds of its positive label (the second in
//! sorted order, as `threshold` uses it): one row per input. A multiclass
//! model reports each label's softmax score: one row per input and label,
//! with `class_label`.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, Float64Builder, ListArray, ListBuilder, StringBuilder, StructArray, StructBuilder,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};
use sentio_proto::model_payload::Algorithm as Payload;

use crate::ml::model::Predictor;
use crate::ml::predict_udf::{ModelSource, load};
use crate::ml::spec::Encoding;

/// What `processed_input` says for the intercept.
pub const INTERCEPT: &str = "__INTERCEPT__";

/// One row of `ML.WEIGHTS`.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightRow {
    /// The input column, or [`INTERCEPT`].
    pub processed_input: String,
    /// The label whose score the weight is part of (multiclass models).
    pub class_label: Option<String>,
    /// The weight of a numeric column or of the intercept.
    pub weight: Option<f64>,
    /// The weight of each category of a text column.
    pub category_weights: Vec<(String, f64)>,
}

/// The weights of a linear or logistic regression `predictor`, in its own
/// units or (`standardize`) per standard deviation; an error for other
/// models.
pub fn linear_weights(predictor: &Predictor, standardize: bool) -> Result<Vec<WeightRow>, String> {
    let spec = &predictor.spec;
    let width = spec.width();
    let scores: Vec<(Option<String>, Vec<f64>)> = match &predictor.payload.algorithm {
        // A regressor's one score is its prediction.
        Some(Payload::Linear(l)) => vec![(None, l.weights.clone())],
        Some(Payload::Logistic(l)) => logistic_scores(&l.weights, width, &spec.labels),
        _ => {
            return Err(format!(
                "ML.WEIGHTS is for linear models (linear_reg, logistic_reg); this is a {}",
                spec.algorithm.model_type()
            ));
        }
    };
    Ok(weight_rows(predictor, scores, standardize))
}

/// Each score of a logistic regression with `weights` (`labels × (width +
/// 1)`): a binary model's one score is the log-odds of its second label, a
/// multiclass model's are each label's.
fn logistic_scores(weights: &[f64], width: usize, labels: &[String]) -> Vec<(Option<String>, Vec<f64>)> {
    let k = labels.len();
    let class_weights = |c: usize| &weights[c * (width + 1)..(c + 1) * (width + 1)];
    if k == 2 {
        let (no, yes) = (class_weights(0), class_weights(1));
        vec![(None, yes.iter().zip(no).map(|(y, n)| y - n).collect())]
    } else {
        (0..k).map(|c| (Some(labels[c].clone()), class_weights(c).to_vec())).collect()
    }
}

/// The `ML.WEIGHTS` rows of `scores` (weights over the encoded features,
/// then the intercept).
fn weight_rows(predictor: &Predictor, scores: Vec<(Option<String>, Vec<f64>)>, standardize: bool) -> Vec<WeightRow> {
    let spec = &predictor.spec;
    let width = spec.width();
    let mut rows = Vec::with_capacity(scores.len() * (spec.features.len() + 1));
    for (class_label, w) in scores {
        let mut intercept = w[width];
        let mut offset = 0;
        for f in &spec.features {
            let (weight, category_weights) = match &f.encoding {
                Encoding::Numeric { mean, std } => {
                    let fitted = w[offset];
                    if standardize {
                        (Some(fitted), Vec::new())
                    } else {
                        intercept -= fitted * mean / std;
                        (Some(fitted / std), Vec::new())
                    }
                }
                Encoding::Categorical { categories } => {
                    (None, categories.iter().zip(&w[offset..]).map(|(c, v)| (c.clone(), *v)).collect())
                }
            };
            rows.push(WeightRow {
                processed_input: f.name.clone(),
                class_label: class_label.clone(),
                weight,
                category_weights,
            });
            offset += f.width();
        }
        rows.push(WeightRow {
            processed_input: INTERCEPT.to_string(),
            class_label,
            weight: Some(intercept),
            category_weights: Vec::new(),
        });
    }
    rows
}

/// Fields of one `(category, weight)` entry.
pub fn category_weight_fields() -> Fields {
    Fields::from(vec![Field::new("category", DataType::Utf8, true), Field::new("weight", DataType::Float64, true)])
}

/// Fields of one `ML.WEIGHTS` row.
pub fn weight_row_fields() -> Fields {
    let entry = DataType::Struct(category_weight_fields());
    Fields::from(vec![
        Field::new("processed_input", DataType::Utf8, true),
        Field::new("class_label", DataType::Utf8, true),
        Field::new("weight", DataType::Float64, true),
        Field::new("category_weights", DataType::List(Arc::new(Field::new("item", entry, true))), true),
    ])
}

/// The type `sentio_weights` returns: a list of rows.
pub fn weights_type() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Struct(weight_row_fields()), true)))
}

/// `rows` as one struct per row.
fn rows_array(rows: &[WeightRow]) -> StructArray {
    let mut inputs = StringBuilder::new();
    let mut labels = StringBuilder::new();
    let mut weights = Float64Builder::new();
    let mut categories = ListBuilder::new(StructBuilder::from_fields(category_weight_fields(), 0));
    for r in rows {
        inputs.append_value(&r.processed_input);
        labels.append_option(r.class_label.as_deref());
        weights.append_option(r.weight);
        let entries = categories.values();
        for (c, w) in &r.category_weights {
            entries.field_builder::<StringBuilder>(0).expect("category").append_value(c);
            entries.field_builder::<Float64Builder>(1).expect("weight").append_value(*w);
            entries.append(true);
        }
        categories.append(true);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(inputs.finish()),
        Arc::new(labels.finish()),
        Arc::new(weights.finish()),
        Arc::new(categories.finish()),
    ];
    StructArray::new(weight_row_fields(), columns, None)
}

/// The `sentio_weights` scalar function.
#[derive(Debug)]
pub struct WeightsUdf {
    signature: Signature,
    source: Arc<dyn ModelSource>,
}

impl PartialEq for WeightsUdf {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}
impl Eq for WeightsUdf {}
impl std::hash::Hash for WeightsUdf {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        "sentio_weights".hash(state);
    }
}

impl WeightsUdf {
    /// Creates the function reading models through `source`.
    pub fn new(source: Arc<dyn ModelSource>) -> Self {
        Self { signature: Signature::any(2, Volatility::Immutable), source }
    }
}

impl ScalarUDFImpl for WeightsUdf {
    fn name(&self) -> &str {
        "sentio_weights"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(weights_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (Some(ColumnarValue::Scalar(reference)), Some(ColumnarValue::Scalar(standardize))) =
            (args.args.first(), args.args.get(1))
        else {
            return exec_err!("sentio_weights takes (model_ref, standardize), both literals");
        };
        let Some(Some(reference)) = reference.try_as_str() else {
            return exec_err!("sentio_weights: the model reference must be text");
        };
        let ScalarValue::Boolean(Some(standardize)) = standardize else {
            return exec_err!("sentio_weights: standardize must be TRUE or FALSE, not {standardize}");
        };
        let predictor = load(self.source.as_ref(), reference)?;
        let rows = match linear_weights(&predictor, *standardize) {
            Ok(rows) => rows_array(&rows),
            Err(why) => return exec_err!("{why}"),
        };
        let field = Arc::new(Field::new("item", DataType::Struct(weight_row_fields()), true));
        let offsets = OffsetBuffer::from_lengths([rows.len()]);
        let list = ListArray::try_new(field, offsets, Arc::new(rows), None)?;
        Ok(ColumnarValue::Scalar(ScalarValue::List(Arc::new(list))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::spec::{Algorithm, FeatureSpec, Params, TrainSpec};

    fn predictor(labels: &[&str], weights: Vec<f64>) -> Predictor {
        let spec = TrainSpec {
            algorithm: Algorithm::LogisticReg,
            features: vec![
                FeatureSpec {
                    name: "x".into(),
                    sql_type: "Float64".into(),
                    encoding: Encoding::Numeric { mean: 10.0, std: 4.0 },
                },
                FeatureSpec {
                    name: "c".into(),
                    sql_type: "Utf8".into(),
                    encoding: Encoding::Categorical { categories: vec!["a".into(), "b".into()] },
                },
            ],
            labels: labels.iter().map(|l| l.to_string()).collect(),
            class_weights: vec![1.0; labels.len()],
            seed: 0,
            buckets: 1,
            groups: 0,
            params: Params::default(),
            target: None,
            eval_flag: false,
            cuts: None,
            evaluate_training_rows: false,
        };
        let payload = sentio_proto::ModelPayload {
            format_version: crate::ml::model::PAYLOAD_FORMAT,
            num_features: 3,
            num_classes: labels.len() as u32,
            algorithm: Some(Payload::Logistic(sentio_proto::Logistic { weights, ..Default::default() })),
            parts: Vec::new(),
        };
        Predictor { spec, payload }
    }

    /// The score `rows` give a raw row `x`, category `c`.
    fn score(rows: &[WeightRow], x: f64, c: &str) -> f64 {
        rows.iter()
            .map(|r| match r.processed_input.as_str() {
                "x" => r.weight.unwrap() * x,
                INTERCEPT => r.weight.unwrap(),
                _ => r.category_weights.iter().find(|(k, _)| k == c).map_or(0.0, |(_, w)| *w),
            })
            .sum()
    }

    #[test]
    fn raw_weights_score_raw_rows_as_the_model_does() {
        // "yes": 2·(x−10)/4 + 1.5·[c=a] − 0.5·[c=b] + 0.25; "no": 0.5·(x−10)/4.
        let p = predictor(&["no", "yes"], vec![0.5, 0.0, 0.0, 0.0, 2.0, 1.5, -0.5, 0.25]);
        let raw = linear_weights(&p, false).unwrap();
        assert_eq!(raw.len(), 3, "x, c, the intercept: {raw:?}");
        assert!(raw.iter().all(|r| r.class_label.is_none()), "binary: one score");
        for (x, c) in [(3.0, "a"), (18.0, "b"), (10.0, "z")] {
            let encoded = [((x - 10.0) / 4.0) as f32, (c == "a") as u8 as f32, (c == "b") as u8 as f32];
            let mut probs = [0.0; 2];
            p.probs(&encoded, &mut probs);
            let log_odds = (probs[1] / probs[0]).ln();
            assert!((score(&raw, x, c) - log_odds).abs() < 1e-6, "{x} {c}: {} vs {log_odds}", score(&raw, x, c));
        }
        let standardized = linear_weights(&p, true).unwrap();
        assert_eq!(standardized[0].weight, Some(1.5), "2 − 0.5 per standard deviation");
        assert_eq!(raw[0].weight, Some(1.5 / 4.0));
        assert_eq!(raw[1].category_weights, vec![("a".to_string(), 1.5), ("b".to_string(), -0.5)]);
        assert_eq!(standardized[2].weight, Some(0.25));
        assert_eq!(raw[2].weight, Some(0.25 - 1.5 * 10.0 / 4.0));
    }

    #[test]
    fn a_multiclass_model_reports_each_labels_score() {
        let p = predictor(&["a", "b", "c"], (0..12).map(f64::from).collect());
        let rows = linear_weights(&p, true).unwrap();
        assert_eq!(rows.len(), 9);
        let labels: Vec<_> = rows.iter().map(|r| r.class_label.clone().unwrap()).collect();
        assert_eq!(labels, ["a", "a", "a", "b", "b", "b", "c", "c", "c"]);
        assert_eq!(rows[3].weight, Some(4.0));
        assert_eq!(rows[5].weight, Some(7.0), "b's intercept");
        let array = rows_array(&rows);
        assert_eq!(array.len(), 9);
    }
}
