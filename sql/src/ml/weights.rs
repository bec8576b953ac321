//! `ML.WEIGHTS(MODEL m [, STRUCT(TRUE AS standardize)])`: a linear model's
//! weights, rewritten into `sentio_weights` (see
//! [`sentio_udfs::ml::weights`]), which reads the model's parameters where
//! the query runs.

use sentio_udfs::ml::spec::Algorithm;

use crate::ml::MlError;
use crate::ml::store::ModelMeta;
use crate::sqltext::lit;

/// SQL of `ML.WEIGHTS` of `meta`, stored as `reference`: `processed_input`,
/// (multiclass models) `class_label`, `weight`, `category_weights`.
pub fn weights_sql(meta: &ModelMeta, reference: &str, standardize: bool) -> Result<String, MlError> {
    if !matches!(meta.spec.algorithm, Algorithm::LogisticReg | Algorithm::LinearReg) {
        return Err(MlError::Data(format!(
            "ML.WEIGHTS is for linear models (linear_reg, logistic_reg); {} is a {}",
            meta.name, meta.model_type
        )));
    }
    let class_label = if meta.spec.labels.len() > 2 { "get_field(__w, 'class_label') AS class_label, " } else { "" };
    Ok(format!(
        "SELECT get_field(__w, 'processed_input') AS processed_input, {class_label}\
                get_field(__w, 'weight') AS weight, get_field(__w, 'category_weights') AS category_weights \
         FROM (SELECT unnest(sentio_weights({}, {standardize})) AS __w) __t",
        lit(reference)
    ))
}
