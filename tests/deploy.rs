//! The deployment files: the CloudFormation template passes `cfn-lint` and
//! its rendered user data holds no secret; the release tarball from
//! `deploy/release.sh` unpacks and its `deploy/systemd/install.sh` installs
//! the units, and a scheduler and two executors started from exactly
//! those units' command lines and environment files (with the DB URL fetched
//! from a Secrets Manager by `sentio-fetch-secrets`) run queries over a lake on
//! S3 and a PostgreSQL operational DB; no secret reaches a file or a log.
//!
//! Units are run the way systemd runs them (environment files in order, `-`
//! for optional ones, `%i`, `${VAR}` and `$VAR` expansion, a clean
//! environment, SIGTERM to stop) by [`UnitRunner`], with the filesystem root
//! moved into a temporary directory: `/usr/local/bin/sentio-executor` in a
//! unit is `ROOT/usr/local/bin/sentio-executor`, the copy `install.sh` made.
//! The one addition is `ROOT/etc/sentio/test-instance.env`, which stands in
//! for what EC2 gives an instance (credentials of its instance profile, the
//! AWS endpoint — here the local S3/Secrets Manager server).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Guard, S3Server, bin, free_port_range, repo_root, run, run_ok, sentio, wait_port};

/// The Python environment that `scripts/test.sh` fills (cfn-lint, awscli).
fn venv_bin(name: &str) -> PathBuf {
    let p = repo_root().join(".venv/bin").join(name);
    assert!(
        p.is_file(),
        "{} is missing: run the tests with scripts/test.sh, which installs it into .venv",
        p.display()
    );
    p
}

/// Text patterns that mean a credential was written down.
fn credential_patterns(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let lower = text.to_ascii_lowercase();
    for needle in ["aws_secret_access_key", "aws_session_token", "password=", "\"password\""] {
        if lower.contains(needle) {
            found.push(needle.to_string());
        }
    }
    // A URL with user:password@ in it.
    for (i, _) in text.match_indices("://") {
        let rest = &text[i + 3..];
        let end = rest.find(|c: char| c.is_whitespace() || c == '/' || c == '\'' || c == '"').unwrap_or(rest.len());
        let authority = &rest[..end];
        if let Some(at) = authority.rfind('@')
            && authority[..at].contains(':')
        {
            found.push(format!("credentials in a URL: …{}", &authority[at..]));
        }
    }
    found
}

#[test]
fn credential_patterns_find_what_they_should() {
    assert!(credential_patterns("postgres://app:hunter2@db:5432/app").len() == 1);
    assert!(credential_patterns("AWS_SECRET_ACCESS_KEY=abc").len() == 1);
    assert!(credential_patterns("postgres://app@db:5432/app s3://bucket/lake df://10.0.0.1:50050").is_empty());
}

