//! The Python that test peers run on (libosdp, the fake BlueZ): a venv under
//! `target/test-py`, made on first use and refreshed when `tests/python-requirements.txt`
//! changes. A file lock keeps parallel tests from building it twice. Needs network access
//! to PyPI the first time (`.ci/run` builds it up front).
#![allow(dead_code)]

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The venv's python3, ready to use.
pub fn python() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let venv = root.join("target/test-py");
    let py = venv.join("bin/python3");
    let req_file = root.join("tests/python-requirements.txt");
    let wanted = std::fs::read_to_string(&req_file).expect("tests/python-requirements.txt");
    let stamp = venv.join(".requirements");
    std::fs::create_dir_all(root.join("target")).expect("target dir");
    let lock = std::fs::File::create(root.join("target/test-py.lock")).expect("lock file");
    // SAFETY: flock on a file descriptor we own; released when `lock` is dropped.
    let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(rc, 0, "cannot lock target/test-py.lock");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) && py.exists() {
        return py;
    }
    let run = |cmd: &mut Command, what: &str| {
        let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(
            out.status.success(),
            "{what} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    if !py.exists() {
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv target/test-py",
        );
    }
    run(
        Command::new(&py)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&req_file),
        "pip install -r tests/python-requirements.txt",
    );
    std::fs::write(&stamp, &wanted).expect("write the venv stamp");
    py
}
