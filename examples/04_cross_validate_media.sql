-- Job 4: cross-validate the media classifier (stratified, seeded 5-fold) and
-- store the per-fold results in the operational DB's media_cv_results.
--
-- Runs as is after 03_train_media.sql:
--   sentio sql --lake ./sentio-data/lake --opdb sqlite:./sentio-data/opdb.sqlite \
--     -f examples/04_cross_validate_media.sql

-- ML.CROSS_VALIDATE retrains media_hit's model type and options on each
-- fold's complement and evaluates it on the fold: one row per fold and
-- metric, plus the mean and standard deviation. The rows are also kept in
-- the lake (ml.cross_validations); here they also go to the operational DB,
-- in one short transaction. The query is 03_train_media.sql's training query
-- (scripts run on their own, so it is written out here too): change both
-- together.
INSERT INTO opdb.media_cv_results (run_id, model, version, num_folds, fold, metric, value, cross_validated_at)
SELECT run_id, model, version, num_folds, fold, metric, value, cross_validated_at
FROM ML.CROSS_VALIDATE(
       MODEL media_hit,
       (SELECT e.happy_share, e.angry_share, e.sad_share, e.mean_confidence,
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
        WHERE g.outcome IS NOT NULL),
       STRUCT(5 AS num_folds));

-- The latest run's summary, read back from the operational DB.
SELECT c.metric, ROUND(MAX(CASE WHEN c.fold = 'mean' THEN c.value END), 3) AS mean,
       ROUND(MAX(CASE WHEN c.fold = 'stddev' THEN c.value END), 3) AS stddev
FROM opdb.media_cv_results c
JOIN (SELECT run_id FROM ml.cross_validations WHERE model = 'media_hit'
      ORDER BY cross_validated_at DESC LIMIT 1) l
  ON c.run_id = l.run_id
GROUP BY c.metric
ORDER BY c.metric;
