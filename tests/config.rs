//! The deployment config and the site file, through the library: what parses, what is
//! refused, and that every problem is reported at once with its file, key and reason.

use std::path::{Path, PathBuf};
use std::time::Duration;

use leasegate::config::{self, ConfigError, ConfigErrors, PmsSource};
use leasegate::core::{EvictionPolicy, Mode};

/// The deployment config exactly as the issue's "Interface that must hold" gives it.
const INTERFACE_CONFIG: &str = r#"
[site]
id = "maple-court"
timezone = "America/Denver"
site_file = "site.toml"

[store]
path = "state"

[access]
mode = "approval_required"        # or "automatic"
activation_delay = "15m"

[pms]
kind = "file"
path = "roster.json"
poll_interval = "5m"
"#;

/// The site file exactly as the issue gives it, plus the door-to-device line it mentions.
const INTERFACE_SITE: &str = r#"
[[units]]
pms_unit = "4B"
doors = ["unit-4b"]

[[doors]]
id = "unit-4b"
device = "lock-4b"

[[keys]]
id = "resident-entrances"
name = "Resident Entrances"
doors = ["front-entrance", "elevator"]
shareable = false
auto_share = true
"#;

const ROSTER: &str = r#"{"fetched_at":"2026-11-27T12:00:00Z","residents":[{"id":"t-100","name":"Ana Diaz","unit":"4B","status":"current"}]}"#;

fn demo(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config/demo")
        .join(name)
}

/// A tempdir holding the given files.
fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

fn parse_err(text: &str, file: &Path) -> Vec<ConfigError> {
    match config::parse(text, file) {
        Ok(cfg) => panic!("expected errors, got {cfg:?}"),
        Err(ConfigErrors(errors)) => errors,
    }
}

fn find<'e>(errors: &'e [ConfigError], key: &str) -> &'e ConfigError {
    errors
        .iter()
        .find(|e| e.key == key)
        .unwrap_or_else(|| panic!("no error for {key:?} in {errors:#?}"))
}

#[test]
fn the_interface_config_parses_and_its_relative_paths_resolve_against_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("leasegate.toml");
    let cfg = config::parse(INTERFACE_CONFIG, &file).unwrap();
    assert_eq!(cfg.file, file);
    assert_eq!(cfg.site.id, "maple-court");
    assert_eq!(cfg.site.timezone, chrono_tz::America::Denver);
    assert_eq!(cfg.site.site_file, Some(dir.path().join("site.toml")));
    assert_eq!(cfg.store.path, dir.path().join("state"));
    assert_eq!(
        cfg.pms.source,
        PmsSource::File {
            path: dir.path().join("roster.json")
        }
    );
    assert_eq!(cfg.access.mode, Mode::ApprovalRequired);
    assert_eq!(
        cfg.access.policy.activation_delay,
        chrono::Duration::minutes(15)
    );
    assert_eq!(cfg.pms.poll_interval, Duration::from_secs(300));
}

#[test]
fn absolute_paths_in_the_config_are_kept_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let text = INTERFACE_CONFIG.replace(r#"path = "state""#, r#"path = "/var/lib/leasegate""#);
    let cfg = config::parse(&text, &dir.path().join("leasegate.toml")).unwrap();
    assert_eq!(cfg.store.path, PathBuf::from("/var/lib/leasegate"));
}

#[test]
fn omitted_settings_take_their_defaults() {
    let text = r#"
[site]
id = "maple-court"
timezone = "America/Denver"

[store]
path = "state"

[pms]
kind = "file"
path = "roster.json"
"#;
    let cfg = config::parse(text, Path::new("/etc/leasegate/leasegate.toml")).unwrap();
    assert_eq!(cfg.site.site_file, None);
    assert_eq!(cfg.access.mode, Mode::ApprovalRequired);
    assert_eq!(
        cfg.access.policy.activation_delay,
        chrono::Duration::minutes(15)
    );
    assert_eq!(cfg.access.policy.eviction, EvictionPolicy::Hold);
    assert_eq!(cfg.access.policy.guard.min, 3);
    assert_eq!(cfg.access.policy.guard.percent, 5.0);
    assert_eq!(cfg.pms.poll_interval, Duration::from_secs(5 * 60));
    assert_eq!(cfg.store.path, PathBuf::from("/etc/leasegate/state"));
}

