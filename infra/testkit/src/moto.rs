//! Finding, installing and starting the moto server.
//!
//! moto is started through the project's launcher (`infra/testkit/moto_server.py`), never as
//! the plain `moto_server`: plain moto lets concurrent DynamoDB requests interfere (a cancelled
//! transaction restores a copy of the whole table taken when it began, wiping out writes that
//! other requests committed meanwhile, so acknowledged writes are lost). The launcher serves
//! moto's own application with DynamoDB requests run one at a time, which gives DynamoDB its
//! real isolation (serializable per item, all-or-nothing per transaction); SQS and Secrets
//! Manager are left concurrent. `shared/tests/emulator.rs` holds the regression test.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The pinned emulator (every call the code makes was checked against it with the Rust SDK).
pub const MOTO_REQUIREMENT: &str = "moto[server]==5.2.5";
/// The launcher, written next to the virtualenv's interpreter when the server starts.
const LAUNCHER: &str = include_str!("../moto_server.py");
const LAUNCHER_FILE: &str = "flexrzp_moto_server.py";
/// `FLEXRZP_MOTO_SERVER=plain` starts the plain `moto_server` instead of the launcher: only to
/// show what the launcher fixes (the emulator regression test then fails).
const SERVER_VARIANT: &str = "FLEXRZP_MOTO_SERVER";
const START_ATTEMPTS: usize = 4;
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running moto server owned by this process.
#[derive(Debug)]
pub struct Moto {
    endpoint: String,
    pid: u32,
}

impl Moto {
    /// `http://127.0.0.1:{port}`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }
}

static MOTO: OnceLock<Result<Moto, String>> = OnceLock::new();

/// This process's moto server, installed and started on first use. Panics with the reason if
/// it cannot be had: a test that needs the emulator must fail loudly, never skip.
pub fn moto() -> &'static Moto {
    let install = || {
        crate::venv::python_tool(
            "moto-venv",
            std::env::var_os("FLEXRZP_MOTO_VENV").map(PathBuf::from),
            MOTO_REQUIREMENT,
            "moto_server",
        )
    };
    match MOTO.get_or_init(|| install().and_then(|server| start(&server))) {
        Ok(moto) => moto,
        Err(reason) => panic!("the moto AWS emulator is not available: {reason}"),
    }
}

/// The cargo target directory (the one holding `CACHEDIR.TAG`) of the running test binary.
pub fn target_dir() -> PathBuf {
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.ancestors().find(|d| d.join("CACHEDIR.TAG").is_file())
    {
        return dir.to_path_buf();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target")
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

/// Whether `GET /moto-api/` answers 200.
fn ready(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

/// How to run the server: the virtualenv's python with the launcher, or (when asked for) the
/// plain `moto_server` next to it.
fn server_command(moto_server: &Path) -> Result<Vec<PathBuf>, String> {
    if std::env::var(SERVER_VARIANT).is_ok_and(|v| v == "plain") {
        return Ok(vec![moto_server.to_path_buf()]);
    }
    let bin = moto_server
        .parent()
        .ok_or_else(|| format!("{} has no folder", moto_server.display()))?;
    let launcher = bin.join(LAUNCHER_FILE);
    if fs::read_to_string(&launcher).ok().as_deref() != Some(LAUNCHER) {
        // Written under a unique name, then renamed: test binaries starting at once never
        // see a half-written launcher.
        let partial = bin.join(format!("{LAUNCHER_FILE}.{}", std::process::id()));
        fs::write(&partial, LAUNCHER)
            .and_then(|()| fs::rename(&partial, &launcher))
            .map_err(|e| format!("cannot write {}: {e}", launcher.display()))?;
    }
    Ok(vec![bin.join("python"), launcher])
}

/// Starts the server on a free port and waits until it answers.
fn start(moto_server: &Path) -> Result<Moto, String> {
    let server = server_command(moto_server)?;
    let logs = target_dir().join("moto-logs");
    fs::create_dir_all(&logs).map_err(|e| format!("cannot create {}: {e}", logs.display()))?;
    let mut last_error = String::new();
    for _ in 0..START_ATTEMPTS {
        let port = free_port()?;
        let log = logs.join(format!("moto-{}-{port}.log", std::process::id()));
        match spawn_and_wait(&server, port, &log) {
            Ok(pid) => {
                return Ok(Moto {
                    endpoint: format!("http://127.0.0.1:{port}"),
                    pid,
                });
            }
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

/// The server's command, its output to `log`, killed when the thread that spawns it ends.
fn server_process(server: &[PathBuf], port: u16, log: &Path) -> Result<(Command, PathBuf), String> {
    let (program, launcher) = server
        .split_first()
        .ok_or_else(|| "no server command".to_owned())?;
    let log_file = File::create(log).map_err(|e| format!("cannot write {}: {e}", log.display()))?;
    let log_err = log_file
        .try_clone()
        .map_err(|e| format!("cannot write {}: {e}", log.display()))?;
    let mut command = Command::new(program);
    command
        .args(launcher)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(log_err);
    // SAFETY: prctl is async-signal-safe; it asks the kernel to kill moto when the thread that
    // spawned it ends. That thread (below) lives until moto exits, so moto dies with the
    // test process and never outlives it.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok((command, program.clone()))
}

fn spawn_and_wait(server: &[PathBuf], port: u16, log: &Path) -> Result<u32, String> {
    let (mut command, program) = server_process(server, port, log)?;
    let (started_tx, started_rx) = mpsc::channel();
    let (exited_tx, exited_rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(format!("moto-{port}"))
        .spawn(move || match command.spawn() {
            Ok(mut child) => {
                let _ = started_tx.send(Ok(child.id()));
                let status = child.wait();
                let _ = exited_tx.send(format!("{status:?}"));
            }
            Err(e) => {
                let _ = started_tx.send(Err(format!("could not start {program:?}: {e}")));
            }
        })
        .map_err(|e| format!("cannot spawn the moto thread: {e}"))?;
    let pid = started_rx
        .recv()
        .map_err(|_| "the moto thread ended early".to_owned())??;
    let deadline = Instant::now() + READY_TIMEOUT;
    while Instant::now() < deadline {
        if ready(port) {
            return Ok(pid);
        }
        if let Ok(status) = exited_rx.try_recv() {
            let output = fs::read_to_string(log).unwrap_or_default();
            return Err(format!(
                "the moto server exited ({status}) before answering on port {port}:\n{output}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: plain kill(2) of the child we started.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
    Err(format!(
        "the moto server did not answer on port {port} within {READY_TIMEOUT:?}; see {}",
        log.display()
    ))
}
