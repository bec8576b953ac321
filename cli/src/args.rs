//! The `sentio` command line's flags and subcommands (clap), and the
//! configuration they make.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sentio_sql::config::SentioConfig;

use crate::error::Result;
use crate::output::OutputFormat;

/// Sentio: SQL and machine learning on a Ballista cluster next to the data.
#[derive(Debug, Parser)]
#[command(name = "sentio", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Settings every subcommand takes; each overrides `SENTIO_*` and
/// `sentio.toml`.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Configuration file (default: ./sentio.toml when present).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Lake root: a folder or s3://bucket/prefix [env: SENTIO_LAKE].
    #[arg(long, global = true, value_name = "DIR|URL")]
    pub lake: Option<String>,
    /// Operational DB URL (sqlite:…, postgres://…, mysql://…) [env: SENTIO_OPDB_URL].
    #[arg(long = "opdb-url", visible_alias = "opdb", global = true, value_name = "URL")]
    pub opdb_url: Option<String>,
    /// Read endpoint of the operational DB [env: SENTIO_OPDB_READ_URL].
    #[arg(long, global = true, value_name = "URL")]
    pub opdb_read_url: Option<String>,
    /// Run on this cluster: its front end, grpc://HOST:PORT (with --token or --user), or its Ballista port,
    /// df://HOST:PORT; standalone in-process without it [env: SENTIO_SCHEDULER].
    #[arg(long, global = true, value_name = "URL")]
    pub scheduler: Option<String>,
    /// API token for the front end (grpc://) [env: SENTIO_TOKEN].
    #[arg(long, global = true, value_name = "TOKEN", env = "SENTIO_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// User name for the front end (grpc://); the password comes from SENTIO_PASSWORD or a prompt
    /// [env: SENTIO_USER].
    #[arg(long, global = true, value_name = "NAME", env = "SENTIO_USER")]
    pub user: Option<String>,
    /// CA certificate (PEM) a grpc+tls:// front end's certificate is checked against, besides the
    /// system's [env: SENTIO_TLS_CA].
    #[arg(long, global = true, value_name = "FILE", env = "SENTIO_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Endpoint of an S3-compatible server [env: SENTIO_S3_ENDPOINT].
    #[arg(long, global = true, value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// Allow plain HTTP to the S3 endpoint [env: SENTIO_S3_ALLOW_HTTP].
    #[arg(long, global = true)]
    pub s3_allow_http: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run SQL: statements (-c), scripts (-f), or an interactive prompt.
    Sql(SqlArgs),
    /// Write the deterministic sample lake and operational DB.
    Datagen(DatagenArgs),
    /// The embedded default: sample data in ./sentio-data and the example scripts, no servers needed.
    Demo(DemoArgs),
    /// An HTML report with charts of one or more models (name or name@version).
    Report(ReportArgs),
    /// Create an extract of an operational table in the lake, or refresh it
    /// (for cron or a timer): `extracts.<name>`.
    Extract(ExtractArgs),
    /// Entries for the Flight SQL front end's users file: a password's hash, or a new API token.
    #[command(subcommand)]
    Auth(AuthCommand),
}

/// `sentio auth`: prints an entry to add to the users file (docs/deploy.md).
#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// A `[[user]]` entry with the argon2 hash of a password, read from
    /// SENTIO_PASSWORD or the first line of stdin.
    HashPassword {
        /// The user's name.
        #[arg(long)]
        name: String,
        /// What the user may do.
        #[arg(long, value_enum, default_value_t = RoleArg::Analyst)]
        role: RoleArg,
    },
    /// A new API token and its `[[token]]` entry (the token is shown once,
    /// on stderr; the entry, on stdout, keeps only its hash).
    NewToken {
        /// The token's name (who or what uses it).
        #[arg(long)]
        name: String,
        /// What the token may do.
        #[arg(long, value_enum, default_value_t = RoleArg::Reader)]
        role: RoleArg,
    },
}

/// A role of the front end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// Every statement.
    Analyst,
    /// Queries only.
    Reader,
}

/// `sentio extract`.
#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// The operational table to extract (`opdb.<table>`).
    #[arg(long, value_name = "TABLE")]
    pub table: String,
    /// Name of the extract (default: the table's name).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Watermark column when the extract is created: an increasing key or an
    /// `updated_at` timestamp (default: the table's integer primary key).
    #[arg(long, value_name = "COLUMN")]
    pub watermark: Option<String>,
    /// Rebuild the extract instead of adding the rows past its watermark.
    #[arg(long)]
    pub full: bool,
    /// How to print the result row.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

/// `sentio report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Models to report on: `name` (the latest version) or `name@version`.
    #[arg(required = true, value_name = "MODEL")]
    pub models: Vec<String>,
    /// Where to write the HTML page.
    #[arg(long, short, default_value = "sentio-report.html")]
    pub out: PathBuf,
}

/// `sentio sql`.
#[derive(Debug, Args)]
pub struct SqlArgs {
    /// A statement (or several separated by ';'); repeatable.
    #[arg(short = 'c', long = "command", value_name = "SQL")]
    pub commands: Vec<String>,
    /// A script of statements; repeatable. Stops at the first failing statement.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// How to print result rows.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// No live progress line.
    #[arg(long)]
    pub no_progress: bool,
    /// Cancel a statement (and its cluster job) after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<f64>,
    /// Record the run (what ran, when, how it ended) as a row of
    /// `ml.script_runs` under this name, also when it fails.
    #[arg(long, value_name = "NAME")]
    pub record_run: Option<String>,
}

/// `sentio datagen`.
#[derive(Debug, Args)]
pub struct DatagenArgs {
    /// 1 ≈ 100k frames; 1000 ≈ 100M.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Seed: the same seed gives the same bytes.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Which sample: the emotion frames, media and sessions, or
    /// MovieLens-shaped ratings (scale 1 ≈ 100k ratings).
    #[arg(long, value_enum, default_value_t = Dataset::Frames)]
    pub dataset: Dataset,
    /// Ratings only: give the scale's ratings to fewer users and movies, a
    /// user rating this many movies (the median) and a movie rated about as
    /// often — dense enough for a recommender to reach the noise floor.
    #[arg(long, value_name = "N")]
    pub ratings_per_user: Option<u64>,
}

/// The samples `sentio datagen` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Dataset {
    /// `training.frames`, `adhoc.media_ground_truth`, `media` and `sessions`.
    Frames,
    /// `adhoc.ratings`, `adhoc.movies`, `adhoc.tags`, `training.ratings`, `users`.
    Ratings,
}

/// `sentio demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the demo lake and SQLite operational DB live.
    #[arg(long, default_value = "sentio-data")]
    pub dir: PathBuf,
    /// Scale of the generated data when it is created.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Seed of the generated data when it is created.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// How to print result rows.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

impl GlobalArgs {
    /// Flags over environment over file.
    pub fn config(&self) -> Result<SentioConfig> {
        let mut cfg = SentioConfig::load(self.config.as_deref())?;
        let set = |slot: &mut Option<String>, v: &Option<String>| {
            if v.is_some() {
                slot.clone_from(v);
            }
        };
        set(&mut cfg.lake, &self.lake);
        set(&mut cfg.opdb_url, &self.opdb_url);
        set(&mut cfg.opdb_read_url, &self.opdb_read_url);
        set(&mut cfg.scheduler, &self.scheduler);
        set(&mut cfg.s3.endpoint, &self.s3_endpoint);
        if self.s3_allow_http {
            cfg.s3.allow_http = Some(true);
        }
        Ok(cfg)
    }
}
