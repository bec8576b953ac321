//! The `sentio sql` command line: scripts, errors with line numbers, an
//! unreachable scheduler.

use std::time::Duration;

use crate::support::{free_port, run, run_ok, sentio};

#[test]
fn script_stops_at_malformed_statement_and_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("broken.sql");
    std::fs::write(
        &script,
        "-- a script with comments\nSELECT 1 AS first;\n\n/* multi-line\n   comment */\nSELECT 2 AS second;\nSELEC 3 AS broken;\nSELECT 4 AS never_run;\n",
    )
    .unwrap();
    let f = run(
        sentio().args(["sql", "--format", "csv", "-f"]).arg(&script),
        Duration::from_secs(60),
    );
    assert!(!f.success, "a malformed statement must fail the script");
    assert!(f.stderr.contains("broken.sql:7:"), "error must name line 7:\n{}", f.stderr);
    assert!(f.stdout.contains("first\n1\n") && f.stdout.contains("second\n2\n"), "{}", f.stdout);
    assert!(!f.stdout.contains("never_run"), "statements after the failure must not run");
}

#[test]
fn unknown_table_names_the_line_of_its_statement() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("unknown.sql");
    std::fs::write(&script, "SELECT 1;\n\nSELECT *\nFROM no_such_table;\n").unwrap();
    let f = run(sentio().args(["sql", "-f"]).arg(&script), Duration::from_secs(60));
    assert!(!f.success);
    assert!(f.stderr.contains("unknown.sql:3:"), "{}", f.stderr);
    assert!(f.stderr.contains("no_such_table"), "{}", f.stderr);
}

#[test]
fn formats_and_network_summary() {
    let f = run_ok(
        sentio().args(["sql", "--format", "json", "-c", "SELECT * FROM (VALUES (1, 'x'), (2, 'y')) AS t(a, b) ORDER BY a"]),
        Duration::from_secs(60),
    );
    let rows: serde_json::Value = serde_json::from_str(f.stdout.trim()).unwrap();
    assert_eq!(rows, serde_json::json!([{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]));
    assert!(f.stderr.contains("2 rows in"), "{}", f.stderr);
    assert!(f.stderr.contains("received from the cluster"), "{}", f.stderr);
}

#[test]
fn unreachable_scheduler_fails_clearly_within_10_s() {
    let port = free_port(); // nothing listens here
    let f = run(
        sentio().args(["sql", "--scheduler", &format!("df://127.0.0.1:{port}"), "-c", "SELECT 1"]),
        Duration::from_secs(30),
    );
    assert!(!f.success);
    assert!(f.elapsed < Duration::from_secs(10), "took {:?}", f.elapsed);
    assert!(f.stderr.contains("cannot reach the Sentio scheduler"), "{}", f.stderr);
}

#[test]
fn bad_scheduler_url_and_missing_lake_are_explained() {
    let f = run(sentio().args(["sql", "--scheduler", "http://x:1", "-c", "SELECT 1"]), Duration::from_secs(30));
    assert!(!f.success && f.stderr.contains("must start with df://"), "{}", f.stderr);
    let f = run(sentio().args(["datagen"]), Duration::from_secs(30));
    assert!(!f.success && f.stderr.contains("no lake configured"), "{}", f.stderr);
}
