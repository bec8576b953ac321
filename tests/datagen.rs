//! `sentio datagen` is deterministic: same seed, same bytes.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::support::{run_ok, sentio};

/// FNV-1a 64 of every file under `dir`, by relative path.
fn checksums(dir: &Path) -> BTreeMap<String, (u64, u64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                let mut h: u64 = 0xcbf2_9ce4_8422_2325;
                for b in &bytes {
                    h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
                }
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, (bytes.len() as u64, h));
            }
        }
    }
    out
}

fn sqlite_url(file: &Path) -> String {
    format!("sqlite:{}", file.display())
}

fn datagen(lake: &Path, opdb: &Path, seed: u64) -> String {
    run_ok(
        sentio()
            .args(["datagen", "--scale", "0.4", "--seed", &seed.to_string(), "--lake"])
            .arg(lake)
            .arg("--opdb")
            .arg(sqlite_url(opdb)),
        Duration::from_secs(300),
    )
    .stderr
}

#[tokio::test]
async fn same_seed_same_bytes_different_seed_different_data() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
    let report = datagen(&a.join("lake"), &a.join("opdb.sqlite"), 5);
    datagen(&b.join("lake"), &b.join("opdb.sqlite"), 5);
    datagen(&c.join("lake"), &c.join("opdb.sqlite"), 6);

    let (sa, sb, sc) = (checksums(&a.join("lake")), checksums(&b.join("lake")), checksums(&c.join("lake")));
    assert_eq!(sa.len(), 9, "8 Parquet parts and the CSV: {sa:?}");
    assert_eq!(sa, sb, "same seed must give the same bytes");
    assert_ne!(sa, sc, "another seed must give other data");

    let (da, db, dc) = (
        digest(&sqlite_url(&a.join("opdb.sqlite"))).await,
        digest(&sqlite_url(&b.join("opdb.sqlite"))).await,
        digest(&sqlite_url(&c.join("opdb.sqlite"))).await,
    );
    assert_eq!(da, db);
    assert_ne!(da, dc);
    assert_eq!(da[0].0, 800, "scale 0.4 has 800 sessions");

    // The row count the generator reports is what the lake holds.
    let reported: u64 = report
        .split("datagen: ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no frame count in {report}"));
    let f = run_ok(
        sentio()
            .args(["sql", "--format", "csv", "--lake"])
            .arg(a.join("lake"))
            .args(["-c", "SELECT COUNT(*) AS n, COUNT(DISTINCT session_id) AS s FROM training.frames"]),
        Duration::from_secs(120),
    );
    assert_eq!(f.stdout.trim(), format!("n,s\n{reported},800"));
}

/// A pool on the database at `url`, through sqlx alone (not Sentio's code).
async fn pool(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(url).await.unwrap_or_else(|e| panic!("{url}: {e}"))
}

/// Creates (or empties) database `name` on the server of `admin_url`.
async fn fresh_database(admin_url: &str, name: &str) {
    let pool = pool(admin_url).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}"))).execute(&pool).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&pool).await.unwrap();
    pool.close().await;
}

async fn digest(url: &str) -> Vec<(i64, i64, i64)> {
    let pool = pool(url).await;
    // SUM is NUMERIC/DECIMAL on PostgreSQL and MySQL: cast back to a 64-bit integer.
    let int = if url.starts_with("mysql:") { "SIGNED" } else { "BIGINT" };
    let mut out = Vec::new();
    for sql in [
        format!(
            "SELECT COUNT(*), CAST(SUM(session_id) AS {int}), CAST(SUM(media_id * 7 + viewer_id) AS {int}) \
             FROM sessions"
        ),
        format!("SELECT COUNT(*), CAST(SUM(media_id) AS {int}), CAST(SUM(duration_s) AS {int}) FROM media"),
    ] {
        let row: (i64, i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .fetch_one(&pool)
            .await
            .unwrap_or_else(|e| panic!("{url}: {sql}: {e}"));
        out.push(row);
    }
    pool.close().await;
    out
}

/// The same seed writes the same `media` and `sessions` rows into
/// PostgreSQL, MariaDB and SQLite.
#[tokio::test]
async fn opdb_tables_on_postgres_mariadb_and_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let name = "sentio_it_datagen";
    fresh_database("postgres://postgres@127.0.0.1:5432/postgres", name).await;
    fresh_database("mysql://root@127.0.0.1:3306/mysql", name).await;
    let pg = format!("postgres://postgres@127.0.0.1:5432/{name}");
    let my = format!("mysql://root@127.0.0.1:3306/{name}");
    let lite = sqlite_url(&dir.path().join("opdb.sqlite"));
    for url in [&pg, &my, &lite] {
        run_ok(
            sentio()
                .args(["datagen", "--scale", "0.2", "--seed", "8", "--lake"])
                .arg(dir.path().join("lake"))
                .args(["--opdb", url]),
            Duration::from_secs(120),
        );
    }
    let (p, m, l) = (digest(&pg).await, digest(&my).await, digest(&lite).await);
    assert_eq!(p[0].0, 400);
    assert_eq!(p, m, "PostgreSQL and MariaDB differ");
    assert_eq!(p, l, "PostgreSQL and SQLite differ");
}