#[test]
fn cloudformation_template_lints_and_its_user_data_holds_no_secret() {
    let template = repo_root().join("deploy/aws/sentio.yaml");
    let lint = run(Command::new(venv_bin("cfn-lint")).arg(&template), Duration::from_secs(300));
    assert!(lint.success, "cfn-lint failed:\n{}{}", lint.stdout, lint.stderr);

    // Render the user data of the scheduler and the executors' launch
    // template with example parameters, as CloudFormation's Fn::Sub would.
    let render = r#"
import json, re, sys
from cfnlint.decode import decode
tpl, errors = decode(sys.argv[1])
assert not errors, errors
params = {k: str(v.get("Default", "")) for k, v in tpl["Parameters"].items()}
params.update({"AWS::Region": "eu-central-1", "AWS::StackName": "sentio", "AWS::Partition": "aws",
               "AWS::AccountId": "123456789012", "ReleaseBucket": "acme-releases", "LakeBucket": "acme-lake",
               "OpdbUrlSecret": "arn:aws:secretsmanager:eu-central-1:123456789012:secret:sentio/opdb-AbCdEf",
               "OpdbReadUrlSecret": "arn:aws:secretsmanager:eu-central-1:123456789012:secret:sentio/replica-AbCdEf",
               "UsersSecret": "arn:aws:secretsmanager:eu-central-1:123456789012:secret:sentio/users-MnOpQr",
               "SchedulerIp": "10.0.1.10"})
def sub(node):
    text = node if isinstance(node, str) else node[0]
    def one(m):
        key = m.group(1)
        assert key in params, "unknown ${%s}" % key
        return params[key]
    return re.sub(r"\$\{([A-Za-z0-9:.]+)\}", one, text)
res = tpl["Resources"]
out = {
  "scheduler": sub(res["Scheduler"]["Properties"]["UserData"]["Fn::Base64"]["Fn::Sub"]),
  "executor": sub(res["ExecutorLaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Fn::Sub"]),
}
print(json.dumps(out))
"#;
    let rendered =
        run_ok(Command::new(venv_bin("python")).args(["-c", render]).arg(&template), Duration::from_secs(120));
    let user_data: BTreeMap<String, String> = serde_json::from_str(rendered.stdout.trim()).unwrap();
    let template_text = std::fs::read_to_string(&template).unwrap();
    for (what, text) in user_data.iter().chain([(&"template".to_string(), &template_text)]) {
        let found = credential_patterns(text);
        assert!(found.is_empty(), "{what} holds credentials: {found:?}");
        assert!(!text.contains("SENTIO_OPDB_URL="), "{what} sets a DB URL directly");
    }
    for (role, text) in &user_data {
        assert!(text.contains("install.sh --role"), "{role}: {text}");
        assert!(text.contains("SENTIO_OPDB_URL_SECRET='arn:aws:secretsmanager:"), "{role}: {text}");
        println!("rendered {role} user data:\n{text}");
    }
    assert!(user_data["executor"].contains("SENTIO_SCHEDULER_HOST=10.0.1.10"));
    // The users file is the scheduler's only.
    assert!(user_data["scheduler"].contains("SENTIO_USERS_SECRET='arn:aws:secretsmanager:"), "{user_data:?}");
    assert!(!user_data["executor"].contains("SENTIO_USERS_SECRET"), "{user_data:?}");
}

#[test]
fn install_refuses_credentials() {
    let root = tempfile::tempdir().unwrap();
    let out = run(
        Command::new("bash")
            .arg(repo_root().join("deploy/systemd/install.sh"))
            .args(["--role", "executor", "--no-start", "--root"])
            .arg(root.path())
            .arg("--bin")
            .arg(bin("sentio").parent().unwrap())
            .env("SENTIO_LAKE", "s3://b/lake")
            .env("SENTIO_SCHEDULER_HOST", "10.0.0.1")
            .env("SENTIO_EXTERNAL_HOST", "10.0.0.2")
            .env("SENTIO_OPDB_URL", "postgres://app:hunter2@db/app"),
        Duration::from_secs(60),
    );
    assert!(!out.success);
    assert!(out.stderr.contains("SENTIO_OPDB_URL is set"), "{}", out.stderr);
    assert!(!out.stderr.contains("hunter2"), "{}", out.stderr);
    assert!(!root.path().join("etc/sentio/sentio.env").exists(), "nothing may be installed");
}

/// A unit file, read the way systemd reads the parts Sentio's units use.
struct Unit {
    name: String,
    env_files: Vec<(String, bool)>,
    exec_start: Vec<String>,
    working_dir: Option<String>,
    state_dirs: Vec<String>,
    runtime_dirs: Vec<String>,
}

impl Unit {
    fn parse(path: &Path, instance: &str) -> Self {
        let text = std::fs::read_to_string(path).unwrap();
        let file = path.file_name().unwrap().to_str().unwrap();
        let name = file.replace("@.", &format!("@{instance}."));
        // Join continuation lines; keep [Service] keys.
        let mut logical = Vec::new();
        let mut cur = String::new();
        for line in text.lines() {
            let t = line.trim();
            if cur.is_empty() && (t.starts_with('#') || t.starts_with(';')) {
                continue;
            }
            if let Some(head) = t.strip_suffix('\\') {
                cur.push_str(head);
                cur.push(' ');
            } else {
                cur.push_str(t);
                logical.push(std::mem::take(&mut cur));
            }
        }
        let mut unit = Unit {
            name,
            env_files: vec![],
            exec_start: vec![],
            working_dir: None,
            state_dirs: vec![],
            runtime_dirs: vec![],
        };
        let mut section = String::new();
        for line in logical {
            if line.starts_with('[') {
                section = line.clone();
                continue;
            }
            let Some((key, value)) = line.split_once('=') else { continue };
            if section != "[Service]" {
                continue;
            }
            let value = value.trim().replace("%i", instance);
            match key.trim() {
                "EnvironmentFile" => match value.strip_prefix('-') {
                    Some(v) => unit.env_files.push((v.to_string(), true)),
                    None => unit.env_files.push((value, false)),
                },
                "Environment" => panic!("{file}: Environment= is not handled by this runner"),
                "ExecStart" => {
                    assert!(!value.contains(['"', '\'']), "{file}: quoted ExecStart words are not handled");
                    unit.exec_start = value.split_whitespace().map(String::from).collect();
                }
                "WorkingDirectory" => unit.working_dir = Some(value),
                "StateDirectory" => unit.state_dirs = value.split_whitespace().map(String::from).collect(),
                "RuntimeDirectory" => unit.runtime_dirs = value.split_whitespace().map(String::from).collect(),
                _ => {}
            }
        }
        assert!(!unit.exec_start.is_empty(), "{file} has no ExecStart");
        unit
    }
}

