//! The `sentio` command line: `sql`, `datagen`, `demo`, `report` and `extract`.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::config::SentioConfig;
use crate::datagen::{self, DatagenOptions};
use crate::error::{Result, SentioError};
use crate::interrupt;
use crate::output::OutputFormat;
use crate::runner::Runner;
use crate::session;

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
    /// Run on this cluster, df://HOST:PORT; standalone in-process without it [env: SENTIO_SCHEDULER].
    #[arg(long, global = true, value_name = "df://HOST:PORT")]
    pub scheduler: Option<String>,
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

/// The example scripts, in the order the demo runs them.
pub const EXAMPLES: &[(&str, &str)] = &[
    ("examples/01_train_emotion.sql", include_str!("../../examples/01_train_emotion.sql")),
    ("examples/02_validate_emotion.sql", include_str!("../../examples/02_validate_emotion.sql")),
    ("examples/03_train_media.sql", include_str!("../../examples/03_train_media.sql")),
    ("examples/04_cross_validate_media.sql", include_str!("../../examples/04_cross_validate_media.sql")),
    ("examples/05_statistics.sql", include_str!("../../examples/05_statistics.sql")),
];

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

/// Runs the command line. Ctrl-C, `SIGTERM` and `SIGHUP` cancel the running
/// statement, or end the command between statements ([`interrupt`]).
pub async fn run(cli: Cli) -> Result<()> {
    interrupt::listen()?;
    tokio::select! {
        res = run_command(cli) => res,
        signal = interrupt::command_interrupted() => Err(SentioError::Interrupted { signal, job: None }),
    }
}

async fn run_command(cli: Cli) -> Result<()> {
    let cfg = cli.global.config()?;
    match cli.command {
        Command::Sql(args) => sql(&cfg, args).await,
        Command::Datagen(args) => {
            let opts = DatagenOptions {
                lake: cfg.require_lake()?.to_string(),
                opdb_url: cfg.opdb_url.clone(),
                scale: args.scale,
                seed: args.seed,
                s3: cfg.s3.clone(),
            };
            if opts.opdb_url.is_none() {
                eprintln!("note: no --opdb URL given: writing the lake only, not the media and sessions tables");
            }
            let report = datagen::run(&opts).await?;
            eprintln!("datagen: {report} → {}", opts.lake);
            Ok(())
        }
        Command::Demo(args) => demo(cfg, args).await,
        Command::Report(args) => {
            let runner = Runner::new(session::connect(&cfg).await?, OutputFormat::Table, true);
            write_report(&runner, &args.models, &args.out).await
        }
        Command::Extract(args) => extract(&cfg, args).await,
    }
}

/// `sentio extract`: `CREATE TABLE extracts.<name> AS SELECT * FROM
/// opdb.<table>` the first time, `REFRESH EXTRACT` after that.
async fn extract(cfg: &SentioConfig, args: ExtractArgs) -> Result<()> {
    use crate::extract::{ExtractError, parse::check_extract_name};
    use crate::ml::sqltext::{lit, qcol};
    let name = args.name.clone().unwrap_or_else(|| args.table.to_ascii_lowercase());
    check_extract_name(&name)?;
    let client = session::connect(cfg).await?;
    let extracts = client.extracts.as_ref().ok_or(ExtractError::NoLake)?;
    let statement = match extracts.manifest(&name).await? {
        Some(m) => {
            if let Some(w) = &args.watermark
                && m.watermark_column.as_deref() != Some(w.as_str())
            {
                return Err(SentioError::Config(format!(
                    "extracts.{name} exists with watermark {}; --watermark {w} applies only when an extract is \
                     created (DROP TABLE extracts.{name} first to change it)",
                    m.watermark_column.as_deref().unwrap_or("none")
                )));
            }
            format!("REFRESH EXTRACT extracts.{name}{}", if args.full { " FULL" } else { "" })
        }
        None => format!(
            "CREATE TABLE extracts.{name}{} AS SELECT * FROM {}",
            args.watermark.as_deref().map_or(String::new(), |w| format!(" OPTIONS (watermark = {})", lit(w))),
            qcol(crate::opdb::catalog::SCHEMA, &args.table)
        ),
    };
    let runner = Runner::new(client, args.format, true);
    runner.run_script("sentio extract", &statement, &mut std::io::stdout()).await?;
    Ok(())
}

