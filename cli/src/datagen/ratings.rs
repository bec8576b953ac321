//! `sentio datagen --dataset ratings`: MovieLens-shaped sample data — who
//! rated which movie how — with structure a recommender can learn.
//!
//! * `adhoc/ratings.csv` (`userId,movieId,rating,timestamp`),
//!   `adhoc/movies.csv` (`movieId,title,genres`, genres as
//!   `Adventure|Comedy`) and `adhoc/tags.csv` (`userId,movieId,tag,timestamp`)
//!   in MovieLens's own layout, so the real download can take their place;
//! * `training/ratings/part-00000.parquet`: the ratings typed (`user_id`,
//!   `movie_id`, `rating`, `rated_at`);
//! * a `users` table in the operational DB.
//!
//! A rating is `3.5 + user bias + movie bias + ⟨user factors, movie
//! factors⟩ + noise` ([`RANK`] factors, noise of standard deviation
//! [`NOISE_SD`]), rounded to half stars within 0.5–5; which movies a user
//! rates follows the movies' popularity (log-normal, so a few are rated by
//! many). Scale 1 is about 100k ratings, like MovieLens 100K: a user rates
//! about 75 movies and a movie is rated about 60 times.
//!
//! [`Ratings::dense`] keeps the scale's number of ratings but gives them to
//! fewer users and movies, each with as many ratings as asked: data on which
//! a learner can pin every user's and movie's factors down, so its error
//! can be held against the generator's noise floor (about 400 ratings a
//! user and a movie bring ALS with 10 factors within 2 % of it; 75 leave
//! any learner 15–20 % above it).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Builder, Int64Builder, TimestampSecondBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;

use super::rng::Rng;
use super::world::date_string;

/// Latent factors of users and movies.
pub const RANK: usize = 8;
/// Standard deviation of a rating's noise before rounding: the floor of any
/// model's error (with the half-star rounding, an RMSE of about 0.52).
pub const NOISE_SD: f64 = 0.5;
/// The mean rating before biases.
pub const MEAN: f64 = 3.5;

/// MovieLens's genres.
pub const GENRES: [&str; 18] = [
    "Action",
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
];

const TAGS: [&str; 12] = [
    "funny",
    "dark",
    "classic",
    "atmospheric",
    "twist ending",
    "slow",
    "visually stunning",
    "quirky",
    "overrated",
    "based on a book",
    "great soundtrack",
    "thought-provoking",
];

const WORDS: [&str; 24] = [
    "Midnight", "River", "Empire", "Silent", "Garden", "Last", "Summer", "Stranger", "Golden", "City", "Winter",
    "Shadow", "Heart", "Road", "Storm", "Little", "Secret", "Island", "Broken", "Star", "House", "Night", "Wild",
    "Dream",
];

/// The sample's size and seed; every value is a pure function of them.
#[derive(Debug, Clone, Copy)]
pub struct Ratings {
    /// Users.
    pub users: u64,
    /// Movies.
    pub movies: u64,
    /// Seed.
    pub seed: u64,
    /// The log of the median number of movies a user rates (log-normal
    /// around it, at least 5, at most half the movies).
    log_per_user: f64,
}

/// Median ratings a user makes by default: e⁴ ≈ 55 (a mean of about 75, as
/// in MovieLens 100K).
const DEFAULT_LOG_PER_USER: f64 = 4.0;
/// The spread of the log of a user's number of ratings.
const LOG_PER_USER_SD: f64 = 0.8;

/// A user's or movie's latent traits.
struct Latent {
    bias: f64,
    factors: [f64; RANK],
}

fn latent(seed: u64, tag: &str, id: u64, bias_sd: f64) -> Latent {
    let mut r = Rng::stream(seed, tag, id);
    let bias = bias_sd * r.normal();
    let mut factors = [0.0; RANK];
    for f in &mut factors {
        *f = 0.4 * r.normal();
    }
    Latent { bias, factors }
}

/// Rounds to half stars within 0.5–5.
fn half_stars(x: f64) -> f64 {
    ((x * 2.0).round() / 2.0).clamp(0.5, 5.0)
}

