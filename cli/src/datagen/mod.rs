//! `sentio datagen`: the deterministic sample lake and operational DB of the
//! product brief.
//!
//! * `training/frames/part-NNNNN.parquet` — annotated video frames;
//! * `adhoc/media_ground_truth.csv` — media outcomes with realistic dirt;
//! * `media` and `sessions` in the operational DB;
//! * with `--dataset ratings`, MovieLens-shaped ratings instead
//!   ([`ratings`]).
//!
//! Scale 1 is about 100k frames. Every file is a pure function of the seed and
//! its index, built in bounded memory and written as soon as it is ready, so
//! 100M frames (scale 1000, 400 files) need no more memory than a few files.

pub mod adhoc;
pub mod frames;
pub mod opdb;
pub mod ratings;
pub use sentio_udfs::rng;
pub mod world;

use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::datasource::listing::ListingTableUrl;
use datafusion::execution::object_store::ObjectStoreRegistry;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use sentio_sql::SentioError;
use sentio_sql::config::S3Config;
use sentio_sql::lake::{LakeError, lake_root_url};
use sentio_sql::object_store::SentioObjectStoreRegistry;

use crate::error::{CliError, Result};
use world::World;

/// What to generate.
#[derive(Debug, Clone)]
pub struct DatagenOptions {
    /// Lake root: a folder or `s3://bucket/prefix`.
    pub lake: String,
    /// Operational DB URL; `None` skips the database tables.
    pub opdb_url: Option<String>,
    /// 1 ≈ 100k frames.
    pub scale: f64,
    /// Seed of everything.
    pub seed: u64,
    /// Ratings only: the median movies a user rates, for a dense sample
    /// ([`ratings::Ratings::dense`]); `None` is MovieLens's sparsity.
    pub ratings_per_user: Option<u64>,
    /// S3 settings for an `s3://` lake.
    pub s3: S3Config,
}

/// What was generated.
#[derive(Debug, Clone, PartialEq)]
pub struct DatagenReport {
    pub frames: u64,
    pub frame_files: u64,
    pub sessions: u64,
    pub media: u64,
    pub elapsed: Duration,
}

impl std::fmt::Display for DatagenReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} frames in {} Parquet files, {} sessions, {} media items ({:.1} s)",
            self.frames,
            self.frame_files,
            self.sessions,
            self.media,
            self.elapsed.as_secs_f64()
        )
    }
}

fn lake_err(url: &str) -> impl Fn(object_store::Error) -> LakeError + '_ {
    move |e| LakeError::unreadable(url, e)
}

/// What the ratings sample holds.
#[derive(Debug, Clone, PartialEq)]
pub struct RatingsReport {
    pub ratings: u64,
    pub users: u64,
    pub movies: u64,
    pub elapsed: Duration,
}

impl std::fmt::Display for RatingsReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ratings of {} movies by {} users ({:.1} s)",
            self.ratings,
            self.movies,
            self.users,
            self.elapsed.as_secs_f64()
        )
    }
}

