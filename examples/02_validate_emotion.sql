-- Job 2: validate the emotion classifier on the test split (subjects the
-- model never saw): the metrics are stored in ml.evaluations, and every test
-- frame's label goes into the operational DB's emotion_outputs table.
--
-- Runs as is after 01_train_emotion.sql:
--   sentio sql --lake ./sentio-data/lake --opdb sqlite:./sentio-data/opdb.sqlite \
--     -f examples/02_validate_emotion.sql

-- Metrics on the test split; also stored in ml.evaluations with the model
-- version and a fingerprint of the query.
SELECT ROUND(accuracy, 3) AS accuracy, ROUND(precision, 3) AS precision, ROUND(recall, 3) AS recall,
       ROUND(f1_score, 3) AS f1_score, ROUND(log_loss, 3) AS log_loss, ROUND(roc_auc, 3) AS roc_auc
FROM ML.EVALUATE(MODEL emotion_rf,
                 (SELECT f.*, s.device, s.age_group
                  FROM training.frames f JOIN opdb.sessions s USING (session_id)
                  WHERE f.split = 'test'));

-- Which emotions it confuses: one row per true label, one column per predicted one.
SELECT *
FROM ML.CONFUSION_MATRIX(MODEL emotion_rf,
                         (SELECT f.*, s.device, s.age_group
                          FROM training.frames f JOIN opdb.sessions s USING (session_id)
                          WHERE f.split = 'test'))
ORDER BY expected_label;

-- Every test frame's label and confidence (the winning class's probability)
-- into the operational DB. The rows are staged, then published in one short
-- transaction, so the table never holds half of them; the run id names the
-- model version, so rerunning this script replaces that version's rows
-- instead of adding a second copy.
INSERT INTO opdb.emotion_outputs (run_id, session_id, frame_no, model, version, label, confidence)
SELECT concat('emotion_rf@', m.version, '/test'),
       p.session_id,
       p.frame_no,
       'emotion_rf',
       m.version,
       p.predicted_emotion,
       greatest(get_field(array_element(p.predicted_emotion_probs, 1), 'prob'),
                get_field(array_element(p.predicted_emotion_probs, 2), 'prob'),
                get_field(array_element(p.predicted_emotion_probs, 3), 'prob'))
FROM ML.PREDICT(MODEL emotion_rf,
                (SELECT f.*, s.device, s.age_group
                 FROM training.frames f JOIN opdb.sessions s USING (session_id)
                 WHERE f.split = 'test')) p
CROSS JOIN (SELECT MAX(version) AS version FROM ml.models WHERE name = 'emotion_rf') m;

-- What landed in the operational DB for the latest version.
SELECT o.label, COUNT(*) AS frames, ROUND(AVG(o.confidence), 3) AS mean_confidence
FROM opdb.emotion_outputs o
JOIN (SELECT MAX(version) AS version FROM ml.models WHERE name = 'emotion_rf') m ON o.version = m.version
WHERE o.model = 'emotion_rf'
GROUP BY o.label
ORDER BY o.label;
