//! What each subcommand does: `sql`, `datagen`, `demo`, `report`,
//! `extract` (and `auth`, in [`crate::auth`]).

use std::path::Path;

use sentio_sql::SentioError;
use sentio_sql::config::SentioConfig;
use sentio_sql::size::human_bytes;

use crate::args::{Cli, Command, DemoArgs, ExtractArgs, GlobalArgs, SqlArgs};
use crate::datagen::{self, DatagenOptions};
use crate::error::{CliError, Result};
use crate::interrupt;
use crate::output::OutputFormat;
use crate::remote::{self, Credentials, FrontEnd};
use crate::runner::{Runner, Target};

/// The example scripts, in the order the demo runs them.
pub const EXAMPLES: &[(&str, &str)] = &[
    ("examples/01_train_emotion.sql", include_str!("../../examples/01_train_emotion.sql")),
    ("examples/02_validate_emotion.sql", include_str!("../../examples/02_validate_emotion.sql")),
    ("examples/03_train_media.sql", include_str!("../../examples/03_train_media.sql")),
    ("examples/04_cross_validate_media.sql", include_str!("../../examples/04_cross_validate_media.sql")),
    ("examples/05_statistics.sql", include_str!("../../examples/05_statistics.sql")),
];

/// Runs the command line. Ctrl-C, `SIGTERM` and `SIGHUP` cancel the running
/// statement, or end the command between statements ([`interrupt`]).
pub async fn run(cli: Cli) -> Result<()> {
    interrupt::listen()?;
    tokio::select! {
        res = run_command(cli) => res,
        signal = interrupt::command_interrupted() => Err(CliError::Interrupted { signal, job: None }),
    }
}

async fn run_command(cli: Cli) -> Result<()> {
    let cfg = cli.global.config()?;
    match cli.command {
        Command::Sql(args) => sql(&cfg, &cli.global, args).await,
        Command::Datagen(args) => {
            let opts = DatagenOptions {
                lake: cfg.require_lake()?.to_string(),
                opdb_url: cfg.opdb_url.clone(),
                scale: args.scale,
                seed: args.seed,
                ratings_per_user: args.ratings_per_user,
                s3: cfg.s3.clone(),
            };
            if args.dataset != crate::args::Dataset::Ratings && args.ratings_per_user.is_some() {
                return Err(
                    SentioError::Config("--ratings-per-user applies to --dataset ratings only".to_string()).into()
                );
            }
            if args.dataset == crate::args::Dataset::Ratings {
                if opts.opdb_url.is_none() {
                    eprintln!("note: no --opdb URL given: writing the lake only, not the users table");
                }
                let report = datagen::run_ratings(&opts).await?;
                eprintln!("datagen: {report} → {}", opts.lake);
                return Ok(());
            }
            if opts.opdb_url.is_none() {
                eprintln!("note: no --opdb URL given: writing the lake only, not the media and sessions tables");
            }
            let report = datagen::run(&opts).await?;
            eprintln!("datagen: {report} → {}", opts.lake);
            Ok(())
        }
        Command::Demo(args) => demo(cfg, args).await,
        Command::Report(args) => {
            let runner = Runner::new(target(&cfg, &cli.global).await?, OutputFormat::Table, true);
            write_report(&runner, &args.models, &args.out).await
        }
        Command::Extract(args) => extract(&cfg, &cli.global, args).await,
        Command::Auth(cmd) => crate::auth::run(&cmd),
    }
}

/// `sentio extract`: `CREATE TABLE extracts.<name> AS SELECT * FROM
/// opdb.<table>` the first time, `REFRESH EXTRACT` after that.
async fn extract(cfg: &SentioConfig, global: &GlobalArgs, args: ExtractArgs) -> Result<()> {
    use sentio_sql::extract::parse::check_extract_name;
    use sentio_sql::sqltext::{lit, qcol};
    let name = args.name.clone().unwrap_or_else(|| args.table.to_ascii_lowercase());
    check_extract_name(&name)?;
    let runner = Runner::new(target(cfg, global).await?, args.format, true);
    let statement = match extract_watermark(&runner, &name).await? {
        Some(watermark) => {
            if let Some(w) = &args.watermark
                && watermark.as_deref() != Some(w.as_str())
            {
                return Err(SentioError::Config(format!(
                    "extracts.{name} exists with watermark {}; --watermark {w} applies only when an extract is \
                     created (DROP TABLE extracts.{name} first to change it)",
                    watermark.as_deref().unwrap_or("none")
                ))
                .into());
            }
            format!("REFRESH EXTRACT extracts.{name}{}", if args.full { " FULL" } else { "" })
        }
        None => format!(
            "CREATE TABLE extracts.{name}{} AS SELECT * FROM {}",
            args.watermark.as_deref().map_or(String::new(), |w| format!(" OPTIONS (watermark = {})", lit(w))),
            qcol(sentio_opdb::catalog::SCHEMA, &args.table)
        ),
    };
    runner.run_script("sentio extract", &statement, &mut std::io::stdout()).await?;
    Ok(())
}

