-- Job 1: train an emotion classifier on a subset of the training frames,
-- joined with the operational DB (the viewer's device and age group become
-- features next to the 32 frame features).
--
-- Runs as is on the sample data that `sentio demo` writes:
--   sentio sql --lake ./sentio-data/lake --opdb sqlite:./sentio-data/opdb.sqlite \
--     -f examples/01_train_emotion.sql
-- Training runs in the cluster; the client receives one row per statement.

-- The subset: the training split, a stable 80 % of its sessions
-- (hash_fraction gives a session the same number on every run and machine).
-- Every column but the label is a feature, bound by name; text columns are
-- one-hot encoded. Each run stores a new immutable version of emotion_rf.
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
   WHERE f.split = 'train' AND hash_fraction(f.session_id, 1) < 0.8;

-- The new version in the registry, with its metrics on the rows that
-- AUTO_SPLIT held out of training.
SELECT name, version, training_rows, eval_rows,
       ROUND(accuracy, 3) AS accuracy, ROUND(f1_score, 3) AS f1_score, ROUND(log_loss, 3) AS log_loss
FROM ml.models
WHERE name = 'emotion_rf'
ORDER BY version DESC
LIMIT 1;

-- The features whose splits separated the emotions best.
SELECT feature, ROUND(importance_gain, 2) AS importance_gain, importance_weight
FROM ML.FEATURE_IMPORTANCE(MODEL emotion_rf)
ORDER BY importance_gain DESC
LIMIT 5;
