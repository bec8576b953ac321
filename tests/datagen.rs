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

fn datagen(lake: &Path, opdb: &Path, seed: u64) -> String {
    run_ok(
        sentio()
            .args(["datagen", "--scale", "0.4", "--seed", &seed.to_string(), "--lake"])
            .arg(lake)
            .arg("--opdb")
            .arg(format!("sqlite:{}", opdb.display())),
        Duration::from_secs(300),
    )
    .stderr
}

async fn table_digest(opdb: &Path) -> Vec<(i64, i64, i64)> {
    let pool = sentio_sql::datagen::opdb::connect(&format!("sqlite:{}", opdb.display())).await.unwrap();
    let mut out = Vec::new();
    for sql in [
        "SELECT COUNT(*), SUM(session_id), SUM(media_id * 7 + viewer_id) FROM sessions",
        "SELECT COUNT(*), SUM(media_id), SUM(duration_s) FROM media",
    ] {
        let row: (i64, i64, i64) = sqlx::query_as(sql).fetch_one(&pool).await.unwrap();
        out.push(row);
    }
    out
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
        table_digest(&a.join("opdb.sqlite")).await,
        table_digest(&b.join("opdb.sqlite")).await,
        table_digest(&c.join("opdb.sqlite")).await,
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