#[test]
fn explicit_mode_guard_eviction_and_durations_are_read() {
    let text = format!("{INTERFACE_CONFIG}\n[access.guard]\nmin_residents = 7\npercent = 12.5\n")
        .replace(r#"mode = "approval_required""#, r#"mode = "automatic""#)
        .replace(
            r#"activation_delay = "15m""#,
            "activation_delay = \"1h30m\"\neviction = \"keep\"",
        )
        .replace(r#"poll_interval = "5m""#, r#"poll_interval = "10s""#);
    let cfg = config::parse(&text, Path::new("leasegate.toml")).unwrap();
    assert_eq!(cfg.access.mode, Mode::Automatic);
    assert_eq!(
        cfg.access.policy.activation_delay,
        chrono::Duration::minutes(90)
    );
    assert_eq!(cfg.access.policy.eviction, EvictionPolicy::Keep);
    assert_eq!(cfg.access.policy.guard.min, 7);
    assert_eq!(cfg.access.policy.guard.percent, 12.5);
    assert_eq!(cfg.pms.poll_interval, Duration::from_secs(10));
}

#[test]
fn the_demo_config_loads_with_its_site_and_roster_files() {
    let cfg = config::load(&demo("leasegate.toml")).unwrap();
    assert_eq!(cfg.site.id, "maple-court");
    let site = config::load_site(cfg.site.site_file.as_ref().unwrap()).unwrap();
    assert!(!site.units.is_empty() && !site.keys.is_empty());
}

#[test]
fn every_config_mistake_is_reported_at_once_with_file_key_and_reason() {
    let file = Path::new("/etc/leasegate/leasegate.toml");
    let text = r#"
[site]
id = "maple-court"
timezone = "Mars/Olympus_Mons"
site_file = "site.toml"
colour = "blue"

[store]
# path forgotten

[access]
mode = "yolo"
activation_delay = "15 minutes"

[pms]
kind = "yardi"
poll_interval = "5m"

[mqtt]
host = "localhost"

[modbus]
port = 502
"#;
    let errors = parse_err(text, file);
    let expected = [
        ("site.timezone", "Mars/Olympus_Mons"),
        ("site.colour", "unknown key"),
        ("store.path", "required"),
        ("access.mode", "yolo"),
        ("access.activation_delay", "not a duration"),
        ("pms.kind", "yardi"),
        ("mqtt.url", "required"),
        ("mqtt.host", "unknown key"),
        ("modbus", "unknown section"),
    ];
    for (key, reason) in expected {
        let e = find(&errors, key);
        assert_eq!(e.file, file, "{e:?}");
        assert!(e.reason.contains(reason), "{key}: {:?}", e.reason);
    }
    assert_eq!(
        errors.len(),
        expected.len(),
        "one error per mistake, nothing extra: {errors:#?}"
    );
}

#[test]
fn config_errors_display_one_file_key_reason_line_each() {
    let file = Path::new("/etc/leasegate/leasegate.toml");
    let text = INTERFACE_CONFIG
        .replace("America/Denver", "Nowhere/Special")
        .replace(r#"mode = "approval_required""#, r#"mode = "sometimes""#);
    let errors = config::parse(&text, file).unwrap_err();
    let shown = errors.to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 2, "{shown}");
    assert!(lines[0].starts_with("/etc/leasegate/leasegate.toml: site.timezone: "));
    assert!(lines[1].starts_with("/etc/leasegate/leasegate.toml: access.mode: "));
}

#[test]
fn missing_required_sections_and_keys_are_named() {
    let errors = parse_err("[site]\nid = \"x\"\n", Path::new("c.toml"));
    find(&errors, "site.timezone");
    find(&errors, "store");
    find(&errors, "pms");
    let errors = parse_err(
        &INTERFACE_CONFIG.replace("kind = \"file\"\n", ""),
        Path::new("c.toml"),
    );
    assert!(find(&errors, "pms.kind").reason.contains("required"));
}

#[test]
fn bad_values_are_refused_per_key() {
    let text = format!("{INTERFACE_CONFIG}\n[access.guard]\nmin_residents = -1\npercent = 150\n")
        .replace(r#"id = "maple-court""#, r#"id = "maple court!""#)
        .replace(r#"poll_interval = "5m""#, r#"poll_interval = "1s""#)
        .replace(r#"path = "state""#, "path = 5");
    let errors = parse_err(&text, Path::new("c.toml"));
    for key in [
        "site.id",
        "store.path",
        "pms.poll_interval",
        "access.guard.min_residents",
        "access.guard.percent",
    ] {
        find(&errors, key);
    }
}

#[test]
fn an_inline_secret_is_refused_with_a_hint_to_use_a_file_and_its_value_is_never_shown() {
    for key in ["api_key", "client_secret", "password", "token"] {
        let value = format!("sup3r-s3cret-{key}-value");
        let text = INTERFACE_CONFIG.replace(
            "poll_interval = \"5m\"",
            &format!("poll_interval = \"5m\"\n{key} = \"{value}\""),
        );
        let errors = config::parse(&text, Path::new("leasegate.toml")).unwrap_err();
        let e = find(&errors.0, &format!("pms.{key}"));
        assert!(
            e.reason.contains(&format!("`{key}_file`")),
            "{key}: {:?}",
            e.reason
        );
        assert!(
            !errors.to_string().contains(&value),
            "the secret leaked: {errors}"
        );
        assert!(!format!("{errors:?}").contains(&value));
    }
}

#[test]
fn an_inline_secret_under_an_unknown_pms_kind_is_still_refused_and_not_shown() {
    let text = INTERFACE_CONFIG.replace(
        "kind = \"file\"",
        "kind = \"yardi\"\nclient_secret = \"cs-0123456789\"",
    );
    let errors = config::parse(&text, Path::new("leasegate.toml")).unwrap_err();
    find(&errors.0, "pms.kind");
    assert!(find(&errors.0, "pms.client_secret")
        .reason
        .contains("client_secret_file"));
    assert!(!errors.to_string().contains("cs-0123456789"));
}

#[test]
fn an_unknown_pms_kind_does_not_also_flag_that_kinds_own_keys_as_unknown() {
    let text = INTERFACE_CONFIG.replace("kind = \"file\"", "kind = \"yardi\"");
    let errors = parse_err(&text, Path::new("leasegate.toml"));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].key, "pms.kind");
}

#[test]
fn a_toml_syntax_error_is_one_error_with_its_position_and_reason() {
    let file = Path::new("/etc/leasegate/leasegate.toml");
    let text = "[site\nid = \"maple-court\"\n";
    let errors = parse_err(text, file);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].file, file);
    assert!(
        errors[0].reason.contains("line 1"),
        "{:?}",
        errors[0].reason
    );
    assert!(
        errors[0].reason.contains("column"),
        "{:?}",
        errors[0].reason
    );
    assert!(!errors[0].reason.contains('\n'));
    // It also says what is wrong, not only where.
    assert!(
        errors[0].reason.contains("header"),
        "{:?}",
        errors[0].reason
    );
}

#[test]
fn a_toml_syntax_error_on_a_secret_line_does_not_echo_the_secret() {
    let text = "[pms]\napi_key = \"hunter2-unterminated\n";
    let errors = parse_err(text, Path::new("leasegate.toml"));
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].reason.contains("line 2"),
        "{:?}",
        errors[0].reason
    );
    assert!(
        !errors[0].reason.contains("hunter2"),
        "{:?}",
        errors[0].reason
    );
}