/// 2015-01-01 and 2023-12-31, in seconds since 1970.
const FIRST_SECOND: i64 = 1_420_070_400;
const LAST_SECOND: i64 = 1_703_980_800;

impl Ratings {
    /// The sample for `scale` (1 ≈ 100k ratings) and `seed`.
    pub fn new(scale: f64, seed: u64) -> Self {
        let users = ((1_000.0 * scale).round() as u64).max(20);
        let movies = ((1_700.0 * scale.powf(0.8)).round() as u64).max(40);
        Self { users, movies, seed, log_per_user: DEFAULT_LOG_PER_USER }
    }

    /// About as many ratings as [`Ratings::new`] for `scale` (fewer where
    /// the cap of half the movies a user cuts the log-normal's tail), by
    /// users who rate `per_user` movies each (the median), and as many
    /// movies as users — at least twice `per_user` — so a movie, too, has
    /// about as many ratings as a user.
    pub fn dense(scale: f64, per_user: u64, seed: u64) -> Self {
        let per_user = per_user.max(5) as f64;
        // The mean of the log-normal number of ratings a user makes.
        let mean = per_user * (LOG_PER_USER_SD * LOG_PER_USER_SD / 2.0).exp();
        let users = ((100_000.0 * scale / mean).round() as u64).max(20);
        let movies = users.max(2 * per_user as u64);
        Self { users, movies, seed, log_per_user: per_user.ln() }
    }

    /// MovieLens-style movie ids: 1, 2, …
    fn movie_id(m: u64) -> u64 {
        m + 1
    }

    /// How many users rate a movie, relatively (log-normal: a few very
    /// popular, a long tail).
    fn popularity(&self, m: u64) -> f64 {
        let mut r = Rng::stream(self.seed, "ml-popularity", m);
        (1.3 * r.normal()).exp()
    }

    fn movie(&self, m: u64) -> Latent {
        latent(self.seed, "ml-movie", m, 0.45)
    }

    fn user(&self, u: u64) -> Latent {
        latent(self.seed, "ml-user", u, 0.35)
    }

