//! The sample world: media items, viewers (subjects), viewing sessions and
//! the emotion process that the frames record.
//!
//! Every entity is a pure function of (seed, index), so any part of the data
//! can be generated on its own, in any order, in bounded memory.

use super::rng::Rng;

/// The emotion labels, in the order used for class means and profiles.
pub const EMOTIONS: [&str; 3] = ["happy", "angry", "sad"];
/// Number of feature columns `f00 … f31`.
pub const N_FEATURES: usize = 32;
/// Features `f00 … f11` carry signal; the rest are irrelevant noise.
pub const N_INFORMATIVE: usize = 12;
/// Frames per session are uniform in this range (mean 50).
pub const FRAMES_PER_SESSION: (u64, u64) = (20, 80);
/// Frames at scale 1.
pub const FRAMES_PER_SCALE: f64 = 100_000.0;
/// Share of subjects in the training split.
pub const TRAIN_SHARE: f64 = 0.8;

const COUNTRIES: [&str; 6] = ["DE", "US", "GB", "FR", "BR", "JP"];
const COUNTRY_WEIGHTS: [f64; 6] = [0.25, 0.3, 0.15, 0.1, 0.1, 0.1];
const DEVICES: [&str; 4] = ["mobile", "desktop", "tablet", "tv"];
const DEVICE_WEIGHTS: [f64; 4] = [0.5, 0.3, 0.12, 0.08];
const AGE_GROUPS: [&str; 5] = ["18-24", "25-34", "35-44", "45-54", "55+"];
const CATEGORIES: [&str; 6] = ["comedy", "drama", "news", "sports", "documentary", "ad"];
const BRANDS: [&str; 8] =
    ["Northwind", "Contoso", "Fabrikam", "Tailspin", "Wingtip", "Adventure", "Litware", "Proseware"];
const WORDS: [&str; 12] =
    ["Summer", "Night", "City", "Heroes", "Ocean", "Final", "Secret", "Golden", "Lost", "Road", "Winter", "Signal"];

/// Days since 1970-01-01 of 2024-01-01.
pub const EPOCH_2024: i32 = 19_723;

/// Sizes of a generated world.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct World {
    /// The seed everything derives from.
    pub seed: u64,
    /// Number of viewing sessions.
    pub sessions: u64,
    /// Number of viewers (subjects).
    pub subjects: u64,
    /// Number of media items.
    pub media: u64,
}

/// A media item.
#[derive(Debug, Clone, PartialEq)]
pub struct Media {
    pub media_id: i64,
    pub title: String,
    pub brand: &'static str,
    pub category: &'static str,
    pub duration_s: i32,
    /// Days since the epoch.
    pub published_on: i32,
    /// Probability of each emotion while watching it (sums to 1).
    pub profile: [f64; 3],
}

/// A viewing session.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub session_id: i64,
    pub media_id: i64,
    pub subject_id: i64,
    pub country: &'static str,
    pub device: &'static str,
    pub age_group: &'static str,
    /// Seconds since the epoch.
    pub started_at: i64,
    pub frames: u32,
}

impl World {
    /// The world for `scale` (1 ≈ 100k frames) and `seed`.
    pub fn new(scale: f64, seed: u64) -> Self {
        let mean_frames = (FRAMES_PER_SESSION.0 + FRAMES_PER_SESSION.1) as f64 / 2.0;
        let sessions = ((FRAMES_PER_SCALE * scale / mean_frames).round() as u64).max(1);
        Self {
            seed,
            sessions,
            subjects: (sessions / 4).max(1),
            media: ((sessions as f64).sqrt() * 4.5).round().max(20.0) as u64,
        }
    }

    /// Media item `i` (0-based).
    pub fn media(&self, i: u64) -> Media {
        let mut r = Rng::stream(self.seed, "media", i);
        let category_ix = (r.next_u64() % CATEGORIES.len() as u64) as usize;
        // Categories lean towards an emotion; each item varies around that.
        let lean: [[f64; 3]; 6] = [
            [0.7, 0.1, 0.2],
            [0.3, 0.2, 0.5],
            [0.25, 0.45, 0.3],
            [0.55, 0.3, 0.15],
            [0.35, 0.15, 0.5],
            [0.5, 0.25, 0.25],
        ];
        let mut p = [0.0; 3];
        for (k, v) in p.iter_mut().enumerate() {
            *v = (lean[category_ix][k] * (0.6 * r.normal()).exp()).max(0.02);
        }
        let total: f64 = p.iter().sum();
        p.iter_mut().for_each(|v| *v /= total);
        Media {
            media_id: 1000 + i as i64,
            title: format!("{} {} {}", *r.pick(&WORDS), *r.pick(&WORDS), i),
            brand: BRANDS[(r.next_u64() % BRANDS.len() as u64) as usize],
            category: CATEGORIES[category_ix],
            duration_s: r.range(15, 3600) as i32,
            published_on: EPOCH_2024 - 700 + r.range(0, 690) as i32,
            profile: p,
        }
    }

