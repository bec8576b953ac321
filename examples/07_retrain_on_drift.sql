-- Job 7: retrain the emotion model only when the newest frames have drifted
-- from the rows it was trained on, and show the versions' metrics side by
-- side. Meant for a nightly timer (or cron) next to the cluster:
--   sentio sql --lake ./sentio-data/lake --opdb sqlite:./sentio-data/opdb.sqlite \
--     -f examples/07_retrain_on_drift.sql
-- Needs emotion_rf (examples/01_train_emotion.sql). The frames of a new day
-- arrive in training.frames with split = 'live'.

-- The newest day of frames, and how many of the model's features moved
-- there (Jensen-Shannon divergence of each numeric feature's histogram,
-- the largest change of a share for device and age group; 0.3 each).
DECLARE newest DATE DEFAULT (SELECT MAX(recorded_on) FROM training.frames);
DECLARE drifted INT64 DEFAULT (
  SELECT COUNT(*)
  FROM ML.VALIDATE_DATA_SKEW(MODEL emotion_rf,
         (SELECT f.*, s.device, s.age_group
          FROM training.frames f JOIN opdb.sessions s USING (session_id)
          WHERE f.recorded_on = newest))
  WHERE is_anomaly);

-- Retrain on the training and live frames only when something moved.
IF drifted > 0 THEN
  CREATE OR REPLACE MODEL emotion_rf
    OPTIONS (model_type = 'random_forest_classifier',
             input_label_cols = ['emotion'],
             num_parallel_tree = 40,
             max_tree_depth = 10,
             seed = 42)
  AS SELECT f.* EXCEPT (session_id, frame_no, subject_id, media_id, recorded_on, split),
            s.device,
            s.age_group
     FROM training.frames f
     JOIN opdb.sessions s USING (session_id)
     WHERE f.split IN ('train', 'live') AND hash_fraction(f.session_id, 1) < 0.8;
END IF;

-- Every version with its metrics on its held-out rows: a retrain shows as
-- a new last row.
SELECT version, created, training_rows, ROUND(accuracy, 3) AS accuracy, ROUND(f1_score, 3) AS f1_score,
       drifted AS features_drifted
FROM ml.models
WHERE name = 'emotion_rf'
ORDER BY version;
