//! The `leasegate` command line, run as a new user would: each test copies the demo config
//! into its own tempdir and runs the built binary against it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

const EXIT_CONFIG: i32 = 64;

/// A good roster that differs from the demo one: Ben moves in, Ana leaves.
const CHANGED_ROSTER: &str = r#"{
  "fetched_at": "2026-11-28T12:00:00Z",
  "residents": [
    { "id": "t-100", "name": "Ana Diaz", "unit": "4B", "status": "past" },
    { "id": "t-101", "name": "Ben Okafor", "unit": "5C", "status": "current" },
    { "id": "t-102", "name": "Chloe Martin", "unit": "2A", "status": "notice" },
    { "id": "t-103", "name": "Dev Patel", "unit": "2A", "status": "past" }
  ]
}"#;

/// Rosters a sync must refuse: truncated JSON, an HTML error page, no `residents` key.
const BAD_ROSTERS: &[(&str, &str)] = &[
    (
        "truncated JSON",
        r#"{"fetched_at":"2026-11-28T12:00:00Z","residents":[{"id":"t-100","name":"Ana"#,
    ),
    (
        "an HTML body",
        "<html><body><h1>502 Bad Gateway</h1></body></html>",
    ),
    (
        "no residents key",
        r#"{"fetched_at":"2026-11-28T12:00:00Z"}"#,
    ),
];

/// A deployment in its own tempdir: the demo config, site file and roster.
struct Deployment {
    dir: tempfile::TempDir,
}

impl Deployment {
    fn new() -> Deployment {
        let dir = tempfile::tempdir().unwrap();
        let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo");
        for name in ["leasegate.toml", "site.toml", "roster.json"] {
            std::fs::copy(demo.join(name), dir.path().join(name)).unwrap();
        }
        let d = Deployment { dir };
        // The demo's embedded broker, moved to a port of this test's own: tests run in
        // parallel, and a demo may be running on the machine.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        d.edit_config("127.0.0.1:1884", &format!("127.0.0.1:{port}"));
        d
    }