#[test]
fn the_interface_site_file_parses_and_round_trips_through_export() {
    let site = config::parse_site(INTERFACE_SITE, Path::new("site.toml")).unwrap();
    assert_eq!(site.units[0].pms_unit, "4B");
    assert_eq!(site.units[0].doors, vec!["unit-4b".to_string()]);
    assert_eq!(site.doors[0].device.as_deref(), Some("lock-4b"));
    let k = &site.keys[0];
    assert_eq!(k.id, "resident-entrances");
    assert_eq!(k.name, "Resident Entrances");
    assert!(!k.shareable && k.auto_share);
    let again = config::parse_site(&config::site_to_toml(&site), Path::new("x.toml")).unwrap();
    assert_eq!(again, site);
}

#[test]
fn site_file_problems_are_all_reported_with_their_key_paths() {
    let file = Path::new("/etc/leasegate/site.toml");
    let text = r#"
[[units]]
pms_unit = "4B"
doors = ["unit-4b"]

[[units]]
pms_unit = "4B"
doors = ["unit-4b-other"]

[[units]]
pms_unit = "5C"
doors = []

[[doors]]
id = "lobby door"

[[keys]]
id = "gym"
name = "Gym"
doors = ["gym"]

[[keys]]
id = "gym"
name = "Gym again"
doors = ["gym"]

[[keys]]
id = "bad:id"
name = "Bad"
doors = ["x"]
"#;
    let errors = config::parse_site(text, file).unwrap_err().0;
    for (key, reason) in [
        ("units[1].pms_unit", "mapped twice"),
        ("units[2].doors", "at least one door"),
        ("doors[0].id", "must be"),
        ("keys[1].id", "defined twice"),
        ("keys[2].id", "must be"),
    ] {
        let e = find(&errors, key);
        assert_eq!(e.file, file);
        assert!(e.reason.contains(reason), "{key}: {:?}", e.reason);
    }
    assert_eq!(errors.len(), 5, "{errors:#?}");
}