/// Generates the MovieLens-shaped ratings sample ([`ratings`]).
pub async fn run_ratings(opts: &DatagenOptions) -> Result<RatingsReport> {
    if !(opts.scale > 0.0 && opts.scale.is_finite()) {
        return Err(SentioError::Config(format!("--scale must be a positive number, got {}", opts.scale)).into());
    }
    let sample = match opts.ratings_per_user {
        None => ratings::Ratings::new(opts.scale, opts.seed),
        Some(n) if (5..=100_000).contains(&n) => ratings::Ratings::dense(opts.scale, n, opts.seed),
        Some(n) => {
            return Err(SentioError::Config(format!("--ratings-per-user must be between 5 and 100000, got {n}")).into());
        }
    };
    let started = Instant::now();
    let root = lake_root_url(&opts.lake)?;
    let root_url = ListingTableUrl::parse(&root)?;
    let store = SentioObjectStoreRegistry::new(opts.s3.clone()).get_store(root_url.object_store().as_ref())?;
    let prefix = root_url.prefix().clone();
    let at = |parts: &[&str]| Path::from_iter(prefix.parts().chain(parts.iter().map(|p| (*p).into())));
    let (all, movies_csv) = tokio::task::spawn_blocking(move || (sample.ratings(), sample.movies_csv()))
        .await
        .map_err(|e| LakeError::unreadable(&root, e))?;
    let parquet = ratings::Ratings::ratings_parquet(&all).map_err(|message| LakeError::unreadable(&root, message))?;
    let files = [
        (at(&["adhoc", "ratings.csv"]), ratings::Ratings::ratings_csv(&all).into_bytes()),
        (at(&["adhoc", "movies.csv"]), movies_csv.into_bytes()),
        (at(&["adhoc", "tags.csv"]), sample.tags_csv(&all).into_bytes()),
        (at(&["training", "ratings", "part-00000.parquet"]), parquet),
    ];
    for (path, bytes) in files {
        store.put(&path, PutPayload::from(bytes)).await.map_err(lake_err(&root))?;
    }
    if let Some(url) = &opts.opdb_url {
        opdb::write_users(url, &sample.users_rows()).await?;
    }
    Ok(RatingsReport {
        ratings: all.len() as u64,
        users: sample.users,
        movies: sample.movies,
        elapsed: started.elapsed(),
    })
}

/// Generates the sample data.
pub async fn run(opts: &DatagenOptions) -> Result<DatagenReport> {
    if !(opts.scale > 0.0 && opts.scale.is_finite()) {
        return Err(SentioError::Config(format!("--scale must be a positive number, got {}", opts.scale)).into());
    }
    let started = Instant::now();
    let world = World::new(opts.scale, opts.seed);
    let root = lake_root_url(&opts.lake)?;
    let root_url = ListingTableUrl::parse(&root)?;
    let registry = SentioObjectStoreRegistry::new(opts.s3.clone());
    let store = registry.get_store(root_url.object_store().as_ref())?;
    let prefix = root_url.prefix().clone();
    let frames_dir = Path::from_iter(prefix.parts().chain(["training".into(), "frames".into()]));

    // Replace our own outputs only: stale parts of an earlier, larger run
    // would otherwise stay in the table.
    let old: Vec<Path> = store
        .list(Some(&frames_dir))
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .or_else(|e| match e {
            object_store::Error::NotFound { .. } => Ok(vec![]),
            e => Err(e),
        })
        .map_err(lake_err(&root))?;
    for p in old {
        store.delete(&p).await.map_err(lake_err(&root))?;
    }

    let n_files = frames::file_count(&world);
    let parallel = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let frames_written: u64 = futures::stream::iter(0..n_files)
        .map(|f| {
            let store: Arc<dyn ObjectStore> = Arc::clone(&store);
            let path = frames_dir.clone().join(format!("part-{f:05}.parquet"));
            let root = root.clone();
            async move {
                let (bytes, rows) = tokio::task::spawn_blocking(move || frames::build_file(&world, f, n_files))
                    .await
                    .map_err(|e| LakeError::unreadable(&root, e))?
                    .map_err(|message| LakeError::unreadable(&root, message))?;
                store.put(&path, PutPayload::from(bytes)).await.map_err(lake_err(&root))?;
                Ok::<u64, CliError>(rows)
            }
        })
        .buffer_unordered(parallel)
        .try_fold(0u64, |acc, rows| async move { Ok(acc + rows) })
        .await?;

    let (csv, media_rows) = adhoc::ground_truth_csv(&world);
    let csv_path = Path::from_iter(prefix.parts().chain(["adhoc".into(), "media_ground_truth.csv".into()]));
    store.put(&csv_path, PutPayload::from(csv.into_bytes())).await.map_err(lake_err(&root))?;

    if let Some(url) = &opts.opdb_url {
        opdb::write(&world, url).await?;
    }
    Ok(DatagenReport {
        frames: frames_written,
        frame_files: n_files,
        sessions: world.sessions,
        media: media_rows,
        elapsed: started.elapsed(),
    })
}