/// The watermark column of `extracts.<name>` (`Some(None)`: it has none),
/// or `None` when there is no such extract: from `extracts.manifest`.
async fn extract_watermark(runner: &Runner, name: &str) -> Result<Option<Option<String>>> {
    use datafusion::arrow::array::{Array, AsArray};
    let sql = format!(
        "SELECT CAST(watermark_column AS VARCHAR) AS w FROM extracts.manifest WHERE extract = {}",
        sentio_sql::sqltext::lit(name)
    );
    let (batches, _) = runner.query(&sql).await?;
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else { return Ok(None) };
    let column = batch.column(0).as_string::<i32>();
    Ok(Some((!column.is_null(0)).then(|| column.value(0).to_string())))
}

/// Writes the report of `models` to `out`.
async fn write_report(runner: &Runner, models: &[String], out: &Path) -> Result<()> {
    let html = crate::report::html(runner, models).await?;
    std::fs::write(out, html).map_err(|e| CliError::Report(format!("cannot write {}: {e}", out.display())))?;
    eprintln!("report: {} (open it in a browser)", out.display());
    Ok(())
}

/// Where statements run: the front end when `--scheduler` is a `grpc://`
/// URL, the engine in this process on a `df://` scheduler, else the front end
/// of a cluster started in this process. Says what the session works
/// without.
async fn target(cfg: &SentioConfig, global: &GlobalArgs) -> Result<Target> {
    let front_end = match cfg.scheduler.as_deref() {
        Some(url) if remote::is_front_end(url) => remote_front_end(cfg, global, url).await?,
        scheduler => {
            if global.token.is_some() || global.user.is_some() || global.tls_ca.is_some() {
                return Err(CliError::Usage(
                    "--token, --user and --tls-ca (SENTIO_TOKEN, SENTIO_USER, SENTIO_TLS_CA) are for a front end: \
                     --scheduler grpc://HOST:PORT or grpc+tls://HOST:PORT"
                        .into(),
                ));
            }
            if scheduler.is_some() {
                let client = sentio_sql::client::connect(cfg).await?;
                warn(&client.warnings);
                return Ok(client.into());
            }
            FrontEnd::embedded(cfg).await?
        }
    };
    warn(&front_end.warnings);
    Ok(front_end.into())
}

fn warn(warnings: &[String]) {
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
}

/// The scheduler's front end at `url`, signed in with the credentials the
/// command line gives.
async fn remote_front_end(cfg: &SentioConfig, global: &GlobalArgs, url: &str) -> Result<FrontEnd> {
    // The cluster's settings are the cluster's: a workstation that also
    // names a lake or a database would be ignored, so it is refused.
    if cfg.lake.is_some() || cfg.opdb_url.is_some() || cfg.opdb_read_url.is_some() {
        return Err(CliError::Usage(format!(
            "{url} is a front end: statements use the cluster's lake and operational DB; drop --lake/--opdb \
             (and SENTIO_LAKE, SENTIO_OPDB_URL, SENTIO_OPDB_READ_URL, sentio.toml's lake and opdb settings)"
        )));
    }
    let credentials = match (&global.token, &global.user) {
        (Some(token), None) => Credentials::Token(token.clone()),
        (None, Some(user)) => Credentials::Password { user: user.clone(), password: password(user)? },
        (Some(_), Some(_)) => return Err(CliError::Usage("give --token or --user, not both".into())),
        (None, None) => {
            return Err(CliError::Usage(format!(
                "{url} is a front end: sign in with --token (or SENTIO_TOKEN), or --user (or SENTIO_USER)"
            )));
        }
    };
    let ca = match &global.tls_ca {
        Some(path) => {
            Some(std::fs::read(path).map_err(|e| CliError::Usage(format!("--tls-ca {}: {e}", path.display())))?)
        }
        None => None,
    };
    FrontEnd::connect(url, credentials, ca).await
}