#[test]
fn a_site_file_with_a_missing_field_says_which_field() {
    let errors = config::parse_site("[[units]]\npms_unit = \"4B\"\n", Path::new("s.toml"))
        .unwrap_err()
        .0;
    assert_eq!(errors.len(), 1);
    assert!(errors[0].reason.contains("doors"), "{:?}", errors[0].reason);
    let errors = config::parse_site(
        "[[units]]\npms_unit = \"4B\"\ndoors = [\"a\"]\ncolour = \"red\"\n",
        Path::new("s.toml"),
    )
    .unwrap_err()
    .0;
    assert!(
        errors[0].reason.contains("colour"),
        "{:?}",
        errors[0].reason
    );
}

#[test]
fn load_reports_site_file_and_roster_file_problems_together() {
    let dir = dir_with(&[
        ("leasegate.toml", INTERFACE_CONFIG),
        (
            "site.toml",
            "[[units]]\npms_unit = \"4B\"\ndoors = []\n\n[[keys]]\nid = \"k\"\nname = \"\"\ndoors = [\"d\"]\n",
        ),
    ]);
    let cfg_file = dir.path().join("leasegate.toml");
    let errors = config::load(&cfg_file).unwrap_err().0;
    let site_file = dir.path().join("site.toml");
    let unit = find(&errors, "units[0].doors");
    assert_eq!(unit.file, site_file);
    let name = find(&errors, "keys[0].name");
    assert_eq!(name.file, site_file);
    let roster = find(&errors, "pms.path");
    assert_eq!(roster.file, cfg_file);
    assert!(roster.reason.contains("roster.json"), "{:?}", roster.reason);
    assert_eq!(errors.len(), 3, "{errors:#?}");
}

#[test]
fn load_reports_a_missing_site_file_against_the_config_key_that_names_it() {
    let dir = dir_with(&[
        ("leasegate.toml", INTERFACE_CONFIG),
        ("roster.json", ROSTER),
    ]);
    let cfg_file = dir.path().join("leasegate.toml");
    let errors = config::load(&cfg_file).unwrap_err().0;
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].file, cfg_file);
    assert_eq!(errors[0].key, "site.site_file");
    assert!(errors[0].reason.contains("site.toml"));
}

#[test]
fn load_of_a_good_config_in_a_tempdir_succeeds() {
    let dir = dir_with(&[
        ("leasegate.toml", INTERFACE_CONFIG),
        ("site.toml", INTERFACE_SITE),
        ("roster.json", ROSTER),
    ]);
    let cfg = config::load(&dir.path().join("leasegate.toml")).unwrap();
    assert_eq!(cfg.store.path, dir.path().join("state"));
    assert!(
        !dir.path().join("state").exists(),
        "validating a config creates nothing"
    );
}

#[test]
fn load_of_a_missing_config_is_one_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nope.toml");
    let errors = config::load(&file).unwrap_err().0;
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].file, file);
}

/// The only test in this binary that sets `$CREDENTIALS_DIRECTORY`. The other secret test
/// reads names that exist only beside the config (or absolute paths), so its outcome does
/// not depend on the variable and the two cannot race.
#[test]
fn a_secret_is_read_from_the_systemd_credentials_directory_before_the_config_folder() {
    let base = tempfile::tempdir().unwrap();
    let creds = tempfile::tempdir().unwrap();
    std::fs::write(base.path().join("api-key"), "from-config-dir\n").unwrap();
    std::fs::write(base.path().join("only-here"), "beside-the-config\r\n").unwrap();
    std::fs::write(creds.path().join("api-key"), "from-credentials\n").unwrap();

    std::env::set_var("CREDENTIALS_DIRECTORY", creds.path());
    let from_creds = config::read_secret(base.path(), "api-key");
    let fallback = config::read_secret(base.path(), "only-here");
    std::env::remove_var("CREDENTIALS_DIRECTORY");
    let without = config::read_secret(base.path(), "api-key");

    assert_eq!(from_creds.unwrap().expose(), "from-credentials");
    assert_eq!(fallback.unwrap().expose(), "beside-the-config");
    assert_eq!(without.unwrap().expose(), "from-config-dir");
}