/// `--dataset ratings`: MovieLens's files and columns, the same bytes for
/// the same seed, a typed Parquet copy and a `users` table, and structure a
/// recommender can learn — on held-out ratings, each user's and movie's
/// mean (learnt from the other ratings) predict far better than the overall
/// mean, and not better than the generator's noise allows.
#[test]
fn ratings_sample_has_movielens_layout_and_learnable_structure() {
    let dir = tempfile::tempdir().unwrap();
    let opdb = sqlite_url(&dir.path().join("opdb.sqlite"));
    let generate = |lake: &Path| {
        run_ok(
            sentio()
                .args(["datagen", "--dataset", "ratings", "--scale", "0.3", "--seed", "5", "--opdb", &opdb, "--lake"])
                .arg(lake),
            Duration::from_secs(300),
        )
    };
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    generate(&a);
    generate(&b);
    assert_eq!(checksums(&a), checksums(&b), "the same seed, the same bytes");
    let header =
        |f: &str| std::fs::read_to_string(a.join("adhoc").join(f)).unwrap().lines().next().unwrap().to_string();
    assert_eq!(header("ratings.csv"), "userId,movieId,rating,timestamp");
    assert_eq!(header("movies.csv"), "movieId,title,genres");
    assert_eq!(header("tags.csv"), "userId,movieId,tag,timestamp");

    let sql = |q: &str| {
        let f = run_ok(
            sentio()
                .args(["sql", "--no-progress", "--format", "csv", "--opdb", &opdb, "--lake"])
                .arg(&a)
                .args(["-c", q]),
            Duration::from_secs(300),
        );
        f.stdout.lines().nth(1).unwrap_or_default().to_string()
    };
    let counts = sql(
        "SELECT (SELECT COUNT(*) FROM adhoc.ratings) AS csv, (SELECT COUNT(*) FROM training.ratings) AS parquet, \
         (SELECT COUNT(DISTINCT user_id) FROM training.ratings) AS users, (SELECT COUNT(*) FROM opdb.users) AS opdb_users, \
         (SELECT COUNT(*) FROM adhoc.movies WHERE genres LIKE '%|%') > 0 AS several_genres",
    );
    let v: Vec<&str> = counts.split(',').collect();
    assert_eq!(v[0], v[1], "the Parquet copy holds every rating: {counts}");
    assert_eq!(v[2], v[3], "a users row per rating user: {counts}");
    assert!(v[0].parse::<u64>().unwrap() > 20_000 && v[4] == "true", "{counts}");
    let rmse = sql(
        "WITH r AS (SELECT user_id, movie_id, rating, hash_fraction(user_id * 1000000 + movie_id, 3) < 0.8 AS train \
                    FROM training.ratings), \
              mu AS (SELECT AVG(rating) AS m FROM r WHERE train), \
              ub AS (SELECT user_id, AVG(rating - m) AS bu FROM r CROSS JOIN mu WHERE train GROUP BY user_id), \
              ib AS (SELECT movie_id, AVG(rating - m - bu) AS bi FROM r CROSS JOIN mu JOIN ub USING (user_id) \
                     WHERE train GROUP BY movie_id) \
         SELECT SQRT(AVG(POWER(rating - m, 2))) AS by_mean, \
                SQRT(AVG(POWER(rating - m - COALESCE(bu, 0) - COALESCE(bi, 0), 2))) AS by_biases \
         FROM r CROSS JOIN mu LEFT JOIN ub USING (user_id) LEFT JOIN ib USING (movie_id) WHERE NOT train",
    );
    let (by_mean, by_biases) =
        rmse.split_once(',').map(|(a, b)| (a.parse::<f64>().unwrap(), b.parse::<f64>().unwrap())).unwrap();
    assert!(by_biases < 0.9 * by_mean, "biases explain the ratings: RMSE {by_biases} vs {by_mean} by the mean");
    assert!(by_biases > 0.52, "no better than the noise floor allows: {by_biases}");
}