/// `KEY=VALUE` lines of a systemd environment file (comments, blank lines,
/// single- or double-quoted values).
fn parse_env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("not KEY=VALUE: {l}"));
            let v = v.trim();
            let v = v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .or_else(|| v.strip_prefix('"').and_then(|v| v.strip_suffix('"')))
                .unwrap_or(v);
            (k.trim().to_string(), v.to_string())
        })
        .collect()
}

/// Runs units from a root directory as systemd would, logging each to
/// `ROOT/var/log/<unit>.log` (journald's stand-in).
struct UnitRunner {
    root: PathBuf,
    extra_env: PathBuf,
}

impl UnitRunner {
    fn rooted(&self, path: &str) -> PathBuf {
        assert!(path.starts_with('/'), "not absolute: {path}");
        self.root.join(&path[1..])
    }

    fn log(&self, unit: &str) -> PathBuf {
        self.root.join("var/log").join(format!("{unit}.log"))
    }

    fn command(&self, file: &str, instance: &str) -> (Command, String) {
        let unit = Unit::parse(&self.root.join("etc/systemd/system").join(file), instance);
        let mut env = BTreeMap::new();
        env.insert("PATH".to_string(), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string());
        let files = unit.env_files.iter().cloned().chain([(self.extra_env.display().to_string(), false)]);
        for (path, optional) in files {
            let p =
                if path.starts_with(self.root.to_str().unwrap()) { PathBuf::from(&path) } else { self.rooted(&path) };
            match std::fs::read_to_string(&p) {
                Ok(text) => env.extend(parse_env_file(&text)),
                Err(_) if optional => {}
                Err(e) => panic!("{}: EnvironmentFile {path}: {e}", unit.name),
            }
        }
        let mut words = Vec::new();
        for w in &unit.exec_start {
            if let Some(var) = w.strip_prefix('$').filter(|v| !v.starts_with('{')) {
                // $VAR alone: split into words, possibly none.
                words.extend(
                    env.get(var).map(|v| v.split_whitespace().map(String::from).collect()).unwrap_or_else(Vec::new),
                );
                continue;
            }
            let mut out = String::new();
            let mut rest = w.as_str();
            while let Some(i) = rest.find("${") {
                out.push_str(&rest[..i]);
                let end = rest[i..].find('}').expect("unclosed ${") + i;
                out.push_str(env.get(&rest[i + 2..end]).map(String::as_str).unwrap_or(""));
                rest = &rest[end + 1..];
            }
            out.push_str(rest);
            words.push(out);
        }
        for d in &unit.state_dirs {
            std::fs::create_dir_all(self.rooted(&format!("/var/lib/{d}"))).unwrap();
        }
        for d in &unit.runtime_dirs {
            std::fs::create_dir_all(self.rooted(&format!("/run/{d}"))).unwrap();
        }
        let program = self.rooted(&words[0]);
        let mut cmd = Command::new(&program);
        for w in &words[1..] {
            if w.starts_with('/') {
                cmd.arg(self.rooted(w))
            } else {
                cmd.arg(w)
            };
        }
        cmd.env_clear().envs(&env);
        if let Some(dir) = &unit.working_dir {
            cmd.current_dir(self.rooted(dir));
        }
        std::fs::create_dir_all(self.root.join("var/log")).unwrap();
        let log = std::fs::File::create(self.log(&unit.name)).unwrap();
        cmd.stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log);
        (cmd, unit.name)
    }

    /// Starts a long-running unit.
    fn start(&self, file: &str, instance: &str) -> (Guard, String) {
        let (mut cmd, name) = self.command(file, instance);
        (Guard(cmd.spawn().unwrap_or_else(|e| panic!("{name}: {e}"))), name)
    }

    /// Runs a oneshot unit to the end; panics with its log if it fails.
    fn run_oneshot(&self, file: &str) {
        self.run_oneshot_instance(file, "")
    }

    /// Runs instance `instance` of a oneshot template unit to the end.
    fn run_oneshot_instance(&self, file: &str, instance: &str) {
        let (mut cmd, name) = self.command(file, instance);
        let status = cmd.status().unwrap();
        let log = std::fs::read_to_string(self.log(&name)).unwrap();
        assert!(status.success(), "{name} failed: {log}");
    }

    /// SIGTERM (the units' KillSignal), then waits up to TimeoutStopSec.
    fn stop(&self, guard: &mut Guard, name: &str) {
        let pid = guard.0.id();
        run_ok(Command::new("kill").args(["-TERM", &pid.to_string()]), Duration::from_secs(10));
        let started = Instant::now();
        loop {
            if guard.0.try_wait().unwrap().is_some() {
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "{name} did not stop within 30 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn http_ok(port: u16, path: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply.starts_with("HTTP/1.1 200") || reply.starts_with("HTTP/1.0 200")
}

fn psql(database: &str, sql: &str) -> String {
    run_ok(
        Command::new("psql")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .arg(format!("postgres://postgres@127.0.0.1:5432/{database}"))
            .args(["-c", sql]),
        Duration::from_secs(60),
    )
    .stdout
    .trim()
    .to_string()
}

#[test]
fn systemd_units_run_a_cluster_with_secrets_fetched_at_boot() {
    let s3 = S3Server::start("sentio-deploy");
    let lake = "s3://sentio-deploy/lake";
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");

    // The operational DB, and its URL kept as an RDS-style secret (trust auth
    // ignores the password, which only has to stay secret).
    psql("postgres", "DROP DATABASE IF EXISTS sentio_deploy WITH (FORCE)");
    psql("postgres", "CREATE DATABASE sentio_deploy");
    let password = format!("Pw{}-x;y@z'q", std::process::id());
    let secret = serde_json::json!({
        "engine": "postgres", "host": "127.0.0.1", "port": 5432,
        "username": "postgres", "password": password, "dbname": "sentio_deploy",
    });
    let aws = |args: &[&str]| {
        run_ok(
            Command::new(venv_bin("aws"))
                .envs(s3.env())
                .env("AWS_ENDPOINT_URL", &s3.endpoint)
                .args(["--region", "us-east-1"])
                .args(args),
            Duration::from_secs(60),
        )
    };
    aws(&["secretsmanager", "create-secret", "--name", "sentio/opdb", "--secret-string", &secret.to_string()]);
    let encoded_password: String = password
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let workstation_url = format!("postgres://postgres:{encoded_password}@127.0.0.1:5432/sentio_deploy");
    // The front end's users file, kept as a secret too: one analyst token.
    let made = run_ok(
        sentio().args(["auth", "new-token", "--name", "deploy-analyst", "--role", "analyst"]),
        Duration::from_secs(60),
    );
    let token = made.stderr.split_whitespace().last().unwrap().to_string();
    aws(&["secretsmanager", "create-secret", "--name", "sentio/users", "--secret-string", &made.stdout]);

    // The sample lake on S3 and the sessions table in the operational DB.
    run_ok(
        sentio().envs(s3.env()).args([
            "datagen",
            "--scale",
            "0.1",
            "--seed",
            "5",
            "--lake",
            lake,
            "--opdb-url",
            &workstation_url,
        ]),
        Duration::from_secs(300),
    );

    // The release tarball, unpacked and installed as the user data does
    // (into ROOT instead of /).
    let tarball = dir.path().join("release.tar.gz");
    run_ok(
        Command::new("bash")
            .arg(repo_root().join("deploy/release.sh"))
            .arg("--bin")
            .arg(bin("sentio").parent().unwrap())
            .arg("--out")
            .arg(&tarball),
        Duration::from_secs(300),
    );
    let opt = dir.path().join("opt/sentio");
    std::fs::create_dir_all(&opt).unwrap();
    run_ok(Command::new("tar").arg("-xzf").arg(&tarball).arg("-C").arg(&opt), Duration::from_secs(300));
    // One range: the scheduler, three ports per executor, then the front end.
    let base = free_port_range(8);
    let flight_sql_port = base + 7;
    let ports = [("SENTIO_SCHEDULER_PORT", base), ("SENTIO_EXECUTOR_PORT", base + 1)];
    // A nightly script, run on the scheduler host by its timer.
    let nightly = dir.path().join("nightly.sql");
    std::fs::write(
        &nightly,
        "DECLARE sessions INT64 DEFAULT (SELECT COUNT(*) FROM opdb.sessions);\n\
         ASSERT (sessions > 0) AS 'the operational DB has sessions';\n\
         SELECT COUNT(*) AS frames FROM training.frames;\n",
    )
    .unwrap();
    let mut install = Command::new("bash");
    install
        .arg(opt.join("deploy/systemd/install.sh"))
        .args(["--role", "scheduler", "--role", "executor", "--executors", "2", "--no-start", "--root"])
        .arg(&root)
        .arg("--bin")
        .arg(opt.join("bin"))
        .env("SENTIO_LAKE", lake)
        .env("AWS_REGION", "us-east-1")
        .env("SENTIO_BIND_HOST", "127.0.0.1")
        .env("SENTIO_SCHEDULER_HOST", "127.0.0.1")
        .env("SENTIO_EXTERNAL_HOST", "127.0.0.1")
        .env("SENTIO_SECRET_SOURCE", "secretsmanager")
        .env("SENTIO_OPDB_URL_SECRET", "sentio/opdb")
        .env("SENTIO_USERS_SECRET", "sentio/users")
        .env("SENTIO_FLIGHT_SQL_PORT", flight_sql_port.to_string())
        .env("SENTIO_EXECUTOR_ARGS", "--vcores 2")
        .env("SENTIO_SCRIPT", &nightly)
        .env("SENTIO_SCRIPT_SCHEDULE", "Mon *-*-* 03:00:00");
    for (k, p) in ports {
        install.env(k, p.to_string());
    }
    run_ok(&mut install, Duration::from_secs(120));
    assert_eq!(std::fs::read(root.join("etc/sentio/scripts/nightly.sql")).unwrap(), std::fs::read(&nightly).unwrap());
    let schedule =
        std::fs::read_to_string(root.join("etc/systemd/system/sentio-script@nightly.timer.d/schedule.conf")).unwrap();
    assert!(schedule.contains("\nOnCalendar=\nOnCalendar=Mon *-*-* 03:00:00\n"), "{schedule}");
    for f in [
        "sentio-scheduler.service",
        "sentio-executor@.service",
        "sentio-secrets.service",
        "sentio-script@.service",
        "sentio-script@.timer",
    ] {
        let installed = std::fs::read(root.join("etc/systemd/system").join(f)).unwrap();
        assert_eq!(installed, std::fs::read(repo_root().join("deploy/systemd").join(f)).unwrap(), "{f}");
    }

    // systemd itself accepts the units as installed (no warning either).
    verify_units(&root);

    // What EC2 gives an instance: credentials (of the instance profile) and
    // where AWS is (here the local server).
    let instance_env = root.join("etc/sentio/test-instance.env");
    let mut instance = String::new();
    for (k, v) in s3.env() {
        instance.push_str(&format!("{k}={v}\n"));
    }
    instance.push_str(&format!("AWS_ENDPOINT_URL={}\n", s3.endpoint));
    instance.push_str(&format!("PATH={}:/usr/bin:/bin\n", venv_bin("aws").parent().unwrap().display()));
    std::fs::write(&instance_env, instance).unwrap();
    let runner = UnitRunner { root: root.clone(), extra_env: instance_env };

    // Boot: secrets, then the scheduler and both executors.
    runner.run_oneshot("sentio-secrets.service");
    let secrets_file = root.join("run/sentio/secrets.env");
    let mode = std::fs::metadata(&secrets_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "secrets.env must be readable by its owner only");
    let secrets = parse_env_file(&std::fs::read_to_string(&secrets_file).unwrap());
    let users_file = root.join("run/sentio-users/users.toml");
    let users_entry = ("SENTIO_USERS".to_string(), users_file.display().to_string());
    assert_eq!(secrets, vec![("SENTIO_OPDB_URL".to_string(), workstation_url.clone()), users_entry]);
    assert_eq!(std::fs::read_to_string(&users_file).unwrap(), made.stdout, "the users file as kept in the secret");
    let mode = std::fs::metadata(&users_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "users.toml must be readable by its owner only");

    let (mut scheduler, scheduler_name) = runner.start("sentio-scheduler.service", "");
    wait_port(base, Duration::from_secs(60));
    wait_port(flight_sql_port, Duration::from_secs(60));
    let mut executors: Vec<(Guard, String)> =
        ["0", "1"].iter().map(|i| runner.start("sentio-executor@.service", i)).collect();
    for health in [base + 3, base + 6] {
        let started = Instant::now();
        while !http_ok(health, "/readyz") {
            assert!(started.elapsed() < Duration::from_secs(60), "executor (health port {health}) not ready");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    // A workstation: lake on S3 and a join with the operational DB, run by
    // the executors; results come back through the scheduler's port.
    let query = "SELECT s.device, COUNT(*) AS frames FROM training.frames f \
                 JOIN opdb.sessions s ON f.session_id = s.session_id GROUP BY s.device ORDER BY s.device";
    let scheduler_url = format!("df://127.0.0.1:{base}");
    let on_cluster = run_ok(
        sentio().envs(s3.env()).env("RUST_LOG", "warn,sentio_sql::job_exec=debug").args([
            "sql",
            "--scheduler",
            &scheduler_url,
            "--lake",
            lake,
            "--opdb-url",
            &workstation_url,
            "--format",
            "csv",
            "-c",
            query,
        ]),
        Duration::from_secs(300),
    );
    // The client fetched the results through the scheduler (its embedded
    // Flight proxy), not from an executor's port.
    assert!(on_cluster.stderr.contains("from the scheduler at 127.0.0.1:"), "{}", on_cluster.stderr);
    assert!(!on_cluster.stderr.contains("from its executor"), "{}", on_cluster.stderr);
    let standalone = run_ok(
        sentio().envs(s3.env()).args([
            "sql",
            "--lake",
            lake,
            "--opdb-url",
            &workstation_url,
            "--format",
            "csv",
            "-c",
            query,
        ]),
        Duration::from_secs(300),
    );
    assert_eq!(on_cluster.stdout, standalone.stdout);
    // A workstation with the token only (no AWS credentials, no DB URL)
    // gets the same rows through the front end.
    let front_end = format!("grpc://127.0.0.1:{flight_sql_port}");
    let through_front_end = run_ok(
        sentio().args(["sql", "--scheduler", &front_end, "--token", &token, "--format", "csv", "-c", query]),
        Duration::from_secs(300),
    );
    assert_eq!(through_front_end.stdout, standalone.stdout);
    assert!(on_cluster.stdout.lines().count() >= 3, "{}", on_cluster.stdout);
    assert!(on_cluster.stderr.contains("received from the cluster"), "{}", on_cluster.stderr);
    // And a write from the cluster into the operational DB, read back with psql.
    psql("sentio_deploy", "CREATE TABLE device_frames (device TEXT PRIMARY KEY, frames BIGINT NOT NULL)");
    run_ok(
        sentio().envs(s3.env()).args([
            "sql",
            "--scheduler",
            &scheduler_url,
            "--lake",
            lake,
            "--opdb-url",
            &workstation_url,
            "-c",
            &format!("INSERT INTO opdb.device_frames {query}"),
        ]),
        Duration::from_secs(300),
    );
    let written = psql("sentio_deploy", "SELECT device || ',' || frames FROM device_frames ORDER BY device");
    let expected: Vec<&str> = standalone.stdout.lines().skip(1).collect();
    assert_eq!(written.lines().collect::<Vec<_>>(), expected);
    // The timer's job, run as systemd starts it: a client of the local
    // cluster with the host's configuration and secrets; its run is a row
    // of ml.script_runs.
    runner.run_oneshot_instance("sentio-script@.service", "nightly");
    let script_log = std::fs::read_to_string(runner.log("sentio-script@nightly.service")).unwrap();
    assert!(script_log.contains("frames\n"), "{script_log}");
    let runs = run_ok(
        sentio().envs(s3.env()).args([
            "sql",
            "--lake",
            lake,
            "--format",
            "csv",
            "-c",
            "SELECT name, status, error IS NULL AS ok, script FROM ml.script_runs",
        ]),
        Duration::from_secs(120),
    );
    assert!(runs.stdout.contains("nightly,succeeded,true,"), "{}", runs.stdout);
    assert!(runs.stdout.contains("etc/sentio/scripts/nightly.sql"), "{}", runs.stdout);
    let executor_logs: Vec<String> =
        executors.iter().map(|(_, n)| std::fs::read_to_string(runner.log(n)).unwrap()).collect();
    assert!(executor_logs.iter().all(|l| !l.is_empty()), "both executors logged their work: {executor_logs:?}");

    // Shutdown as `systemctl stop` does it.
    for (g, n) in executors.iter_mut() {
        runner.stop(g, n);
    }
    runner.stop(&mut scheduler, &scheduler_name);

    // No secret anywhere but /run/sentio/secrets.env: not in the installed
    // files, not in a log (journald's stand-in), not in the workstation's output.
    let needles = [password.as_str(), encoded_password.as_str()];
    let mut checked = 0;
    for path in walk(&root) {
        if path == secrets_file || path == runner.extra_env || path.starts_with(root.join("usr/local/bin")) {
            continue;
        }
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).to_string();
        for n in needles {
            assert!(!text.contains(n), "{} holds the DB password", path.display());
        }
        assert!(!text.contains(&token), "{} holds the front end's token", path.display());
        // Configuration and logs hold no credential of any kind (programs,
        // like sentio-fetch-secrets, may name the word "password").
        if path.starts_with(root.join("etc")) || path.starts_with(root.join("var/log")) {
            let found = credential_patterns(&text);
            assert!(found.is_empty(), "{}: {found:?}", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 9, "units, env files and logs were checked ({checked} files)");
    println!(
        "frames per device on the cluster:\n{}no password in {checked} configuration and log files",
        on_cluster.stdout
    );
    for out in [&on_cluster.stdout, &on_cluster.stderr] {
        assert!(!out.contains(&password) && !out.contains(&encoded_password));
    }
    // The check itself can see a password where there is one.
    assert!(std::fs::read_to_string(&secrets_file).unwrap().contains(&encoded_password));
    psql("postgres", "DROP DATABASE IF EXISTS sentio_deploy WITH (FORCE)");
}

/// `systemd-analyze verify` over the installed units, with the few targets
/// they refer to stubbed in ROOT; any warning fails.
fn verify_units(root: &Path) {
    let units = root.join("etc/systemd/system");
    for t in [
        "sysinit",
        "basic",
        "network-online",
        "multi-user",
        "shutdown",
        "sockets",
        "timers",
        "paths",
        "slices",
        "local-fs",
    ] {
        std::fs::write(units.join(format!("{t}.target")), format!("[Unit]\nDescription={t}\n")).unwrap();
    }
    for s in ["-", "system"] {
        std::fs::write(units.join(format!("{s}.slice")), "[Unit]\nDescription=slice\n").unwrap();
    }
    let executor = units.join("sentio-executor@0.service");
    std::os::unix::fs::symlink("sentio-executor@.service", &executor).unwrap();
    let (script, timer) = (units.join("sentio-script@nightly.service"), units.join("sentio-script@nightly.timer"));
    std::os::unix::fs::symlink("sentio-script@.service", &script).unwrap();
    std::os::unix::fs::symlink("sentio-script@.timer", &timer).unwrap();
    let out = run(
        Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(format!("--root={}", root.display()))
            .arg(units.join("sentio-scheduler.service"))
            .arg(units.join("sentio-secrets.service"))
            .arg(&executor)
            .arg(&script)
            .arg(&timer),
        Duration::from_secs(60),
    );
    assert!(out.success && out.stderr.trim().is_empty(), "systemd-analyze verify:\n{}{}", out.stdout, out.stderr);
    // The stubs are not part of the installation.
    for e in std::fs::read_dir(&units).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        let instance = ["sentio-executor@0.service", "sentio-script@nightly.service", "sentio-script@nightly.timer"];
        if !name.starts_with("sentio-") || instance.contains(&name.as_str()) {
            std::fs::remove_file(p).unwrap();
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
