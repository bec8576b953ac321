//! Sentio's configuration: the same keys from flags, environment and an
//! optional `sentio.toml`, in that order of precedence.
//!
//! | key             | environment            | `sentio.toml`      |
//! |-----------------|------------------------|--------------------|
//! | lake            | `SENTIO_LAKE`          | `lake`             |
//! | opdb URL        | `SENTIO_OPDB_URL`      | `opdb_url`         |
//! | opdb read URL   | `SENTIO_OPDB_READ_URL` | `opdb_read_url`    |
//! | opdb bulk duty  | `SENTIO_OPDB_BULK_DUTY` | `opdb_bulk_duty`  |
//! | scheduler       | `SENTIO_SCHEDULER`     | `scheduler`        |
//! | project         | `SENTIO_PROJECT`       | `project`          |
//! | memory limit    | `SENTIO_MEMORY_LIMIT`  | `memory_limit`     |
//! | S3 endpoint     | `SENTIO_S3_ENDPOINT` (or `AWS_ENDPOINT_URL`) | `[s3] endpoint` |
//! | S3 allow HTTP   | `SENTIO_S3_ALLOW_HTTP` | `[s3] allow_http`  |
//! | S3 region       | `AWS_REGION` / `AWS_DEFAULT_REGION` | `[s3] region` |
//!
//! S3 credentials are never part of Sentio's configuration: they come from
//! the standard AWS environment variables (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) of each process.
//!
//! ```
//! let cfg: sentio_sql::config::SentioConfig = toml::from_str(
//!     "lake = \"s3://bucket/lake\"\n[s3]\nendpoint = \"http://127.0.0.1:9000\"\nallow_http = true\n",
//! ).unwrap();
//! assert_eq!(cfg.lake.as_deref(), Some("s3://bucket/lake"));
//! assert_eq!(cfg.s3.allow_http, Some(true));
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use sentio_opdb::Opdb;
use sentio_opdb::pace::Duty;

/// A configuration value that is missing or malformed, or a file that
/// cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value is missing or malformed.
    #[error("configuration: {0}")]
    Invalid(String),

    /// The configuration file could not be read or parsed.
    #[error("cannot read configuration file {path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// Result type of the configuration's functions.
pub type Result<T, E = ConfigError> = std::result::Result<T, E>;

/// The file looked for in the working directory when no `--config` is given.
pub const DEFAULT_CONFIG_FILE: &str = "sentio.toml";

/// Settings for S3-compatible object storage (never credentials).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// Endpoint of an S3-compatible server, e.g. `http://127.0.0.1:9000`.
    pub endpoint: Option<String>,
    /// Allow plain HTTP to the endpoint (local test servers).
    pub allow_http: Option<bool>,
    /// AWS region.
    pub region: Option<String>,
}

/// Sentio's configuration, shared by the CLI, the scheduler and executors.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SentioConfig {
    /// Lake root: a local folder or `s3://bucket/prefix`.
    pub lake: Option<String>,
    /// Operational DB (writes, and reads unless `opdb_read_url` is set).
    pub opdb_url: Option<String>,
    /// Read endpoint of the operational DB (e.g. an RDS read replica).
    pub opdb_read_url: Option<String>,
    /// Share of wall time, in (0, 1], that bulk reads and writes may keep
    /// the operational DB busy ([`sentio_opdb::pace`]); 1 turns pacing off.
    pub opdb_bulk_duty: Option<f64>,
    /// Scheduler to run on, `df://host:port`; standalone in-process if unset.
    pub scheduler: Option<String>,
    /// The project name three-part model names (`` `project.dataset.model` ``,
    /// as BigQuery writes them) may carry; without one they are refused.
    pub project: Option<String>,
    /// What an executor's tasks may hold in memory (`512MiB`, `4GiB`), the
    /// in-process cluster's included ([`crate::memory`]); 70 % of the
    /// machine's memory when unset.
    pub memory_limit: Option<String>,
    /// S3 settings.
    #[serde(default)]
    pub s3: S3Config,
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn parse_bool(key: &str, v: &str) -> Result<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::Invalid(format!("{key}={v:?} is not a boolean (use true or false)"))),
    }
}

