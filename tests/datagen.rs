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