    /// Session `i` (0-based).
    pub fn session(&self, i: u64) -> Session {
        let mut r = Rng::stream(self.seed, "session", i);
        // Popularity: a few media items get most sessions.
        let u = r.f64();
        let media_ix = ((u * u * u) * self.media as f64) as u64 % self.media;
        let subject = r.next_u64() % self.subjects;
        let mut s = Rng::stream(self.seed, "subject", subject);
        Session {
            session_id: 100_000 + i as i64,
            media_id: 1000 + media_ix as i64,
            subject_id: 1 + subject as i64,
            country: COUNTRIES[s.weighted(&COUNTRY_WEIGHTS)],
            device: DEVICES[r.weighted(&DEVICE_WEIGHTS)],
            age_group: AGE_GROUPS[s.weighted(&[0.2, 0.3, 0.2, 0.15, 0.15])],
            started_at: i64::from(EPOCH_2024) * 86_400 + r.range(0, 365 * 86_400 - 1) as i64,
            frames: r.range(FRAMES_PER_SESSION.0, FRAMES_PER_SESSION.1) as u32,
        }
    }

    /// `train` or `test`, per subject, so no subject is in both.
    pub fn split(&self, subject_id: i64) -> &'static str {
        if sentio_udfs::hash_fraction_u64(subject_id as u64, self.seed) < TRAIN_SHARE { "train" } else { "test" }
    }

    /// Per-subject offsets of every feature (people differ).
    pub fn subject_offsets(&self, subject_id: i64) -> [f32; N_FEATURES] {
        let mut r = Rng::stream(self.seed, "subject-offsets", subject_id as u64);
        std::array::from_fn(|_| (0.6 * r.normal()) as f32)
    }

    /// Mean of each informative feature per emotion.
    pub fn class_means(&self) -> [[f32; N_INFORMATIVE]; 3] {
        let mut r = Rng::stream(self.seed, "class-means", 0);
        std::array::from_fn(|_| std::array::from_fn(|_| (0.9 * r.normal()) as f32))
    }

    /// Whether media item `i` is a hit: driven by the emotion shares of its
    /// sessions (its profile) plus noise.
    pub fn outcome_is_hit(&self, media: &Media) -> bool {
        let mut r = Rng::stream(self.seed, "outcome", media.media_id as u64);
        let [happy, angry, _sad] = media.profile;
        let logit = 7.0 * (happy - 0.45) - 5.0 * (angry - 0.22) + 0.8 * r.normal();
        r.f64() < 1.0 / (1.0 + (-logit).exp())
    }
}

/// Days since the epoch → `YYYY-MM-DD`.
pub fn date_string(days: i32) -> String {
    chrono::DateTime::from_timestamp(i64::from(days) * 86_400, 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// Seconds since the epoch → `YYYY-MM-DD HH:MM:SS`.
pub fn timestamp_string(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0).map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_scale() {
        let w = World::new(1.0, 42);
        assert_eq!(w.sessions, 2000);
        assert!(w.media >= 100 && w.subjects == 500);
        let big = World::new(1000.0, 42);
        assert_eq!(big.sessions, 2_000_000);
    }

    #[test]
    fn entities_are_pure() {
        let w = World::new(1.0, 7);
        assert_eq!(w.session(5), w.session(5));
        assert_eq!(w.media(3), w.media(3));
        let p: f64 = w.media(3).profile.iter().sum();
        assert!((p - 1.0).abs() < 1e-9);
        assert_eq!(date_string(EPOCH_2024), "2024-01-01");
    }

    #[test]
    fn both_outcomes_and_splits_occur() {
        let w = World::new(1.0, 42);
        let hits = (0..w.media).filter(|i| w.outcome_is_hit(&w.media(*i))).count() as u64;
        assert!(hits > w.media / 5 && hits < w.media * 4 / 5, "{hits} of {}", w.media);
        let train = (1..=w.subjects as i64).filter(|s| w.split(*s) == "train").count();
        assert!(train > 350 && train < 450, "{train}");
    }
}