impl SentioConfig {
    /// The operational DB this configuration names, its bulk work paced to
    /// `opdb_bulk_duty` (checked by [`Self::load`]; unpaced by default).
    pub fn opdb(&self) -> Opdb {
        let duty = self.opdb_bulk_duty.and_then(|d| Duty::new(d).ok()).unwrap_or_default();
        Opdb::new(self.opdb_url.clone(), self.opdb_read_url.clone()).with_duty(duty)
    }

    /// `memory_limit` in bytes, if set.
    pub fn memory_limit_bytes(&self) -> Result<Option<u64>> {
        let Some(text) = &self.memory_limit else { return Ok(None) };
        match crate::memory::parse_size(text) {
            Ok(0) => Err(ConfigError::Invalid("memory_limit must be more than 0 bytes".into())),
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) => Err(ConfigError::Invalid(format!("memory_limit: {e}"))),
        }
    }

    /// Reads `path` (which must exist) or, without one, `./sentio.toml` if
    /// present; then applies the environment on top.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let file = match path {
            Some(p) => Some(p.to_path_buf()),
            None => Some(PathBuf::from(DEFAULT_CONFIG_FILE)).filter(|p| p.is_file()),
        };
        let mut cfg = match file {
            Some(p) => Self::from_file(&p)?,
            None => Self::default(),
        };
        cfg.apply_env()?;
        if let Some(d) = cfg.opdb_bulk_duty {
            Duty::new(d).map_err(ConfigError::Invalid)?;
        }
        cfg.memory_limit_bytes()?;
        Ok(cfg)
    }

    /// Parses a `sentio.toml`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let err = |message: String| ConfigError::File { path: path.to_path_buf(), message };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        toml::from_str(&text).map_err(|e| err(e.to_string()))
    }

    /// Overrides keys with the `SENTIO_*` (and standard AWS) environment.
    pub fn apply_env(&mut self) -> Result<()> {
        for (var, slot) in [
            ("SENTIO_LAKE", &mut self.lake),
            ("SENTIO_OPDB_URL", &mut self.opdb_url),
            ("SENTIO_OPDB_READ_URL", &mut self.opdb_read_url),
            ("SENTIO_SCHEDULER", &mut self.scheduler),
            ("SENTIO_PROJECT", &mut self.project),
            ("SENTIO_MEMORY_LIMIT", &mut self.memory_limit),
        ] {
            if let Some(v) = env_var(var) {
                *slot = Some(v);
            }
        }
        if let Some(v) = env_var("SENTIO_OPDB_BULK_DUTY") {
            let duty = Duty::parse(&v).map_err(|e| ConfigError::Invalid(format!("SENTIO_OPDB_BULK_DUTY: {e}")))?;
            self.opdb_bulk_duty = Some(duty.get());
        }
        if let Some(v) = env_var("SENTIO_S3_ENDPOINT").or_else(|| env_var("AWS_ENDPOINT_URL")) {
            self.s3.endpoint = Some(v);
        }
        if let Some(v) = env_var("SENTIO_S3_ALLOW_HTTP") {
            self.s3.allow_http = Some(parse_bool("SENTIO_S3_ALLOW_HTTP", &v)?);
        }
        if let Some(v) = env_var("AWS_REGION").or_else(|| env_var("AWS_DEFAULT_REGION")) {
            self.s3.region = Some(v);
        }
        Ok(())
    }

    /// The lake, or an error that says how to set it.
    pub fn require_lake(&self) -> Result<&str> {
        self.lake.as_deref().ok_or_else(|| {
            ConfigError::Invalid(
                "no lake configured: pass --lake DIR|s3://bucket/prefix, set SENTIO_LAKE, \
                 or put `lake = \"…\"` in sentio.toml"
                    .into(),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unknown_keys() {
        let e = toml::from_str::<SentioConfig>("lak = \"x\"").unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
    }

    #[test]
    fn bulk_duty_out_of_range_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sentio.toml");
        std::fs::write(&path, "opdb_bulk_duty = 0.25\n").unwrap();
        assert_eq!(SentioConfig::from_file(&path).unwrap().opdb_bulk_duty, Some(0.25));
        std::fs::write(&path, "opdb_bulk_duty = 2.0\n").unwrap();
        let e = SentioConfig::load(Some(&path)).unwrap_err();
        assert!(e.to_string().contains("(0, 1]"), "{e}");
    }

    #[test]
    fn bools() {
        assert!(parse_bool("k", "TRUE").unwrap());
        assert!(!parse_bool("k", "0").unwrap());
        assert!(parse_bool("k", "maybe").is_err());
    }
}
