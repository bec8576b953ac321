//! Explanations: `ML.EXPLAIN_PREDICT` rewritten into `sentio_explain`
//! (exact attributions computed where the rows are), and the global
//! explanation that `enable_global_explain = TRUE` computes at `CREATE
//! MODEL` and `ML.GLOBAL_EXPLAIN` answers.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};

use crate::ml::sqltext::values_query;
use crate::ml::store::{GlobalAttribution, ModelMeta};
use crate::ml::{MlContext, MlError};
use crate::sqltext::{lit, qcol, quote_ident};

/// Features listed by default in `top_feature_attributions`.
pub const DEFAULT_TOP_K: u64 = 5;

/// Training rows a global explanation explains at most (a seeded sample
/// beyond): Tree SHAP costs each row a walk of every tree's paths.
pub const GLOBAL_EXPLAIN_ROWS: u64 = 1_000;

/// SQL of `ML.EXPLAIN_PREDICT(MODEL meta, (q))`: `q`'s columns, the
/// predicted label, and the `top_k` attributions, baseline, prediction and
/// approximation error of each row. `reference` names the stored model and
/// `args` are `sentio_explain`'s feature arguments over `q` aliased `__i`.
pub fn explain_sql(meta: &ModelMeta, reference: &str, args: &[String], q: &str, schema: &Schema, top_k: u64) -> String {
    let cols: Vec<String> = schema.fields().iter().map(|f| qcol("__o", f.name())).collect();
    let label = if meta.spec.algorithm.is_regressor() {
        "get_field(__o.__x, 'prediction_value')".to_string()
    } else if meta.label_type == "VARCHAR" {
        "get_field(__o.__x, 'label')".to_string()
    } else {
        format!("CAST(get_field(__o.__x, 'label') AS {})", meta.label_type)
    };
    let out = |field: &str| format!("get_field(__o.__x, '{field}') AS {field}");
    format!(
        "SELECT {}{}{label} AS {}, {}, {}, {}, {} \
         FROM (SELECT __i.*, sentio_explain({}, CAST({top_k} AS BIGINT), CAST(NULL AS BIGINT), {}) AS __x \
               FROM ({q}) __i) __o",
        cols.join(", "),
        if cols.is_empty() { "" } else { ", " },
        quote_ident(&format!("predicted_{}", meta.label)),
        out("top_feature_attributions"),
        out("baseline_prediction_value"),
        out("prediction_value"),
        out("approximation_error"),
        lit(reference),
        args.join(", "),
    )
}

/// The global explanation of a model: each feature's mean absolute
/// attribution over `sample` (rows of the training query with the model's
/// features, aliased `__t` in `args`), for each row's predicted label and,
/// per label, for that label's value. Runs on the cluster.
pub async fn global_explanation(
    ml: &MlContext,
    reference: &str,
    labels: &[String],
    args: &[String],
    sample: &str,
) -> Result<Vec<GlobalAttribution>, MlError> {
    let features = args.len();
    // NULL: each row's predicted label; 0 … k-1: that label.
    let classes: Vec<String> = std::iter::once("CAST(NULL AS BIGINT)".to_string())
        .chain((0..labels.len()).map(|c| format!("CAST({c} AS BIGINT)")))
        .map(|c| format!("({c})"))
        .collect();
    // Each sampled row's attributions come back (a few thousand small
    // lists) and are averaged here.
    let sql = format!(
        "SELECT __c.class, get_field(sentio_explain({}, CAST({features} AS BIGINT), __c.class, {}), \
                'top_feature_attributions') AS attributions \
         FROM ({sample}) __t CROSS JOIN (VALUES {}) __c(class)",
        lit(reference),
        args.join(", "),
        classes.join(", ")
    );
    let mut totals: BTreeMap<(Option<usize>, String), (f64, i64)> = BTreeMap::new();
    for b in ml.collect(&sql).await? {
        let class = b.column(0).as_primitive::<Int64Type>();
        let lists = b.column(1).as_list::<i32>();
        for r in 0..b.num_rows() {
            let c = class.is_valid(r).then(|| class.value(r) as usize);
            let entries = lists.value(r);
            let entries = entries.as_struct();
            let feature = entries.column(0).as_string::<i32>();
            let attribution = entries.column(1).as_primitive::<Float64Type>();
            for e in 0..entries.len() {
                let slot = totals.entry((c, feature.value(e).to_string())).or_default();
                slot.0 += attribution.value(e).abs();
                slot.1 += 1;
            }
        }
    }
    let mut out: Vec<GlobalAttribution> = totals
        .into_iter()
        .map(|((class, feature), (total, n))| GlobalAttribution {
            class_label: class.map(|c| labels[c].clone()),
            feature,
            attribution: if n > 0 { total / n as f64 } else { 0.0 },
        })
        .collect();
    out.sort_by(|a, b| a.class_label.cmp(&b.class_label).then(b.attribution.total_cmp(&a.attribution)));
    Ok(out)
}

/// SQL of `ML.GLOBAL_EXPLAIN(MODEL meta [, STRUCT(class_level AS
/// class_level_explain)])`: `feature, attribution`, most important first; per
/// label, `class_label, feature, attribution`.
pub fn global_explain_sql(meta: &ModelMeta, class_level: bool) -> Result<String, MlError> {
    if meta.global_explain.is_empty() {
        return Err(MlError::Data(format!(
            "ML.GLOBAL_EXPLAIN: {}@{} was created without enable_global_explain = TRUE; create it with that option",
            meta.name, meta.version
        )));
    }
    let rows: Vec<&GlobalAttribution> =
        meta.global_explain.iter().filter(|g| g.class_label.is_some() == class_level).collect();
    let features = Arc::new(StringArray::from(rows.iter().map(|g| g.feature.clone()).collect::<Vec<_>>()));
    let attributions = Arc::new(Float64Array::from(rows.iter().map(|g| g.attribution).collect::<Vec<_>>()));
    let rank = Arc::new(Int64Array::from((0..rows.len() as i64).collect::<Vec<_>>()));
    let mut fields =
        vec![Field::new("feature", DataType::Utf8, false), Field::new("attribution", DataType::Float64, false)];
    let mut columns: Vec<Arc<dyn Array>> = vec![features, attributions];
    if class_level {
        fields.insert(0, Field::new("class_label", DataType::Utf8, false));
        let labels = rows.iter().map(|g| g.class_label.clone().unwrap_or_default()).collect::<Vec<_>>();
        columns.insert(0, Arc::new(StringArray::from(labels)));
    }
    fields.push(Field::new("__rank", DataType::Int64, false));
    columns.push(rank);
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns).map_err(|e| MlError::Internal(e.to_string()))?;
    let listed: Vec<String> =
        schema.fields().iter().filter(|f| f.name() != "__rank").map(|f| quote_ident(f.name())).collect();
    Ok(format!("SELECT {} FROM ({}) __g ORDER BY __rank", listed.join(", "), values_query(&schema, &[batch])?))
}