    /// A movie's genres: those whose factor (genre `g` follows factor `g %
    /// RANK`) is high for it, one at least, three at most.
    fn genres(&self, m: u64, latent: &Latent) -> Vec<&'static str> {
        let mut r = Rng::stream(self.seed, "ml-genres", m);
        let mut scored: Vec<(f64, usize)> =
            (0..GENRES.len()).map(|g| (latent.factors[g % RANK] + 0.3 * r.normal(), g)).collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let n = 1 + (r.range(0, 2) as usize);
        let mut chosen: Vec<usize> = scored.iter().take(n).map(|(_, g)| *g).collect();
        chosen.sort_unstable();
        chosen.into_iter().map(|g| GENRES[g]).collect()
    }

    /// `movies.csv`.
    pub fn movies_csv(&self) -> String {
        let mut out = String::from("movieId,title,genres\n");
        for m in 0..self.movies {
            let mut r = Rng::stream(self.seed, "ml-title", m);
            let words = 1 + r.range(0, 2) as usize;
            let mut title: Vec<&str> = (0..words).map(|_| WORDS[r.range(0, WORDS.len() as u64 - 1) as usize]).collect();
            title.dedup();
            let mut title = title.join(" ");
            if r.chance(0.08) {
                // As MovieLens writes "American President, The".
                title = format!("{title}, The");
            }
            let title = format!("{title} ({})", 1930 + r.range(0, 93));
            let title = if title.contains(',') { format!("\"{title}\"") } else { title };
            let genres = self.genres(m, &self.movie(m)).join("|");
            out.push_str(&format!("{},{title},{genres}\n", Self::movie_id(m)));
        }
        out
    }

    /// The movies user `u` rated, most popular first drawn (weighted
    /// sampling without replacement), and when.
    fn rated_by(&self, u: u64, weights: &[f64]) -> Vec<(u64, i64)> {
        let mut r = Rng::stream(self.seed, "ml-rated", u);
        let wanted =
            ((self.log_per_user + LOG_PER_USER_SD * r.normal()).exp().round() as u64).clamp(5, self.movies / 2);
        // Exponential keys: the smallest `wanted` are a weighted sample.
        let mut keys: Vec<(f64, u64)> =
            (0..self.movies).map(|m| (-r.f64().max(1e-300).ln() / weights[m as usize], m)).collect();
        keys.select_nth_unstable_by(wanted as usize - 1, |a, b| a.0.total_cmp(&b.0));
        let mut chosen: Vec<u64> = keys[..wanted as usize].iter().map(|(_, m)| *m).collect();
        chosen.sort_unstable();
        let start = FIRST_SECOND + r.range(0, (LAST_SECOND - FIRST_SECOND) as u64 / 2) as i64;
        chosen.into_iter().map(|m| (m, start + r.range(0, 90 * 86_400) as i64)).collect()
    }

    /// Every rating: `(user id, movie id, rating, timestamp)`, by user.
    pub fn ratings(&self) -> Vec<(u64, u64, f64, i64)> {
        let weights: Vec<f64> = (0..self.movies).map(|m| self.popularity(m)).collect();
        let movies: Vec<Latent> = (0..self.movies).map(|m| self.movie(m)).collect();
        let mut out = Vec::new();
        for u in 0..self.users {
            let user = self.user(u);
            let mut noise = Rng::stream(self.seed, "ml-noise", u);
            for (m, at) in self.rated_by(u, &weights) {
                let movie = &movies[m as usize];
                let affinity: f64 = user.factors.iter().zip(&movie.factors).map(|(a, b)| a * b).sum();
                let rating = half_stars(MEAN + user.bias + movie.bias + affinity + NOISE_SD * noise.normal());
                out.push((u + 1, Self::movie_id(m), rating, at));
            }
        }
        out
    }

    /// `ratings.csv` of `ratings`.
    pub fn ratings_csv(ratings: &[(u64, u64, f64, i64)]) -> String {
        let mut out = String::from("userId,movieId,rating,timestamp\n");
        for (u, m, r, at) in ratings {
            out.push_str(&format!("{u},{m},{r:.1},{at}\n"));
        }
        out
    }

    /// `tags.csv`: a few ratings come with a tag that fits the movie's
    /// first genre.
    pub fn tags_csv(&self, ratings: &[(u64, u64, f64, i64)]) -> String {
        let mut out = String::from("userId,movieId,tag,timestamp\n");
        for (i, (u, m, _, at)) in ratings.iter().enumerate() {
            let mut r = Rng::stream(self.seed, "ml-tag", i as u64);
            if r.chance(0.03) {
                let tag = TAGS[((m * 7 + r.range(0, 2)) % TAGS.len() as u64) as usize];
                out.push_str(&format!("{u},{m},{tag},{}\n", at + r.range(0, 3_600) as i64));
            }
        }
        out
    }

    /// `training/ratings/part-00000.parquet` of `ratings`.
    pub fn ratings_parquet(ratings: &[(u64, u64, f64, i64)]) -> Result<Vec<u8>, String> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Int64, false),
            Field::new("movie_id", DataType::Int64, false),
            Field::new("rating", DataType::Float64, false),
            Field::new("rated_at", DataType::Timestamp(TimeUnit::Second, Some("UTC".into())), false),
        ]));
        let (mut users, mut movies, mut values) = (Int64Builder::new(), Int64Builder::new(), Float64Builder::new());
        let mut at = TimestampSecondBuilder::new().with_timezone("UTC");
        for (u, m, r, t) in ratings {
            users.append_value(*u as i64);
            movies.append_value(*m as i64);
            values.append_value(*r);
            at.append_value(*t);
        }
        let columns: Vec<ArrayRef> =
            vec![Arc::new(users.finish()), Arc::new(movies.finish()), Arc::new(values.finish()), Arc::new(at.finish())];
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns).map_err(|e| e.to_string())?;
        let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new(&mut buf, schema, Some(props)).map_err(|e| e.to_string())?;
        w.write(&batch).map_err(|e| e.to_string())?;
        w.close().map_err(|e| e.to_string())?;
        Ok(buf)
    }

    /// The `users` table's rows: `(user_id, country, age_group, signed_up)`.
    pub fn users_rows(&self) -> Vec<(u64, &'static str, &'static str, String)> {
        const COUNTRIES: [&str; 6] = ["US", "DE", "GB", "FR", "IN", "BR"];
        const AGES: [&str; 5] = ["18-24", "25-34", "35-44", "45-54", "55+"];
        (0..self.users)
            .map(|u| {
                let mut r = Rng::stream(self.seed, "ml-users", u);
                let country = COUNTRIES[r.range(0, COUNTRIES.len() as u64 - 1) as usize];
                let age = AGES[r.range(0, AGES.len() as u64 - 1) as usize];
                let days = (FIRST_SECOND / 86_400) as i32 - r.range(0, 2_000) as i32;
                (u + 1, country, age, date_string(days))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratings_are_seeded_skewed_and_in_half_stars() {
        let s = Ratings::new(0.2, 7);
        let ratings = s.ratings();
        assert_eq!(ratings, Ratings::new(0.2, 7).ratings(), "the same seed, the same ratings");
        assert_ne!(ratings, Ratings::new(0.2, 8).ratings());
        assert!(ratings.len() > 10_000, "{} ratings", ratings.len());
        assert!(ratings.iter().all(|(_, _, r, _)| (0.5..=5.0).contains(r) && (r * 2.0).fract() == 0.0));
        let mut pairs: Vec<(u64, u64)> = ratings.iter().map(|(u, m, _, _)| (*u, *m)).collect();
        pairs.sort_unstable();
        let n = pairs.len();
        pairs.dedup();
        assert_eq!(pairs.len(), n, "each user rates a movie once");
        let mut per_movie = vec![0u64; s.movies as usize + 1];
        for (_, m, _, _) in &ratings {
            per_movie[*m as usize] += 1;
        }
        per_movie.sort_unstable_by(|a, b| b.cmp(a));
        let top: u64 = per_movie[..per_movie.len() / 10].iter().sum();
        assert!(top as f64 > 0.3 * n as f64, "the top tenth of movies get a third of the ratings: {top} of {n}");
        let csv = s.movies_csv();
        assert!(
            csv.starts_with("movieId,title,genres\n") && csv.contains('|') && csv.contains(", The ("),
            "{}",
            &csv[..300]
        );
    }

    #[test]
    fn a_dense_sample_gives_users_and_movies_the_ratings_asked_for() {
        let s = Ratings::dense(1.0, 150, 3);
        assert_eq!((s.users, s.movies), (484, 484), "100k ratings of 150 (mean 206) a user");
        let ratings = s.ratings();
        // 100k less the tail cut at half the movies (242 a user).
        assert!((70_000..100_000).contains(&ratings.len()), "{} ratings", ratings.len());
        let mut per_user = vec![0u64; s.users as usize];
        let mut per_movie = vec![0u64; s.movies as usize];
        for (u, m, _, _) in &ratings {
            per_user[*u as usize - 1] += 1;
            per_movie[*m as usize - 1] += 1;
        }
        per_user.sort_unstable();
        let median = per_user[per_user.len() / 2];
        assert!((130..=170).contains(&median), "a user's median count {median}");
        assert!(per_user[0] >= 5 && *per_user.last().unwrap() <= s.movies / 2);
        per_movie.sort_unstable();
        let median_movie = per_movie[per_movie.len() / 2];
        assert!(median_movie >= 100, "the median movie is rated {median_movie} times");
        assert_eq!(ratings, Ratings::dense(1.0, 150, 3).ratings(), "seeded");
        let small = Ratings::dense(0.01, 400, 3);
        assert_eq!((small.users, small.movies), (20, 800), "never fewer than 20 users, 2 × 400 movies");
    }
}
