//! Shared helpers: finding the built binaries, free ports, child processes
//! that are killed when a test ends, and a local S3-compatible server.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A binary built next to this test executable (`target/debug/NAME`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap(); // target/debug/deps -> target/debug
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "{} is missing: build the binaries first (cargo build --bins), as scripts/test.sh does",
        p.display()
    );
    p
}

/// A TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `n` consecutive free ports (checked one by one), starting at a random base.
pub fn free_port_range(n: u16) -> u16 {
    'outer: for _ in 0..100 {
        let base = free_port();
        if base.checked_add(n).is_none() {
            continue;
        }
        for p in base..base + n {
            if TcpListener::bind(("127.0.0.1", p)).is_err() {
                continue 'outer;
            }
        }
        return base;
    }
    panic!("no free port range of {n}");
}

/// Output of a finished command.
#[derive(Debug)]
pub struct Finished {
    pub success: bool,
    /// Exit status; `None` if a signal ended the process.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// Runs `cmd` to completion or kills it after `timeout`.
pub fn run(cmd: &mut Command, timeout: Duration) -> Finished {
    run_input(cmd, None, timeout)
}

/// Like [`run`], with `input` on the command's standard input.
pub fn run_input(cmd: &mut Command, input: Option<&str>, timeout: Duration) -> Finished {
    let mut running = Running::start(cmd, input.is_some());
    if let Some(text) = input {
        running.write(text);
    }
    running.finish(timeout)
}

/// A command started with its output collected as it comes, to be
/// signalled or fed before it is [finished](Running::finish).
pub struct Running {
    child: Child,
    what: String,
    started: Instant,
    stdin: Option<std::process::ChildStdin>,
    out: Option<std::thread::JoinHandle<String>>,
    err: Option<std::thread::JoinHandle<String>>,
}

impl Running {
    /// Starts `cmd`, its standard input a pipe if `stdin`, else empty.
    pub fn start(cmd: &mut Command, stdin: bool) -> Self {
        let started = Instant::now();
        let mut child = cmd
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let collect = |mut r: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = r.read_to_string(&mut s);
                s
            })
        };
        let out = collect(Box::new(child.stdout.take().unwrap()));
        let err = collect(Box::new(child.stderr.take().unwrap()));
        Self { stdin: child.stdin.take(), child, what: format!("{cmd:?}"), started, out: Some(out), err: Some(err) }
    }

    /// Writes `text` to the command's standard input.
    pub fn write(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("started with a standard input");
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Sends signal `name` (`INT`, `TERM`, …) to the command.
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(ok.success(), "kill -{name} failed");
    }

    /// Whether the command is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Closes its standard input and waits for the command, killing it
    /// after `timeout` (counted from its start) and failing the test then.
    pub fn finish(mut self, timeout: Duration) -> Finished {
        drop(self.stdin.take());
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break Some(s);
            }
            if self.started.elapsed() > timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let f = Finished {
            success: status.is_some_and(|s| s.success()),
            code: status.and_then(|s| s.code()),
            stdout: self.out.take().unwrap().join().unwrap(),
            stderr: self.err.take().unwrap().join().unwrap(),
            elapsed: self.started.elapsed(),
        };
        assert!(status.is_some(), "{} did not finish within {timeout:?}; stderr:\n{}", self.what, f.stderr);
        f
    }
}

