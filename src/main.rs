//! The `leasegate` command line.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use leasegate::config::{self, Config, ConfigErrors};
use leasegate::core::Actor;
use leasegate::gateway::{self, Gateway};
use leasegate::pms::{self, FetchRequest};
use leasegate::report;
use leasegate::store::Store;

/// sysexits.h EX_USAGE: the config is wrong; systemd must not restart us into the same error.
const EXIT_CONFIG: u8 = 64;

#[derive(Parser)]
#[command(
    name = "leasegate",
    version,
    about = "Building access that follows the lease"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway until SIGTERM or SIGINT.
    Run {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// The whole gateway on simulated hardware (embedded broker, file roster, OSDP panels on
    /// a pseudo-terminal, simulated Nuki locks) until SIGTERM or SIGINT.
    Demo {
        /// Where the demo keeps its config, store, roster and the panels' keys.
        #[arg(long, default_value = "target/demo")]
        dir: PathBuf,
        /// The port of the demo's embedded MQTT broker.
        #[arg(long, default_value_t = 1884)]
        mqtt_port: u16,
    },
    /// Validate a config file and the files it names; exit 64 with every error if invalid.
    CheckConfig { file: PathBuf },
    /// Dry run: print the suggestions the next sync would make, as JSON. Changes nothing.
    Plan {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run one sync, applied according to the mode, and print what it did as JSON.
    Sync {
        /// Sync once and exit (the daemon is `leasegate run`).
        #[arg(long, required = true)]
        once: bool,
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Load site data (units, doors, key sets) from a site file into the store.
    Import {
        #[arg(long, short)]
        config: PathBuf,
        file: PathBuf,
    },
    /// Print the store's site data in the site file format (or write it to a file).
    Export {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Recover from a quarantined store: start a new one seeded from the site file.
    Rebuild {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Pair a Nuki lock of `[[nuki.locks]]` that is in pairing mode (hold its button for 5 s)
    /// and keep its authorization sealed in the store. Stop the daemon first (it holds the
    /// store); while it runs, use the MQTT `locks/pair` command.
    LockPair {
        #[arg(long, short)]
        config: PathBuf,
        /// The lock's device id, as in `[[nuki.locks]]`.
        #[arg(long)]
        device: String,
    },
    /// Reference OSDP panel simulator: a PD implementing the leasegate credential profile.
    PanelSim {
        /// Serial port or pty to serve on.
        #[arg(long)]
        tty: PathBuf,
        #[arg(long, default_value_t = 1)]
        address: u8,
        #[arg(long, default_value_t = 115_200)]
        baud: u32,
        /// The panel's SCBK (hex); absent: install mode with SCBK-D, and KEYSET writes it.
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// Vendor code of the credential profile (e.g. 0x4c4701).
        #[arg(long, value_parser = parse_vendor_code)]
        vendor_code: Option<u32>,
        /// Receive buffer size to advertise (bytes).
        #[arg(long, default_value_t = 1024)]
        buffer: u16,
    },
    /// Talk to a running gateway over its MQTT API (as an installer or manager).
    Ctl(CtlArgs),
}

#[derive(clap::Args)]
struct CtlArgs {
    /// Take the broker URL, base topic and site from this gateway config.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// The broker (mqtt://host:port or mqtts://host:port), if not from --config.
    #[arg(long)]
    url: Option<String>,
    /// The site id, if not from --config.
    #[arg(long)]
    site: Option<String>,
    #[arg(long, default_value = "leasegate")]
    base_topic: String,
    /// Your MQTT user; requests are made, and audited, in this name.
    #[arg(long, short)]
    user: Option<String>,
    /// A file holding your MQTT password.
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// The actor to speak as on a broker without users (defaults to --user, then $USER).
    #[arg(long = "as")]
    actor: Option<String>,
    /// Seconds to wait for the gateway.
    #[arg(long, default_value_t = 15)]
    timeout: u64,
    #[command(subcommand)]
    command: CtlCommand,
}

#[derive(Subcommand)]
enum CtlCommand {
    /// The gateway's state, mode, pending count and last sync.
    Status,
    /// Pending suggestions: list, approve or discard them.
    Suggestions {
        #[command(subcommand)]
        command: SuggestionsCommand,
    },
    /// Show the mode, or set it.
    Mode {
        #[arg(value_parser = ["approval_required", "automatic"])]
        set: Option<String>,
    },
    /// Sync with the PMS now (or, with --plan, show what a sync would do).
    Sync {
        #[arg(long)]
        plan: bool,
    },
}

#[derive(Subcommand)]
enum SuggestionsCommand {
    List,
    /// Approve 1 to 50 suggestions by id.
    Approve {
        #[arg(required = true, num_args = 1..=50)]
        ids: Vec<String>,
    },
    /// Discard 1 to 50 suggestions by id.
    Discard {
        #[arg(required = true, num_args = 1..=50)]
        ids: Vec<String>,
    },
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            if let Some(errors) = e.downcast_ref::<ConfigErrors>() {
                eprintln!("{errors}");
                return ExitCode::from(EXIT_CONFIG);
            }
            eprintln!("leasegate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(path: &Path) -> anyhow::Result<Config> {
    Ok(config::load(path)?)
}

fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Ctl(args) => ctl(args),
        Command::CheckConfig { file } => {
            let cfg = load_config(&file)?;
            if let Some(sf) = &cfg.site.site_file {
                warn_site(sf, &config::load_site(sf)?);
            }
            eprintln!(
                "{}: ok (site {}, pms {}, store {})",
                file.display(),
                cfg.site.id,
                cfg.pms.source.kind(),
                cfg.store.path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { config } => {
            let cfg = load_config(&config)?;
            let rt = runtime()?;
            rt.block_on(async {
                let shutdown = CancellationToken::new();
                tokio::spawn(signal_shutdown(shutdown.clone()));
                tracing::info!(site = %cfg.site.id, version = env!("CARGO_PKG_VERSION"), "leasegate starting");
                leasegate::daemon::run(cfg, shutdown).await
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { dir, mqtt_port } => {
            runtime()?.block_on(async {
                let shutdown = CancellationToken::new();
                tokio::spawn(signal_shutdown(shutdown.clone()));
                let opts = leasegate::demo::DemoOptions { dir, mqtt_port };
                leasegate::demo::run(opts, shutdown)
                    .await
                    .map_err(|e| match e {
                        // Exit 64 like every other bad config.
                        leasegate::demo::DemoError::Config(c) => anyhow::Error::from(c),
                        other => anyhow::Error::from(other),
                    })
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan { config } => {
            let cfg = load_config(&config)?;
            let world = gateway::dry_run_world(&cfg).context("cannot read the store")?;
            let snapshot = fetch(&cfg)?;
            let t = leasegate::core::plan(
                &world,
                &snapshot,
                &cfg.access.policy,
                gateway::wall_clock(),
            )?;
            print_json(&report::plan_report(&t, world.next_seq))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sync { once: _, config } => {
            let cfg = load_config(&config)?;
            let mut gw = Gateway::open(&cfg).context("cannot open the store")?;
            let snapshot = match fetch(&cfg) {
                Ok(s) => s,
                Err(e) => {
                    let _ = gw.record_sync_failure(&format!("{e:#}"), gateway::wall_clock());
                    return Err(e);
                }
            };
            let t = gw
                .sync(&snapshot, gateway::wall_clock())
                .context("sync failed")?;
            print_json(&report::sync_report(&t))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Import { config, file } => {
            let cfg = load_config(&config)?;
            let site = config::load_site(&file)?;
            warn_site(&file, &site);
            let mut gw = Gateway::open(&cfg).context("cannot open the store")?;
            let t = gw.replace_site(site, Actor::Person(operator()), gateway::wall_clock())?;
            eprintln!(
                "imported {}: {}",
                file.display(),
                if t.is_empty() {
                    "no change"
                } else {
                    "site data replaced"
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Export { config, output } => {
            let cfg = load_config(&config)?;
            let gw = Gateway::open(&cfg).context("cannot open the store")?;
            let text = config::site_to_toml(gw.world().site());
            match output {
                Some(path) => std::fs::write(&path, text)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => std::io::stdout().write_all(text.as_bytes())?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Rebuild { config } => {
            let cfg = load_config(&config)?;
            let cleared = Store::clear_quarantine(&cfg.store.path)?;
            let gw = Gateway::open(&cfg).context("cannot create the new store")?;
            eprintln!(
                "{} store at {} ({} residents). Grants are rebuilt from the next syncs: review \
                 the suggestions before approving them.",
                if cleared {
                    "rebuilt the quarantined"
                } else {
                    "opened the"
                },
                cfg.store.path.display(),
                gw.world().residents.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::LockPair { config, device } => {
            let cfg = load_config(&config)?;
            let gw = Gateway::open(&cfg).context("cannot open the store")?;
            let sealer = leasegate::seal::Sealer::load_or_create(&cfg.store.key_file)
                .context("cannot read the sealing key")?;
            runtime()?
                .block_on(async {
                    let outbox = leasegate::outbox::Outbox::new(
                        std::sync::Arc::new(tokio::sync::Mutex::new(gw)),
                        leasegate::events::channel(),
                        sealer,
                        cfg.site.timezone,
                    )
                    .await;
                    leasegate::lock::pair_lock(&cfg.nuki, &device, &outbox).await
                })
                .with_context(|| format!("pairing lock {device}"))?;
            eprintln!("lock {device} paired; its authorization is sealed in the store");
            Ok(ExitCode::SUCCESS)
        }
        Command::PanelSim {
            tty,
            address,
            baud,
            key_file,
            vendor_code,
            buffer,
        } => {
            use tokio_serial::SerialPortBuilderExt;
            let settings = leasegate::panel::sim::SimSettings {
                address,
                vendor: vendor_code.unwrap_or(leasegate::config::osdp::DEFAULT_VENDOR_CODE),
                buffer,
                key_file,
                ..Default::default()
            };
            runtime()?.block_on(async {
                let port = tokio_serial::new(tty.to_string_lossy(), baud)
                    .open_native_async()
                    .with_context(|| format!("cannot open {}", tty.display()))?;
                let shutdown = CancellationToken::new();
                tokio::spawn(signal_shutdown(shutdown.clone()));
                eprintln!(
                    "panel-sim: OSDP PD at address {address} on {}",
                    tty.display()
                );
                // A store as large as the settings say (a default one holds nothing: every
                // upsert would be answered FULL).
                let db = leasegate::panel::sim::SharedDb::new(
                    leasegate_osdp::profile::PanelDb::new(settings.capacity).into(),
                );
                leasegate::panel::sim::run(port, settings, db, shutdown).await?;
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn parse_vendor_code(s: &str) -> Result<u32, String> {
    let v = match s.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16),
        None => s.parse(),
    };
    v.ok()
        .filter(|v| (1..=0xff_ffff).contains(v))
        .ok_or_else(|| "a 24-bit vendor code such as 0x4c4701".into())
}

/// Print the site's warnings (doors no device serves): not errors, but likely mistakes.
fn warn_site(file: &Path, site: &leasegate::core::Site) {
    for (key, note) in site.warnings() {
        eprintln!("{}: warning: {key}: {note}", file.display());
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn fetch(cfg: &Config) -> anyhow::Result<leasegate::core::Snapshot> {
    let source = pms::from_config(cfg)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(source.fetch(FetchRequest {
        changed_since: None,
        now: gateway::wall_clock(),
    }))
    .with_context(|| {
        format!(
            "the {} roster could not be fetched; nothing was changed",
            source.kind()
        )
    })
}

fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

/// Who ran a CLI command, for the audit log.
fn operator() -> String {
    std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .map(|u| format!("cli:{u}"))
        .unwrap_or_else(|_| "cli".into())
}

/// Install the SIGTERM and SIGINT handlers at once, before the gateway starts (a stop during
/// start-up is then a clean shutdown too, not death by signal), and return the task that
/// waits for them. Call it inside the runtime.
fn signal_shutdown(token: CancellationToken) -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        let (Ok(mut term), Ok(mut int)) = handlers else {
            tracing::error!("cannot install signal handlers");
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM"),
            _ = int.recv() => tracing::info!("SIGINT"),
        }
        token.cancel();
    }
}

/// Logs go to stderr: plain text for journald and people, or JSON with
/// `LEASEGATE_LOG_FORMAT=json`. The filter comes from `LEASEGATE_LOG` (default `info`).
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("LEASEGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only for a person at a terminal, never into journald or a log file.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match std::env::var("LEASEGATE_LOG_FORMAT").as_deref() {
        Ok("json") => builder.json().init(),
        _ if std::env::var_os("JOURNAL_STREAM").is_some() => builder.without_time().init(),
        _ => builder.init(),
    }
}

fn ctl_target(a: &CtlArgs) -> anyhow::Result<leasegate::ctl::Target> {
    use leasegate::config::MqttUrl;
    let (url, root) = match &a.config {
        Some(path) => {
            let cfg = load_config(path)?;
            let m = cfg
                .mqtt
                .with_context(|| format!("{} has no [mqtt] section", path.display()))?;
            let site = a.site.clone().unwrap_or(cfg.site.id);
            (m.url, format!("{}/{site}", m.base_topic))
        }
        None => {
            let url = a
                .url
                .as_deref()
                .context("give --config, or --url and --site")?;
            let site = a.site.as_deref().context("give --site with --url")?;
            (
                MqttUrl::parse(url).map_err(anyhow::Error::msg)?,
                format!("{}/{site}", a.base_topic),
            )
        }
    };
    let password = match &a.password_file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .with_context(|| format!("cannot read {}", f.display()))?
                .trim_end()
                .to_string(),
        ),
        None => None,
    };
    let actor = a
        .actor
        .clone()
        .or_else(|| a.user.clone())
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "cli".into());
    Ok(leasegate::ctl::Target {
        url,
        root,
        username: a.user.clone(),
        password,
        actor,
        timeout: std::time::Duration::from_secs(a.timeout),
    })
}

fn ctl(args: CtlArgs) -> anyhow::Result<ExitCode> {
    use leasegate::ctl;
    use serde_json::json;
    let target = ctl_target(&args)?;
    let ansi = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = rt.block_on(async {
        let reply = match &args.command {
            CtlCommand::Status => {
                let st = ctl::status(&target).await?;
                print!("{}", ctl::status_text(&st));
                return Ok(0);
            }
            CtlCommand::Suggestions { command } => match command {
                SuggestionsCommand::List => {
                    ctl::request(&target, "suggestions/list", json!({})).await?
                }
                SuggestionsCommand::Approve { ids } => {
                    ctl::request(&target, "suggestions/approve", json!({ "ids": ids })).await?
                }
                SuggestionsCommand::Discard { ids } => {
                    ctl::request(&target, "suggestions/discard", json!({ "ids": ids })).await?
                }
            },
            CtlCommand::Mode { set: None } => {
                let st = ctl::status(&target).await?;
                let mode = st.get("bridge/info").and_then(|i| i["mode"].as_str());
                println!("{}", mode.unwrap_or("unknown"));
                return Ok(0);
            }
            CtlCommand::Mode { set: Some(m) } => {
                ctl::request(&target, "mode/set", json!({ "mode": m })).await?
            }
            CtlCommand::Sync { plan: false } => {
                ctl::request(&target, "sync/now", json!({})).await?
            }
            CtlCommand::Sync { plan: true } => {
                ctl::request(&target, "sync/plan", json!({})).await?
            }
        };
        if reply["status"] != "error" || reply["data"]["results"].is_array() {
            match &args.command {
                CtlCommand::Suggestions {
                    command: SuggestionsCommand::List,
                }
                | CtlCommand::Sync { plan: true } => {
                    let list = reply["data"]["suggestions"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    print!("{}", ctl::suggestions_table(&list, ansi));
                    for a in reply["data"]["alerts"].as_array().into_iter().flatten() {
                        println!("alert: {a}");
                    }
                }
                CtlCommand::Suggestions { .. } => print!("{}", ctl::results_table(&reply)),
                CtlCommand::Mode { .. } => {
                    println!("mode: {}", reply["data"]["mode"].as_str().unwrap_or("?"))
                }
                CtlCommand::Sync { .. } => println!("sync requested"),
                CtlCommand::Status => {}
            }
        }
        if reply["status"] == "error" {
            eprintln!("{}", ctl::error_text(&reply));
        }
        Ok::<u8, ctl::CtlError>(ctl::exit_code(&reply))
    });
    match outcome {
        Ok(code) => Ok(ExitCode::from(code)),
        Err(e) => {
            eprintln!("leasegate ctl: {e}");
            Ok(ExitCode::from(if e.is_retryable() {
                ctl::EXIT_UNAVAILABLE
            } else {
                1
            }))
        }
    }
}
