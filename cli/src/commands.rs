//! What each subcommand does: `sql`, `datagen`, `demo`, `report`,
//! `extract` (and `auth`, in [`crate::auth`]).

use std::path::Path;

use sentio_sql::SentioError;
use sentio_sql::client::Client;
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
            let runner = Runner::new(target(&cfg, &cli.global).await?, OutputFormat::Table, true);
            write_report(&runner, &args.models, &args.out).await
        }
        Command::Extract(args) => extract(&cfg, args).await,
        Command::Auth(cmd) => crate::auth::run(&cmd),
    }
}

/// `sentio extract`: `CREATE TABLE extracts.<name> AS SELECT * FROM
/// opdb.<table>` the first time, `REFRESH EXTRACT` after that.
async fn extract(cfg: &SentioConfig, args: ExtractArgs) -> Result<()> {
    use sentio_sql::extract::{ExtractError, parse::check_extract_name};
    use sentio_sql::sqltext::{lit, qcol};
    let name = args.name.clone().unwrap_or_else(|| args.table.to_ascii_lowercase());
    check_extract_name(&name)?;
    let client = connect(cfg).await?;
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
    let runner = Runner::new(client, args.format, true);
    runner.run_script("sentio extract", &statement, &mut std::io::stdout()).await?;
    Ok(())
}

/// Writes the report of `models` to `out`.
async fn write_report(runner: &Runner, models: &[String], out: &Path) -> Result<()> {
    let html = crate::report::html(runner, models).await?;
    std::fs::write(out, html).map_err(|e| CliError::Report(format!("cannot write {}: {e}", out.display())))?;
    eprintln!("report: {} (open it in a browser)", out.display());
    Ok(())
}

/// Connects to the cluster (or starts the in-process one) and says what the
/// session works without.
async fn connect(cfg: &SentioConfig) -> Result<Client> {
    let client = sentio_sql::client::connect(cfg).await?;
    for warning in &client.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(client)
}

/// Where statements run: the front end when `--scheduler` is a `grpc://`
/// URL, else the engine in this process ([`connect`]).
async fn target(cfg: &SentioConfig, global: &GlobalArgs) -> Result<Target> {
    let Some(url) = cfg.scheduler.as_deref().filter(|u| remote::is_front_end(u)) else {
        if global.token.is_some() || global.user.is_some() || global.tls_ca.is_some() {
            return Err(CliError::Usage(
                "--token, --user and --tls-ca (SENTIO_TOKEN, SENTIO_USER, SENTIO_TLS_CA) are for a front end: \
                 --scheduler grpc://HOST:PORT or grpc+tls://HOST:PORT"
                    .into(),
            ));
        }
        return Ok(connect(cfg).await?.into());
    };
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
    Ok(FrontEnd::connect(url, credentials, ca).await?.into())
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
    let mut out = std::io::stdout();
    if args.commands.is_empty() && args.files.is_empty() {
        return crate::repl::run(&runner).await;
    }
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
    let client = connect(&cfg).await?;
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