/// A test that fails before [`Running::finish`] leaves no process behind.
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd` and asserts that it succeeded.
pub fn run_ok(cmd: &mut Command, timeout: Duration) -> Finished {
    let f = run(cmd, timeout);
    assert!(f.success, "{cmd:?} failed:\nstdout:\n{}\nstderr:\n{}", f.stdout, f.stderr);
    f
}

/// Plans every statement after it with the session's partitions, however
/// small its inputs (sql/src/one_task.rs): for tests of the distributed path
/// on small sample lakes, given as a `-c` before the statements.
pub const SPREAD: &str = "SET datafusion.optimizer.repartition_file_min_size = 0";

/// A `sentio` command with a clean Sentio environment.
pub fn sentio() -> Command {
    let mut c = Command::new(bin("sentio"));
    for v in ["SENTIO_LAKE", "SENTIO_OPDB_URL", "SENTIO_OPDB_READ_URL", "SENTIO_OPDB_BULK_DUTY", "SENTIO_SCHEDULER"] {
        c.env_remove(v);
    }
    c
}

/// A child process killed (and reaped) when dropped.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something accepts connections on `port`.
pub fn wait_port(port: u16, timeout: Duration) {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < timeout, "nothing listens on port {port} after {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A local S3-compatible server (moto) on a free loopback port.
pub struct S3Server {
    pub endpoint: String,
    bucket: String,
    _process: Guard,
}

fn moto_server() -> PathBuf {
    if let Some(p) = std::env::var_os("SENTIO_MOTO_SERVER") {
        return p.into();
    }
    let venv = repo_root().join(".venv/bin/moto_server");
    assert!(
        venv.is_file(),
        "no S3-compatible test server: run the tests with scripts/test.sh, which installs moto[server] \
         into .venv (or set SENTIO_MOTO_SERVER)"
    );
    venv
}

impl S3Server {
    /// Starts the server and creates `bucket`.
    pub fn start(bucket: &str) -> Self {
        let port = free_port();
        let child = Command::new(moto_server())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start moto_server");
        let guard = Guard(child);
        wait_port(port, Duration::from_secs(30));
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(s, "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "cannot create bucket: {reply}");
        Self { endpoint: format!("http://127.0.0.1:{port}"), bucket: bucket.to_string(), _process: guard }
    }

    /// The keys of the bucket's objects under `prefix`, as S3's own listing
    /// gives them (moto takes unsigned requests; the first 1,000 keys).
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let host = self.endpoint.trim_start_matches("http://");
        let mut s = TcpStream::connect(host).unwrap();
        write!(
            s,
            "GET /{}?list-type=2&prefix={prefix} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n",
            self.bucket
        )
        .unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "cannot list the bucket: {reply}");
        reply.split("<Key>").skip(1).filter_map(|k| k.split("</Key>").next()).map(str::to_string).collect()
    }

    /// The environment that points Sentio (and AWS clients) at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "sentio-test".into()),
            ("AWS_SECRET_ACCESS_KEY", "sentio-test-secret".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("SENTIO_S3_ENDPOINT", self.endpoint.clone()),
            ("SENTIO_S3_ALLOW_HTTP", "true".into()),
        ]
    }
}

/// A local cluster started and stopped with `deploy/local/cluster.sh`.
pub struct Cluster {
    pub dir: PathBuf,
    pub scheduler_port: u16,
    pub executors: usize,
    /// The Flight SQL front end's endpoint, when it was started.
    flight_sql: Option<String>,
}

impl Cluster {
    /// Starts one scheduler and `executors` executors with `env`.
    pub fn start(dir: &Path, executors: usize, env: Vec<(&'static str, String)>) -> Self {
        Self::start_with(dir, executors, env, &[])
    }

    /// Starts a cluster whose scheduler serves the Flight SQL front end, for
    /// the `analyst` API token `token`, with more of `cluster.sh`'s front-end
    /// flags (`--users FILE`, `--tls-cert`, `--tls-key`).
    pub fn start_front_end(
        dir: &Path,
        executors: usize,
        env: Vec<(&'static str, String)>,
        token: &str,
        more: &[&str],
    ) -> Self {
        let mut args = vec!["--token", token];
        args.extend_from_slice(more);
        Self::start_with(dir, executors, env, &args)
    }

    /// Runs `cluster.sh start` on one range of free ports: the scheduler's,
    /// three per executor, then the front end's when `args` has `--token`
    /// (ports picked apart could overlap an executor's, as one CI run did).
    fn start_with(dir: &Path, executors: usize, env: Vec<(&'static str, String)>, args: &[&str]) -> Self {
        let front_end = args.contains(&"--token");
        let cluster_ports = 1 + 3 * executors as u16;
        let base = free_port_range(cluster_ports + u16::from(front_end));
        let mut cmd = Self::script("start", dir);
        cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        cmd.args(["--executors", &executors.to_string()]);
        cmd.args(["--scheduler-port", &base.to_string()]);
        cmd.args(["--executor-port", &(base + 1).to_string()]);
        if front_end {
            cmd.args(["--flight-sql-port", &(base + cluster_ports).to_string()]);
        }
        cmd.args(args);
        let started = run_ok(&mut cmd, Duration::from_secs(120));
        let flight_sql = started.stdout.lines().find_map(|l| l.strip_prefix("flight_sql=")).map(str::to_string);
        Self { dir: dir.to_path_buf(), scheduler_port: base, executors, flight_sql }
    }

    /// The Flight SQL endpoint `cluster.sh` printed (`grpc://HOST:PORT`).
    pub fn flight_sql_uri(&self) -> String {
        self.flight_sql.clone().expect("the cluster was started with its front end")
    }

    /// The scheduler's log.
    pub fn scheduler_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("scheduler.log")).unwrap_or_default()
    }

    fn script(action: &str, dir: &Path) -> Command {
        let mut c = Command::new("bash");
        c.arg(repo_root().join("deploy/local/cluster.sh"));
        c.arg(action).arg("--dir").arg(dir);
        c.arg("--bin").arg(bin("sentio-scheduler").parent().unwrap());
        c
    }

    /// `df://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("df://127.0.0.1:{}", self.scheduler_port)
    }

    /// Pid of executor `i`.
    pub fn executor_pid(&self, i: usize) -> u32 {
        std::fs::read_to_string(self.dir.join(format!("executor-{i}.pid"))).unwrap().trim().parse().unwrap()
    }

    /// Log of executor `i`.
    pub fn executor_log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("executor-{i}.log"))).unwrap_or_default()
    }

    /// Kills the scheduler (SIGKILL) and starts a new one on its port with
    /// `cluster.sh`'s flags, as a supervisor restarting it would; its pid
    /// replaces the old one's, so stopping the cluster stops it.
    pub fn restart_scheduler(&self) {
        let pid_file = self.dir.join("scheduler.pid");
        let old = std::fs::read_to_string(&pid_file).unwrap();
        Command::new("kill").args(["-KILL", old.trim()]).status().unwrap();
        while process_alive(old.trim().parse().unwrap()) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let log_path = self.dir.join("scheduler-restarted.log");
        // Its port can be held for a moment by another socket (an outgoing
        // connection's local end takes ports from the same range): as
        // systemd's `Restart=` would, start it again until it binds.
        let started = Instant::now();
        let mut child = loop {
            let mut child = self.spawn_restarted_scheduler(&log_path);
            match Self::wait_listening(&mut child, &log_path, self.scheduler_port) {
                Ok(()) => break child,
                Err(text) if text.contains("Address already in use") && started.elapsed() < Duration::from_secs(30) => {
                    std::thread::sleep(Duration::from_millis(250));
                }
                Err(text) => panic!("the restarted scheduler exited:\n{text}"),
            }
        };
        std::fs::write(&pid_file, child.id().to_string()).unwrap();
        // `cluster.sh stop` ends it; this reaps it then.
        std::thread::spawn(move || child.wait());
    }

    fn spawn_restarted_scheduler(&self, log_path: &Path) -> Child {
        let log = std::fs::File::create(log_path).unwrap();
        Command::new(bin("sentio-scheduler"))
            .args(["--bind-host", "127.0.0.1", "--external-host", "127.0.0.1"])
            .args(["--bind-port", &self.scheduler_port.to_string(), "--task-distribution", "round-robin"])
            .args(["--executor-timeout-seconds", "20", "--expire-dead-executor-interval-seconds", "5"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    /// Waits until `child` says it listens on `port` (its own bind, not a
    /// connection that could reach something else on the port); its log
    /// if it exits first.
    fn wait_listening(child: &mut Child, log_path: &Path, port: u16) -> Result<(), String> {
        let listening = format!("listening on 127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            let text = std::fs::read_to_string(log_path).unwrap_or_default();
            if let Some(status) = child.try_wait().unwrap() {
                return Err(format!("({status}) {text}"));
            }
            if text.contains(&listening) {
                return Ok(());
            }
            assert!(started.elapsed() < Duration::from_secs(60), "the restarted scheduler never listened:\n{text}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The restarted scheduler's log ([`Cluster::restart_scheduler`]).
    pub fn restarted_scheduler_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("scheduler-restarted.log")).unwrap_or_default()
    }

    /// Stops the cluster; returns the pids it had.
    pub fn stop(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = (0..self.executors)
            .filter_map(|i| std::fs::read_to_string(self.dir.join(format!("executor-{i}.pid"))).ok())
            .chain(std::fs::read_to_string(self.dir.join("scheduler.pid")).ok())
            .filter_map(|s| s.trim().parse().ok())
            .collect();
        pids.sort();
        run_ok(&mut Self::script("stop", &self.dir), Duration::from_secs(60));
        pids
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Self::script("stop", &self.dir).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
}

/// The CPUs `pids` use together over the next `window` (1.0: one core busy).
pub fn cpus_used(pids: &[u32], window: Duration) -> f64 {
    let busy = || pids.iter().map(|&p| cpu_seconds(p)).sum::<f64>();
    let before = busy();
    std::thread::sleep(window);
    (busy() - before) / window.as_secs_f64()
}

/// CPU time (user + system) process `pid` has used, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses: utime and
    // stime are the 12th and 13th of them, in clock ticks (100 per second).
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    let f: Vec<f64> = rest.split_whitespace().map(|v| v.parse().unwrap_or(0.0)).collect();
    (f[11] + f[12]) / 100.0
}

/// Whether a process with `pid` exists (and is not a zombie).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.split_whitespace().nth(2).is_none_or(|s| s != "Z"),
        Err(_) => false,
    }
}

/// A TCP relay on loopback in front of `target` that counts the bytes it
/// passes back to its clients: a client's traffic measured on the wire, not
/// by the client. Runs until the test process ends.
pub struct Relay {
    /// The port clients connect to.
    pub port: u16,
    to_clients: Arc<AtomicU64>,
}

impl Relay {
    pub fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let to_clients = Arc::new(AtomicU64::new(0));
        let (target, counter) = (target.to_string(), Arc::clone(&to_clients));
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&target) else { continue };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || pipe(client, server, None));
                let counter = Arc::clone(&counter);
                std::thread::spawn(move || pipe(s2, c2, Some(counter)));
            }
        });
        Self { port, to_clients }
    }

    /// Bytes sent back to clients so far.
    pub fn to_clients(&self) -> u64 {
        self.to_clients.load(Ordering::SeqCst)
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, counter: Option<Arc<AtomicU64>>) {
    let mut buf = [0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
        if let Some(c) = &counter {
            c.fetch_add(n as u64, Ordering::SeqCst);
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
    let _ = from.shutdown(std::net::Shutdown::Both);
}
