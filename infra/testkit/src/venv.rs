//! Python tools the tests need (the moto emulator, cargo-lambda), each installed from PyPI
//! into its own virtualenv under the target directory, once, under a file lock shared by every
//! test binary. A tool that cannot be installed fails the test that needs it, saying why.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::moto::target_dir;

fn run(command: &mut Command, what: &str, log: &Path) -> Result<(), String> {
    let log_file = File::create(log).map_err(|e| format!("cannot write {}: {e}", log.display()))?;
    let log_err = log_file
        .try_clone()
        .map_err(|e| format!("cannot write {}: {e}", log.display()))?;
    let status = command
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(log_err)
        .status()
        .map_err(|e| format!("{what}: could not run {:?}: {e}", command.get_program()))?;
    if status.success() {
        return Ok(());
    }
    let output = fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = output.lines().rev().take(20).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(format!("{what} failed ({status}):\n{}", tail.join("\n")))
}

/// Makes sure `target/{dir_name}` (or `venv_override`) holds `requirement` and returns the
/// path of its `executable`.
pub fn python_tool(
    dir_name: &str,
    venv_override: Option<PathBuf>,
    requirement: &str,
    executable: &str,
) -> Result<PathBuf, String> {
    let venv = venv_override.unwrap_or_else(|| target_dir().join(dir_name));
    let tool = venv.join("bin").join(executable);
    let marker = venv.join(".flexrzp-installed");
    let installed = |m: &Path| fs::read_to_string(m).is_ok_and(|v| v.trim() == requirement);
    if installed(&marker) && tool.is_file() {
        return Ok(tool);
    }
    let parent = venv.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    let lock_path = parent.join(format!("{dir_name}.lock"));
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
    // Another test binary may have finished the install while we waited for the lock.
    if installed(&marker) && tool.is_file() {
        return Ok(tool);
    }
    let python = std::env::var("FLEXRZP_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let log = parent.join(format!("{dir_name}-install.log"));
    if !venv.join("bin/python").is_file() {
        run(
            Command::new(&python).args(["-m", "venv"]).arg(&venv),
            &format!("creating the virtualenv {} with {python}", venv.display()),
            &log,
        )?;
    }
    run(
        Command::new(venv.join("bin/pip")).args([
            "install",
            "--disable-pip-version-check",
            "--quiet",
            requirement,
        ]),
        &format!("pip install {requirement} (needs PyPI)"),
        &log,
    )?;
    if !tool.is_file() {
        return Err(format!("{} is missing after the install", tool.display()));
    }
    fs::write(&marker, requirement)
        .map_err(|e| format!("cannot write {}: {e}", marker.display()))?;
    Ok(tool)
}
