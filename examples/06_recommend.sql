-- Job 6: a movie recommender from MovieLens-shaped ratings: prepare the
-- ratings, train a matrix factorization model, evaluate it on held-out
-- ratings, and write each user's ten best unseen movies into the
-- operational DB for the application to show.
--   sentio datagen --dataset ratings --lake ./sentio-data/lake --opdb sqlite:./sentio-data/opdb.sqlite
--   sentio sql --lake ./sentio-data/lake --opdb sqlite:./sentio-data/opdb.sqlite -f examples/06_recommend.sql
-- The real MovieLens download (ratings.csv, movies.csv, tags.csv) can be
-- dropped into the lake's adhoc/ folder in place of the sample: the
-- columns are MovieLens's own (CSV headers become lowercase: userid,
-- movieid).

-- Prepare and train: explicit ratings (0.5–5 stars) of movies that at least
-- three users rated; 20 % of the ratings are held out (seeded) for the
-- metrics. Each iteration solves every user, then every movie, in the
-- cluster where the ratings are.
CREATE OR REPLACE MODEL movie_mf
  OPTIONS (model_type = 'matrix_factorization',
           feedback_type = 'explicit',
           user_col = 'user_id',
           item_col = 'movie_id',
           rating_col = 'rating',
           num_factors = 8,
           l2_reg = 0.1,
           max_iterations = 10,
           data_split_method = 'RANDOM',
           data_split_eval_fraction = 0.2,
           seed = 42)
AS SELECT userid AS user_id, movieid AS movie_id, rating
   FROM adhoc.ratings
   WHERE movieid IN (SELECT movieid FROM adhoc.ratings GROUP BY movieid HAVING COUNT(*) >= 3);

-- How far predicted ratings are from the held-out ones (regression
-- metrics, as BigQuery ML reports them), and how training converged.
SELECT ROUND(mean_absolute_error, 3) AS mae, ROUND(mean_squared_error, 3) AS mse, ROUND(r2_score, 3) AS r2
FROM ML.EVALUATE(MODEL movie_mf);

SELECT iteration, ROUND(loss, 4) AS loss, duration_ms FROM ML.TRAINING_INFO(MODEL movie_mf) ORDER BY iteration;

-- One user's five best movies, with titles.
SELECT r.movie_id, m.title, ROUND(r.predicted_rating, 2) AS stars
FROM ML.RECOMMEND(MODEL movie_mf, (SELECT 1 AS user_id), STRUCT(5 AS top_n)) r
JOIN adhoc.movies m ON m.movieid = r.movie_id
ORDER BY stars DESC, r.movie_id;

-- Every user's ten best movies they have not rated, into the operational
-- DB in one transaction: the 100 best per user are chosen in the cluster,
-- the rated ones dropped, the first ten kept. The run id names the model
-- version, so a rerun replaces that version's rows.
INSERT INTO opdb.recommendations (run_id, user_id, movie_id, predicted_rating)
SELECT concat('movie_mf@', v.version), r.user_id, r.movie_id, r.predicted_rating
FROM (SELECT c.*, ROW_NUMBER() OVER (PARTITION BY c.user_id ORDER BY c.predicted_rating DESC, c.movie_id) AS place
      FROM ML.RECOMMEND(MODEL movie_mf, STRUCT(100 AS top_n)) c
      WHERE NOT EXISTS (SELECT 1 FROM adhoc.ratings s WHERE s.userid = c.user_id AND s.movieid = c.movie_id)) r
CROSS JOIN (SELECT MAX(version) AS version FROM ml.models WHERE name = 'movie_mf') v
WHERE r.place <= 10;

SELECT run_id, COUNT(*) AS recommendations, COUNT(DISTINCT user_id) AS users
FROM opdb.recommendations
GROUP BY run_id
ORDER BY run_id;
