-- Job 3: train a media classifier. Its features are the emotion classifier's
-- outputs aggregated per media item (the share of each emotion among its test
-- frames, the mean confidence); its label is the ground truth that people
-- collected in the ad hoc CSV (typed "HIT", " hit ", …: LOWER normalises it).
--
-- Runs as is after 02_validate_emotion.sql:
--   sentio sql --lake ./sentio-data/lake --opdb sqlite:./sentio-data/opdb.sqlite \
--     -f examples/03_train_media.sql

CREATE OR REPLACE MODEL media_hit
  OPTIONS (model_type = 'random_forest_classifier',
           input_label_cols = ['outcome'],
           num_parallel_tree = 50,
           max_tree_depth = 4,
           seed = 42)
AS SELECT e.happy_share, e.angry_share, e.sad_share, e.mean_confidence,
          LOWER(g.outcome) AS outcome
   FROM (SELECT s.media_id,
                AVG(CASE WHEN o.label = 'happy' THEN 1.0 ELSE 0.0 END) AS happy_share,
                AVG(CASE WHEN o.label = 'angry' THEN 1.0 ELSE 0.0 END) AS angry_share,
                AVG(CASE WHEN o.label = 'sad'   THEN 1.0 ELSE 0.0 END) AS sad_share,
                AVG(o.confidence) AS mean_confidence
         FROM opdb.emotion_outputs o
         JOIN opdb.sessions s USING (session_id)
         JOIN (SELECT MAX(version) AS version FROM ml.models WHERE name = 'emotion_rf') m
           ON o.version = m.version
         WHERE o.model = 'emotion_rf'
         GROUP BY s.media_id) e
   JOIN adhoc.media_ground_truth g USING (media_id)
   WHERE g.outcome IS NOT NULL;

-- The media items it learned from, per outcome.
SELECT name, version, training_rows, eval_rows, labels, ROUND(accuracy, 3) AS accuracy
FROM ml.models
WHERE name = 'media_hit'
ORDER BY version DESC
LIMIT 1;

-- Which emotion shares decide hits and misses.
SELECT feature, ROUND(importance_gain, 3) AS importance_gain
FROM ML.FEATURE_IMPORTANCE(MODEL media_hit)
ORDER BY importance_gain DESC;