/// Writes the report of `models` to `out`.
async fn write_report(runner: &Runner, models: &[String], out: &Path) -> Result<()> {
    let html = crate::report::html(runner, models).await?;
    std::fs::write(out, html).map_err(|e| SentioError::Report(format!("cannot write {}: {e}", out.display())))?;
    eprintln!("report: {} (open it in a browser)", out.display());
    Ok(())
}

async fn sql(cfg: &SentioConfig, args: SqlArgs) -> Result<()> {
    let timeout = match args.timeout {
        Some(t) if !(t > 0.0 && t.is_finite()) => {
            return Err(SentioError::Config(format!("--timeout must be a positive number of seconds, got {t}")));
        }
        t => t.map(std::time::Duration::from_secs_f64),
    };
    let client = session::connect(cfg).await?;
    let runner = Runner::new(client, args.format, !args.no_progress).with_timeout(timeout);
    let mut out = std::io::stdout();
    if args.commands.is_empty() && args.files.is_empty() {
        return crate::repl::run(&runner).await;
    }
    for c in &args.commands {
        runner.run_script("<command line>", c, &mut out).await?;
    }
    for f in &args.files {
        let src = std::fs::read_to_string(f).map_err(|e| SentioError::Statement {
            source_name: f.display().to_string(),
            line: 0,
            message: format!("cannot read the script: {e}"),
        })?;
        runner.run_script(&f.display().to_string(), &src, &mut out).await?;
    }
    Ok(())
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

async fn demo(mut cfg: SentioConfig, args: DemoArgs) -> Result<()> {
    let lake = args.dir.join("lake");
    let opdb = format!("sqlite:{}", path_str(&args.dir.join("opdb.sqlite")));
    if !lake.join("training").join("frames").is_dir() {
        std::fs::create_dir_all(&args.dir)?;
        eprintln!("demo: creating sample data in {} (scale {}, seed {})", args.dir.display(), args.scale, args.seed);
        let report = datagen::run(&DatagenOptions {
            lake: path_str(&lake),
            opdb_url: Some(opdb.clone()),
            scale: args.scale,
            seed: args.seed,
            s3: cfg.s3.clone(),
        })
        .await?;
        eprintln!("demo: {report}");
    } else {
        eprintln!("demo: using the sample data in {}", args.dir.display());
    }
    cfg.lake = Some(path_str(&lake));
    cfg.opdb_url = Some(opdb);
    cfg.scheduler = None;
    let client = session::connect(&cfg).await?;
    let runner = Runner::new(client, args.format, true);
    let mut out = std::io::stdout();
    let mut summary = Vec::new();
    for (name, src) in EXAMPLES {
        println!("\n=== {name} ===");
        let outcomes = runner.run_script(name, src, &mut out).await?;
        let seconds: f64 = outcomes.iter().map(|o| o.elapsed.as_secs_f64()).sum();
        let bytes: u64 = outcomes.iter().map(|o| o.bytes_received).sum();
        let scanned: u64 = outcomes.iter().filter_map(|o| o.bytes_scanned).sum();
        summary.push(format!(
            "  {name:<38} {:>2} statements {seconds:>7.1} s · {:>9} to the client, {:>9} scanned in the cluster",
            outcomes.len(),
            crate::output::human_bytes(bytes),
            crate::output::human_bytes(scanned)
        ));
    }
    let report = args.dir.join("report.html");
    write_report(&runner, &["emotion_rf".to_string(), "media_hit".to_string()], &report).await?;
    println!("\n=== summary ===\n{}\n  report (class balance, confusion matrices, cross-validation, feature importance): {}", summary.join("\n"), report.display());
    Ok(())
}