#[test]
fn a_secret_error_names_the_file_but_never_the_content() {
    let base = tempfile::tempdir().unwrap();
    let abs = base.path().join("absolute-secret");
    std::fs::write(&abs, "s3cret-value\n").unwrap();
    assert_eq!(
        config::read_secret(Path::new("/nonexistent"), abs.to_str().unwrap())
            .unwrap()
            .expose(),
        "s3cret-value"
    );
    std::fs::write(base.path().join("blank"), "").unwrap();
    let e = config::read_secret(base.path(), "blank").unwrap_err();
    assert!(e.to_string().contains("blank"));
    let e = config::read_secret(base.path(), "missing").unwrap_err();
    assert!(e.to_string().contains("missing"));
}

#[test]
fn doors_that_no_device_serves_are_a_warning_not_an_error() {
    let text = "[[units]]\npms_unit = \"4B\"\ndoors = [\"unit-4b\"]\n\n[[doors]]\nid = \"unit-4b\"\ndevice = \"lock-4b\"\n\n[[keys]]\nid = \"k\"\nname = \"K\"\ndoors = [\"lobby\"]\n";
    let site = leasegate::config::parse_site(text, Path::new("site.toml")).unwrap();
    let w = site.warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].0, "keys[0].doors");
    assert!(w[0].1.contains("lobby"));
}

#[test]
fn durations_beyond_sane_bounds_are_refused() {
    let text = "[site]\nid = \"s\"\ntimezone = \"UTC\"\n[store]\npath = \"state\"\n[access]\nactivation_delay = \"300000000d\"\n[pms]\nkind = \"file\"\npath = \"r.json\"\npoll_interval = \"2d\"\n";
    let e = leasegate::config::parse(text, Path::new("/etc/leasegate/x.toml")).unwrap_err();
    let keys: Vec<&str> = e.0.iter().map(|e| e.key.as_str()).collect();
    assert!(keys.contains(&"access.activation_delay"), "{e}");
    assert!(keys.contains(&"pms.poll_interval"), "{e}");
}

#[test]
fn load_reports_the_named_files_problems_even_when_the_config_itself_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("leasegate.toml");
    std::fs::write(
        &cfg,
        "[site]\nid = \"s\"\ntimezone = \"UTC\"\nsite_file = \"missing-site.toml\"\n[store]\npath = \"state\"\n[access]\nmode = \"sometimes\"\n[pms]\nkind = \"file\"\npath = \"missing-roster.json\"\n",
    )
    .unwrap();
    let e = leasegate::config::load(&cfg).unwrap_err();
    let keys: Vec<&str> = e.0.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        vec!["access.mode", "site.site_file", "pms.path"],
        "{e}"
    );
}

const BUILDIUM_SITE: &str =
    "[site]\nid = \"maple-court\"\ntimezone = \"America/Denver\"\n\n[store]\npath = \"state\"\n\n";