/// The password of `user`: `SENTIO_PASSWORD`, else asked for on the terminal.
fn password(user: &str) -> Result<String> {
    match std::env::var("SENTIO_PASSWORD") {
        Ok(p) => Ok(p),
        Err(_) => rpassword::prompt_password(format!("password for {user}: ")).map_err(|e| {
            CliError::Usage(format!("no password (SENTIO_PASSWORD is not set and the prompt failed: {e})"))
        }),
    }
}

async fn sql(cfg: &SentioConfig, global: &GlobalArgs, args: SqlArgs) -> Result<()> {
    let timeout = match args.timeout {
        Some(t) if !(t > 0.0 && t.is_finite()) => {
            return Err(SentioError::Config(format!("--timeout must be a positive number of seconds, got {t}")).into());
        }
        t => t.map(std::time::Duration::from_secs_f64),
    };
    let runner = Runner::new(target(cfg, global).await?, args.format, !args.no_progress).with_timeout(timeout);
    if args.commands.is_empty() && args.files.is_empty() {
        if args.record_run.is_some() {
            return Err(CliError::Usage("--record-run records a script's run: give it -f FILE or -c SQL".into()));
        }
        return crate::repl::run(&runner).await;
    }
    let started = chrono::Utc::now();
    let result = run_scripts(&runner, &args).await;
    match &args.record_run {
        Some(name) => {
            let recorded = record_run(&runner, name, &args, started, &result).await;
            // The script's own failure says more than the record's.
            result.and(recorded)
        }
        None => result,
    }
}

/// The `-c` statements, then the `-f` files, in order.
async fn run_scripts(runner: &Runner, args: &SqlArgs) -> Result<()> {
    let mut out = std::io::stdout();
    for c in &args.commands {
        runner.run_script("<command line>", c, &mut out).await?;
    }
    for f in &args.files {
        let src = std::fs::read_to_string(f).map_err(|e| CliError::Statement {
            source_name: f.display().to_string(),
            line: 0,
            message: format!("cannot read the script: {e}"),
        })?;
        runner.run_script(&f.display().to_string(), &src, &mut out).await?;
    }
    Ok(())
}

/// Appends the run's row to `ml.script_runs` (through the same runner, so
/// where the statements ran): its name, scripts, host, start and end, and
/// how it ended.
async fn record_run(
    runner: &Runner,
    name: &str,
    args: &SqlArgs,
    started: chrono::DateTime<chrono::Utc>,
    result: &Result<()>,
) -> Result<()> {
    let status = match result {
        Ok(()) => "succeeded",
        Err(CliError::Interrupted { .. }) => "interrupted",
        Err(CliError::Timeout { .. }) => "timed out",
        Err(_) => "failed",
    };
    let error = result.as_ref().err().map(ToString::to_string);
    let scripts: Vec<String> = args
        .files
        .iter()
        .map(|f| f.display().to_string())
        .chain(args.commands.iter().map(|_| "<command line>".to_string()))
        .collect();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
    let text = sentio_sql::sqltext::lit;
    let at = |t: chrono::DateTime<chrono::Utc>| format!("CAST({} AS TIMESTAMP)", text(&t.to_rfc3339()));
    let insert = format!(
        "INSERT INTO ml.script_runs VALUES ({}, {}, {}, {}, {}, {}, {})",
        text(name),
        text(&scripts.join(", ")),
        text(&host),
        at(started),
        at(chrono::Utc::now()),
        text(status),
        error.as_deref().map_or("CAST(NULL AS VARCHAR)".to_string(), text),
    );
    runner.query(&insert).await.map(|_| ()).map_err(|e| {
        CliError::Usage(format!("the run of {name} was not recorded in ml.script_runs (is a lake configured?): {e}"))
    })
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
            ratings_per_user: None,
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
    let front_end = FrontEnd::embedded(&cfg).await?;
    warn(&front_end.warnings);
    let runner = Runner::new(front_end, args.format, true);
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
            human_bytes(bytes),
            human_bytes(scanned)
        ));
    }
    let report = args.dir.join("report.html");
    write_report(&runner, &["emotion_rf".to_string(), "media_hit".to_string()], &report).await?;
    println!(
        "\n=== summary ===\n{}\n  report (class balance, confusion matrices, cross-validation, feature importance): {}",
        summary.join("\n"),
        report.display()
    );
    Ok(())
}