    fn automatic() -> Deployment {
        let d = Deployment::new();
        d.edit_config(r#"mode = "approval_required""#, r#"mode = "automatic""#);
        d
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn config(&self) -> PathBuf {
        self.path("leasegate.toml")
    }

    fn store(&self) -> PathBuf {
        self.path("state")
    }

    fn edit_config(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(self.config()).unwrap();
        assert!(text.contains(from), "the demo config has no {from:?}");
        std::fs::write(self.config(), text.replacen(from, to, 1)).unwrap();
    }

    fn write_roster(&self, text: &str) {
        std::fs::write(self.path("roster.json"), text).unwrap();
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_leasegate"));
        c.args(args)
            .current_dir(self.dir.path())
            .env_remove("LEASEGATE_LOG_FORMAT")
            .env_remove("LEASEGATE_LOG")
            .env_remove("JOURNAL_STREAM")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("CREDENTIALS_DIRECTORY");
        c
    }

    /// Run `leasegate <args...> --config <this deployment>`.
    fn run(&self, args: &[&str]) -> Output {
        let config = self.config();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--config", config.to_str().unwrap()]);
        self.command(&all).output().unwrap()
    }

    fn plan(&self) -> Value {
        json_ok(&self.run(&["plan"]))
    }

    fn sync(&self) -> Value {
        json_ok(&self.run(&["sync", "--once"]))
    }

    fn sync_status(&self) -> leasegate::store::SyncStatus {
        let (store, _) = leasegate::store::Store::open(&self.store()).unwrap();
        store.sync_status().unwrap()
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// The command succeeded and all of its stdout is one JSON document.
fn json_ok(o: &Output) -> Value {
    assert!(o.status.success(), "{:?}\n{}", o.status, stderr(o));
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", stdout(o)))
}

fn suggestions(report: &Value) -> &Vec<Value> {
    report["suggestions"]
        .as_array()
        .unwrap_or_else(|| panic!("no suggestions array in {report}"))
}

/// What identifies a suggestion, leaving out `valid_from` (it follows the wall clock).
fn identities(report: &Value) -> Vec<(String, String, Value, String)> {
    suggestions(report)
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_string(),
                s["resident_id"].as_str().unwrap().to_string(),
                s["key"].clone(),
                s["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn states(report: &Value) -> Vec<String> {
    suggestions(report)
        .iter()
        .map(|s| {
            s["state"]
                .as_str()
                .unwrap_or_else(|| panic!("no state in {s}"))
                .to_string()
        })
        .collect()
}

#[test]
fn check_config_exits_0_on_the_demo_config_and_creates_nothing() {
    let d = Deployment::new();
    let o = d
        .command(&["check-config", d.config().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!d.store().exists());
}

#[test]
fn check_config_reports_every_error_at_once_on_stderr_and_exits_64() {
    let d = Deployment::new();
    d.edit_config(
        r#"timezone = "America/Denver""#,
        r#"timezone = "Mars/Base""#,
    );
    d.edit_config(r#"mode = "approval_required""#, r#"mode = "yolo""#);
    d.edit_config(
        r#"activation_delay = "15m""#,
        r#"activation_delay = "soon""#,
    );
    d.edit_config(
        r#"kind = "file""#,
        "kind = \"file\"\napi_key = \"hunter2-xyz\"",
    );
    let config = d.config();
    let o = d
        .command(&["check-config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(EXIT_CONFIG));
    assert!(o.stdout.is_empty(), "{}", stdout(&o));
    let err = stderr(&o);
    let prefix = format!("{}: ", config.display());
    for key in [
        "site.timezone",
        "access.mode",
        "access.activation_delay",
        "pms.api_key",
    ] {
        let line = err
            .lines()
            .find(|l| l.starts_with(&format!("{prefix}{key}: ")))
            .unwrap_or_else(|| panic!("no `file: {key}: reason` line in:\n{err}"));
        assert!(
            line.len() > prefix.len() + key.len() + 2,
            "no reason: {line}"
        );
    }
    assert!(err.contains("api_key_file"), "{err}");
    assert!(!err.contains("hunter2-xyz"), "a secret leaked:\n{err}");
}

#[test]
fn check_config_reports_site_file_errors_with_their_key_paths() {
    let d = Deployment::new();
    let site = std::fs::read_to_string(d.path("site.toml")).unwrap();
    std::fs::write(
        d.path("site.toml"),
        format!("{site}\n[[units]]\npms_unit = \"4B\"\ndoors = []\n"),
    )
    .unwrap();
    std::fs::remove_file(d.path("roster.json")).unwrap();
    let o = d
        .command(&["check-config", d.config().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(EXIT_CONFIG));
    let err = stderr(&o);
    assert!(err.contains("units[3].pms_unit: "), "{err}");
    assert!(err.contains("units[3].doors: "), "{err}");
    assert!(err.contains("pms.path: "), "{err}");
}

#[test]
fn plan_prints_only_json_with_every_documented_field_and_creates_no_store() {
    let d = Deployment::new();
    let report = d.plan();
    let list = suggestions(&report);
    assert!(!list.is_empty());
    for s in list {
        for field in [
            "id",
            "resident_id",
            "unit",
            "key",
            "action",
            "color",
            "valid_from",
        ] {
            assert!(s.get(field).is_some(), "{field} missing from {s}");
        }
        assert!(s.get("state").is_none(), "plan shows no state: {s}");
        let (action, color) = (s["action"].as_str().unwrap(), s["color"].as_str().unwrap());
        let expected = match action {
            "grant" => "green",
            "revoke" => "red",
            "none" => "grey",
            other => panic!("unknown action {other}"),
        };
        assert_eq!(color, expected, "{s}");
        if action == "grant" {
            let from = s["valid_from"].as_str().unwrap();
            chrono::DateTime::parse_from_rfc3339(from).unwrap();
        }
    }
    // The demo's current resident in 4B gets the unit key.
    assert!(list
        .iter()
        .any(|s| s["resident_id"] == "t-100" && s["key"] == "unit:4B" && s["action"] == "grant"));
    assert!(!d.store().exists(), "plan created the store");
    assert!(!d.path("state.quarantined").exists());
}

#[test]
fn plan_twice_on_a_fresh_machine_shows_the_same_suggestions_and_changes_nothing() {
    let d = Deployment::new();
    let before: Vec<_> = std::fs::read_dir(d.dir.path()).unwrap().collect();
    let first = d.plan();
    let second = d.plan();
    assert_eq!(identities(&first), identities(&second));
    let after: Vec<_> = std::fs::read_dir(d.dir.path()).unwrap().collect();
    assert_eq!(
        before.len(),
        after.len(),
        "plan wrote into the deployment folder"
    );
    assert!(!d.store().exists());
}

#[test]
fn sync_once_creates_what_plan_showed_pending_in_approval_required_mode() {
    let d = Deployment::new();
    let plan = d.plan();
    let sync = d.sync();
    assert_eq!(identities(&plan), identities(&sync));
    let states = states(&sync);
    assert!(!states.is_empty());
    assert!(states.iter().all(|s| s == "pending"), "{states:?}");
    for s in suggestions(&sync) {
        for field in [
            "id",
            "resident_id",
            "unit",
            "key",
            "action",
            "color",
            "valid_from",
        ] {
            assert!(s.get(field).is_some(), "{field} missing from {s}");
        }
    }
}

#[test]
fn sync_once_in_automatic_mode_applies_everything_on_a_fresh_store() {
    let d = Deployment::automatic();
    let sync = d.sync();
    let states = states(&sync);
    assert!(!states.is_empty());
    assert!(states.iter().all(|s| s == "applied"), "{states:?}");
}

#[test]
fn a_second_sync_of_the_same_roster_creates_nothing_new() {
    for d in [Deployment::new(), Deployment::automatic()] {
        assert!(!suggestions(&d.sync()).is_empty());
        let again = d.sync();
        assert!(suggestions(&again).is_empty(), "{again}");
        assert!(suggestions(&d.plan()).is_empty());
    }
}

#[test]
fn sync_without_once_is_refused_by_the_command_line() {
    let d = Deployment::new();
    let o = d.run(&["sync"]);
    assert!(!o.status.success());
    assert!(o.stdout.is_empty());
    assert!(!d.store().exists());
}

#[test]
fn a_failed_sync_exits_nonzero_with_the_reason_on_stderr_and_changes_nothing() {
    for (what, bad) in BAD_ROSTERS {
        let d = Deployment::new();
        d.sync();
        d.write_roster(CHANGED_ROSTER);
        let expected = d.plan();
        assert!(!suggestions(&expected).is_empty());

        d.write_roster(bad);
        let o = d.run(&["sync", "--once"]);
        assert!(!o.status.success(), "{what}: sync succeeded");
        assert_ne!(
            o.status.code(),
            Some(EXIT_CONFIG),
            "{what}: not a config error"
        );
        assert!(o.stdout.is_empty(), "{what}: stdout {}", stdout(&o));
        let err = stderr(&o);
        assert!(err.contains("malformed"), "{what}: {err}");
        assert!(err.contains("nothing was changed"), "{what}: {err}");

        let status = d.sync_status();
        assert!(status.last_failure.is_some(), "{what}: {status:?}");
        assert!(
            status
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("malformed")),
            "{what}: {status:?}"
        );

        d.write_roster(CHANGED_ROSTER);
        assert_eq!(
            identities(&d.plan()),
            identities(&expected),
            "{what}: the failed sync changed what the next sync would do"
        );
        // The sync also reports the older pending suggestions it superseded; the new ones
        // are exactly what plan showed.
        let sync = d.sync();
        let (superseded, new): (Vec<&Value>, Vec<&Value>) = suggestions(&sync)
            .iter()
            .partition(|s| s["state"] == "superseded");
        assert!(!superseded.is_empty(), "{what}: {sync}");
        let new = serde_json::json!({ "suggestions": new });
        assert_eq!(identities(&new), identities(&expected), "{what}");
        assert!(states(&new).iter().all(|s| s == "pending"), "{what}: {new}");
    }
}

#[test]
fn a_failed_first_sync_on_a_fresh_machine_grants_nothing() {
    for (what, bad) in BAD_ROSTERS {
        let d = Deployment::automatic();
        let expected = d.plan();
        d.write_roster(bad);
        let o = d.run(&["sync", "--once"]);
        assert!(!o.status.success(), "{what}");
        assert!(o.stdout.is_empty(), "{what}: {}", stdout(&o));
        d.write_roster(
            &std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo/roster.json"),
            )
            .unwrap(),
        );
        assert_eq!(identities(&d.plan()), identities(&expected), "{what}");
        let states = states(&d.sync());
        assert!(states.iter().all(|s| s == "applied"), "{what}: {states:?}");
    }
}

#[test]
fn a_sync_whose_roster_file_is_gone_exits_64_naming_pms_path() {
    let d = Deployment::new();
    d.sync();
    std::fs::remove_file(d.path("roster.json")).unwrap();
    // The config names a roster that is gone: that is reported as a config problem (64),
    // before anything is opened.
    let o = d.run(&["sync", "--once"]);
    assert_eq!(o.status.code(), Some(EXIT_CONFIG), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
    assert!(stderr(&o).contains("pms.path"), "{}", stderr(&o));
}

#[test]
fn export_prints_the_site_file_format_and_import_accepts_it() {
    let d = Deployment::new();
    let o = d.run(&["export"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let exported = stdout(&o);
    let demo_site = leasegate::config::load_site(&d.path("site.toml")).unwrap();
    let site = leasegate::config::parse_site(&exported, Path::new("export.toml")).unwrap();
    assert_eq!(site, demo_site);

    // Change the export, import it, and export again.
    let changed = format!(
        "{exported}\n[[doors]]\nid = \"bike-room\"\n\n[[keys]]\nid = \"bike-room\"\nname = \"Bike Room\"\ndoors = [\"bike-room\"]\nshareable = true\n"
    );
    std::fs::write(d.path("new-site.toml"), &changed).unwrap();
    let new_site = d.path("new-site.toml");
    let o = d.run(&["import", new_site.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stdout.is_empty(), "{}", stdout(&o));

    let out_file = d.path("out.toml");
    let o = d.run(&["export", "--output", out_file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let again = leasegate::config::load_site(&out_file).unwrap();
    assert_eq!(
        again,
        leasegate::config::parse_site(&changed, Path::new("x")).unwrap()
    );
    assert!(again.keys.iter().any(|k| k.id == "bike-room"));
}

#[test]
fn import_of_a_broken_site_file_exits_64_with_every_error_and_keeps_the_site() {
    let d = Deployment::new();
    d.sync();
    let broken = d.path("broken.toml");
    std::fs::write(
        &broken,
        "[[units]]\npms_unit = \"4B\"\ndoors = []\n\n[[units]]\npms_unit = \"4B\"\ndoors = [\"x\"]\n\n[[keys]]\nid = \"no good\"\nname = \"N\"\ndoors = [\"d\"]\n",
    )
    .unwrap();
    let o = d.run(&["import", broken.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(EXIT_CONFIG));
    assert!(o.stdout.is_empty());
    let err = stderr(&o);
    let prefix = format!("{}: ", broken.display());
    for key in ["units[0].doors", "units[1].pms_unit", "keys[0].id"] {
        assert!(
            err.lines()
                .any(|l| l.starts_with(&format!("{prefix}{key}: "))),
            "no line for {key} in:\n{err}"
        );
    }
    let o = d.run(&["export"]);
    let site = leasegate::config::parse_site(&stdout(&o), Path::new("x")).unwrap();
    assert_eq!(
        site,
        leasegate::config::load_site(&d.path("site.toml")).unwrap()
    );
}

/// Sync is refused, twice, until `rebuild`; then it works. Returns that sync's report.
fn assert_refuses_until_rebuilt(d: &Deployment) -> Value {
    let o = d.run(&["sync", "--once"]);
    assert!(!o.status.success());
    assert!(o.stdout.is_empty(), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(err.contains("quarantined"), "{err}");
    assert!(err.contains("leasegate rebuild"), "{err}");

    // Still refused on the next try: nothing quietly starts over with an empty store.
    let o = d.run(&["sync", "--once"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("quarantined"));

    let o = d.run(&["rebuild"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!d.path("state.quarantined").exists());

    d.sync()
}

#[test]
fn a_store_with_a_quarantine_marker_refuses_to_sync_until_rebuild() {
    let d = Deployment::new();
    d.sync();
    std::fs::write(
        d.path("state.quarantined"),
        r#"{"at":"x","reason":"test","moved_to":"/tmp/x"}"#,
    )
    .unwrap();
    // The marker alone moved nothing aside: after rebuild the same store is in force, and the
    // roster it already synced brings nothing new.
    let sync = assert_refuses_until_rebuilt(&d);
    assert!(suggestions(&sync).is_empty(), "{sync}");
}

#[test]
fn a_corrupt_store_is_quarantined_and_refuses_to_sync_until_rebuild() {
    let d = Deployment::new();
    d.sync();
    // A second open lets sled write its snapshot, so the damage below is detectable.
    d.sync();
    let db = d.store().join("db");
    let bytes = std::fs::read(&db).unwrap();
    std::fs::write(&db, bytes.iter().map(|b| b ^ 0x5a).collect::<Vec<u8>>()).unwrap();
    // The rebuilt store starts from the site file: the roster's suggestions come anew.
    let sync = assert_refuses_until_rebuilt(&d);
    assert!(!suggestions(&sync).is_empty());
    assert!(states(&sync).iter().all(|s| s == "pending"), "{sync}");
    let moved: Vec<_> = std::fs::read_dir(d.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("state.corrupt-"))
        .collect();
    assert_eq!(moved.len(), 1, "the damaged store is kept aside: {moved:?}");
}

#[test]
fn run_exits_64_on_a_bad_config_before_doing_anything() {
    let d = Deployment::new();
    d.edit_config(r#"mode = "approval_required""#, r#"mode = "sometimes""#);
    let o = d.run(&["run"]);
    assert_eq!(o.status.code(), Some(EXIT_CONFIG));
    assert!(stderr(&o).contains("access.mode"), "{}", stderr(&o));
    assert!(
        !d.store().exists(),
        "run opened the store with a bad config"
    );
}

/// Kills the child if a test fails before it exits on its own.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Start `leasegate run`, wait until it logs a finished sync, send SIGTERM, and return its
/// exit code, every stderr line and its stdout.
fn run_until_synced_then_sigterm(d: &Deployment, json_logs: bool) -> (i32, Vec<String>, String) {
    run_until_logged_then_sigterm(d, json_logs, "sync done")
}

/// Start `leasegate run`, wait until a stderr line contains `wait_for`, send SIGTERM, and
/// return its exit code, every stderr line and its stdout.
fn run_until_logged_then_sigterm(
    d: &Deployment,
    json_logs: bool,
    wait_for: &str,
) -> (i32, Vec<String>, String) {
    let config = d.config();
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains(r#"poll_interval = "10s""#), "{text}");
    let mut cmd = d.command(&["run", "--config", config.to_str().unwrap()]);
    if json_logs {
        cmd.env("LEASEGATE_LOG_FORMAT", "json");
    }
    let mut child = Running(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let done = line.contains(wait_for);
                lines.push(line);
                if done {
                    break;
                }
            }
            Err(e) => panic!("no {wait_for:?} within 60 s ({e:?}); stderr so far:\n{lines:#?}"),
        }
    }
    let pid = child.0.id() as libc::pid_t;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "still running 10 s after SIGTERM; stderr:\n{lines:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.0.stdout.take().unwrap(), &mut out).unwrap();
    (status.code().expect("exited, not killed"), lines, out)
}

#[test]
fn run_syncs_on_start_and_exits_0_on_sigterm_with_logs_on_stderr_only() {
    let d = Deployment::new();
    let (code, lines, out) = run_until_synced_then_sigterm(&d, false);
    assert_eq!(code, 0, "{lines:#?}");
    assert!(out.is_empty(), "run printed on stdout: {out}");
    assert!(
        lines.iter().any(|l| l.contains("shutting down")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().all(|l| !l.contains('\u{1b}')),
        "colour codes in logs that go to a pipe: {lines:#?}"
    );
    // The sync it ran is in the store.
    assert!(d.sync_status().last_success.is_some());
}

#[test]
fn run_with_json_log_format_writes_one_json_object_per_stderr_line() {
    let d = Deployment::new();
    let (code, lines, out) = run_until_synced_then_sigterm(&d, true);
    assert_eq!(code, 0, "{lines:#?}");
    assert!(out.is_empty(), "run printed on stdout: {out}");
    assert!(!lines.is_empty());
    for line in &lines {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v.get("level").is_some(), "{line}");
    }
    assert!(lines.iter().any(|l| {
        serde_json::from_str::<Value>(l).unwrap()["fields"]["message"] == "sync done"
    }));
}

#[test]
fn run_shuts_down_cleanly_on_sigterm_sent_as_soon_as_it_logs_starting() {
    let d = Deployment::new();
    let (code, lines, _) = run_until_logged_then_sigterm(&d, false, "leasegate starting");
    assert_eq!(code, 0, "{lines:#?}");
}
