-- Job 5: statistics over the training data, the ad hoc data, the operational
-- DB and their combination. Everything is computed in the cluster; only the
-- result rows reach the client.
-- Runs as is on the sample data that `sentio demo` writes:
--   sentio sql --lake ./sentio-data/lake --opdb sqlite:./sentio-data/opdb.sqlite \
--     -f examples/05_statistics.sql

-- 1. Size of the training data: frames, sessions, viewers, media items, days.
SELECT split,
       COUNT(*)                   AS frames,
       COUNT(DISTINCT session_id) AS sessions,
       COUNT(DISTINCT subject_id) AS subjects,
       COUNT(DISTINCT media_id)   AS media_items,
       MIN(recorded_on)           AS first_day,
       MAX(recorded_on)           AS last_day
FROM training.frames
GROUP BY split
ORDER BY split;

-- 2. Class balance of the emotion annotations, per split.
SELECT split,
       emotion,
       COUNT(*) AS frames,
       ROUND(100.0 * COUNT(*) / SUM(COUNT(*)) OVER (PARTITION BY split), 1) AS pct
FROM training.frames
GROUP BY split, emotion
ORDER BY split, emotion;

-- 3. How the first informative features separate the emotions.
SELECT emotion,
       ROUND(AVG(f00), 3)    AS mean_f00,
       ROUND(STDDEV(f00), 3) AS sd_f00,
       ROUND(AVG(f01), 3)    AS mean_f01,
       ROUND(AVG(f31), 3)    AS mean_f31_noise
FROM training.frames
GROUP BY emotion
ORDER BY emotion;

-- 4. The ad hoc ground truth as written, and what survives typing.
SELECT COUNT(*)                                          AS raw_rows,
       (SELECT COUNT(*) FROM adhoc.media_ground_truth)   AS typed_rows,
       (SELECT COUNT(*) FROM adhoc.media_ground_truth
         WHERE media_id IS NULL)                         AS rows_without_media_id,
       (SELECT COUNT(*) FROM adhoc.media_ground_truth
         WHERE survey_score IS NULL)                     AS rows_without_score
FROM adhoc.media_ground_truth_raw;

-- 5. Outcomes: hits and misses (labels normalised: people type "HIT", " hit ").
SELECT LOWER(outcome)               AS outcome,
       COUNT(*)                     AS media_items,
       ROUND(AVG(survey_score), 2)  AS mean_survey_score
FROM adhoc.media_ground_truth
WHERE media_id IS NOT NULL AND outcome IS NOT NULL
GROUP BY LOWER(outcome)
ORDER BY outcome;

-- 6. Combination: the emotion shares of the frames of hits and misses.
SELECT LOWER(g.outcome) AS outcome,
       f.emotion,
       COUNT(*)         AS frames,
       ROUND(100.0 * COUNT(*) / SUM(COUNT(*)) OVER (PARTITION BY LOWER(g.outcome)), 1) AS pct
FROM training.frames f
JOIN adhoc.media_ground_truth g ON f.media_id = g.media_id
WHERE g.outcome IS NOT NULL
GROUP BY LOWER(g.outcome), f.emotion
ORDER BY outcome, f.emotion;

-- 7. The operational DB: sessions and viewers per country.
SELECT country,
       COUNT(*)                  AS sessions,
       COUNT(DISTINCT viewer_id) AS viewers,
       COUNT(DISTINCT media_id)  AS media_items
FROM opdb.sessions
GROUP BY country
ORDER BY sessions DESC, country;

-- 8. Every column of the sessions table described (BigQuery ML's
--    ML.DESCRIBE_DATA): nulls, distinct values, ranges, most frequent values.
SELECT name, num_rows, num_nulls, "unique", min, max, top_values
FROM ML.DESCRIBE_DATA(TABLE opdb.sessions, STRUCT(3 AS top_k))
ORDER BY name;

-- 9. All three together: frames per media category and outcome.
SELECT m.category,
       LOWER(g.outcome) AS outcome,
       COUNT(*)         AS frames
FROM training.frames f
JOIN opdb.media m USING (media_id)
JOIN adhoc.media_ground_truth g USING (media_id)
WHERE g.outcome IS NOT NULL
GROUP BY m.category, LOWER(g.outcome)
ORDER BY m.category, outcome;