#[test]
fn the_buildium_interface_config_parses() {
    let text = format!(
        "{BUILDIUM_SITE}[pms]\nkind = \"buildium\"\nbase_url = \"https://api.example.test\"\nproperty_ids = [\"12345\"]\nclient_id_file = \"buildium-client-id\"\nclient_secret_file = \"buildium-client-secret\"\nca_file = \"pms-ca.pem\"\npoll_interval = \"5m\"\ntimeout = \"30s\"\n"
    );
    let cfg = config::parse(&text, Path::new("/etc/leasegate/leasegate.toml")).unwrap();
    match &cfg.pms.source {
        PmsSource::Buildium {
            http,
            property_ids,
            client_id_file,
            client_secret_file,
        } => {
            assert_eq!(http.base_url, "https://api.example.test");
            assert_eq!(http.timeout, Duration::from_secs(30));
            assert_eq!(
                http.ca_file.as_deref(),
                Some(Path::new("/etc/leasegate/pms-ca.pem"))
            );
            assert_eq!(property_ids, &vec!["12345".to_string()]);
            assert_eq!(client_id_file, "buildium-client-id");
            assert_eq!(client_secret_file, "buildium-client-secret");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(cfg.pms.full_sync_every, Duration::from_secs(3600));
    assert_eq!(cfg.pms.secrets_base, PathBuf::from("/etc/leasegate"));
}

#[test]
fn a_pms_over_plain_http_or_without_properties_or_credentials_is_refused() {
    let text = format!(
        "{BUILDIUM_SITE}[pms]\nkind = \"buildium\"\nbase_url = \"http://api.example.test\"\nproperty_ids = []\nclient_secret = \"hunter2\"\n"
    );
    let e = config::parse(&text, Path::new("/etc/leasegate/leasegate.toml")).unwrap_err();
    let keys: Vec<&str> = e.0.iter().map(|e| e.key.as_str()).collect();
    for key in [
        "pms.base_url",
        "pms.property_ids",
        "pms.client_id_file",
        "pms.client_secret_file",
        "pms.client_secret",
    ] {
        assert!(keys.contains(&key), "{key} missing from {e}");
    }
    assert!(!e.to_string().contains("hunter2"));
}

#[test]
fn check_config_reads_each_secret_file_and_names_the_missing_ones_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("leasegate.toml");
    std::fs::write(
        &cfg,
        format!("{BUILDIUM_SITE}[pms]\nkind = \"rentmanager\"\nbase_url = \"https://acme.api.rentmanager.test\"\nproperty_ids = [1]\nlocation_id = \"1\"\nusername_file = \"rm-user\"\npassword_file = \"rm-password\"\n"),
    )
    .unwrap();
    std::fs::write(dir.path().join("rm-user"), "leasegate\n").unwrap();
    let e = config::load(&cfg).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(e.0[0].key, "pms.password_file");
    std::fs::write(dir.path().join("rm-password"), "s3cret\n").unwrap();
    let ok = config::load(&cfg).unwrap();
    assert_eq!(ok.pms.source.kind(), "rentmanager");
}

/// The `[mqtt]` section exactly as issue 4's "Interface that must hold" gives it.
const INTERFACE_MQTT: &str = r#"
[mqtt]
url = "mqtt://127.0.0.1:1883"     # mqtts:// for TLS
base_topic = "leasegate"          # topics are <base_topic>/<site id>/...
client_id = "leasegate-maple-court"
username = "gateway"              # optional
password_file = "mqtt-password"   # optional
embedded = false                  # true: run the embedded broker on this url (demo only)
home_assistant = true
"#;

#[test]
fn the_interface_mqtt_section_parses() {
    let text = format!("{INTERFACE_CONFIG}{INTERFACE_MQTT}");
    let cfg = config::parse(&text, Path::new("/etc/leasegate/leasegate.toml")).unwrap();
    let m = cfg.mqtt.unwrap();
    assert_eq!(m.url.to_string(), "mqtt://127.0.0.1:1883");
    assert_eq!(m.base_topic, "leasegate");
    assert_eq!(m.client_id, "leasegate-maple-court");
    assert_eq!(m.username.as_deref(), Some("gateway"));
    assert_eq!(m.password_file.as_deref(), Some("mqtt-password"));
    assert!(!m.embedded && m.home_assistant);
}

#[test]
fn every_mqtt_mistake_is_reported_at_once() {
    let text = format!(
        "{INTERFACE_CONFIG}\n[mqtt]\nurl = \"http://broker\"\nbase_topic = \"a/#\"\npassword = \"hunter2\"\nembedded = \"yes\"\ncolour = 1\n"
    );
    let errors = parse_err(&text, Path::new("/x/leasegate.toml"));
    for key in [
        "mqtt.url",
        "mqtt.base_topic",
        "mqtt.password",
        "mqtt.embedded",
        "mqtt.colour",
    ] {
        find(&errors, key);
    }
    assert!(!format!("{errors:?}").contains("hunter2"));
    let embedded_far =
        format!("{INTERFACE_CONFIG}\n[mqtt]\nurl = \"mqtt://192.0.2.1:1884\"\nembedded = true\n");
    let errors = parse_err(&embedded_far, Path::new("/x/leasegate.toml"));
    assert!(find(&errors, "mqtt.embedded").reason.contains("loopback"));
}

#[test]
fn the_demo_runs_its_own_broker_on_loopback_off_the_system_mosquitto_port() {
    let cfg = config::load(&demo("leasegate.toml")).unwrap();
    let m = cfg.mqtt.unwrap();
    assert!(m.embedded);
    assert_eq!(m.url.host, "127.0.0.1");
    assert_ne!(m.url.port, 1883, "a system Mosquitto may hold 1883");
}
