//! Benchmark (DESIGN §5): a 10,000-lease Buildium roster served in 10 pages over loopback
//! HTTPS by the test server, fetched with the real client.
//!
//! - T1: fetch + parse (`BuildiumSource::fetch`),
//! - T2: fetch + parse + plan + persist (`Gateway::sync` into a real sled store in a
//!   tempdir): the first sync of a fresh store, and a second, steady-state sync of the same
//!   roster,
//!
//! each the median of several rounds, with the ratio T2/T1 (target: at most 1.5) and where
//! the sync's time goes (plan, measured alone with `Gateway::plan`, and persist, the rest).
//!
//! `cargo bench --bench pms_sync` runs the full size. Without `--bench` (as `cargo test
//! --benches` runs it) it is a quick smoke run on a small roster.

#[path = "../tests/support/https.rs"]
mod https;

#[path = "../tests/fixtures/buildium-fake.rs"]
mod buildium_fake;

use std::time::{Duration, Instant};

use leasegate::gateway::{wall_clock, Gateway};
use leasegate::pms::{BuildiumSource, FetchRequest, RosterSource};

struct Round {
    t1: Duration,
    first_fetch: Duration,
    first_sync: Duration,
    first_plan: Duration,
    steady_fetch: Duration,
    steady_sync: Duration,
    steady_plan: Duration,
    changes: usize,
    steady_changes: usize,
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:9.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (leases, mut rounds) = if full { (10_000, 5) } else { (1_200, 1) };
    // For profiling: PMS_SYNC_ROUNDS=1 perf record ... --bench
    if let Some(r) = std::env::var("PMS_SYNC_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
    {
        rounds = r;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(leases, rounds, full));
}

async fn run(n: usize, rounds: usize, full: bool) {
    let roster = buildium_fake::generated(n);
    let units: Vec<String> = roster.iter().map(|l| l.unit.clone()).collect();
    let fake = buildium_fake::Fake::new(roster);
    let f = fake.clone();
    let server = https::start(move |req| f.handle(req)).await;
    let unit_refs: Vec<&str> = units.iter().map(String::as_str).collect();

    let mut results = Vec::new();
    let mut residents = 0;
    let mut pages = 0;
    let mut bytes = 0;
    for round in 0..rounds {
        let dir = tempfile::tempdir().unwrap();
        let path = buildium_fake::write_deployment(
            dir.path(),
            &server.base_url(),
            &server.ca_file,
            "automatic",
            "60s",
            &unit_refs,
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let cfg = leasegate::config::parse(&text, &path).unwrap();
        let source = BuildiumSource::new(&cfg).unwrap();
        let req = || FetchRequest {
            changed_since: None,
            now: wall_clock(),
        };

        // T1: fetch + parse.
        let seen_before = server.requests().len();
        let started = Instant::now();
        let snap = source.fetch(req()).await.unwrap();
        let t1 = started.elapsed();
        residents = snap.residents.len();
        let seen = server.requests();
        pages = seen.len() - seen_before;
        if round == 0 {
            bytes = fake_bytes(&fake);
        }

        // T2, first sync of a fresh store (opening and seeding the store is not timed).
        let mut gw = Gateway::open(&cfg).unwrap();
        let started = Instant::now();
        let snap = source.fetch(req()).await.unwrap();
        let first_fetch = started.elapsed();
        let now = wall_clock();
        // The plan alone, untimed for T2: where the sync's time goes.
        let p = Instant::now();
        let planned = gw.plan(&snap, now).unwrap();
        let first_plan = p.elapsed();
        let changes = planned.changes.len() + planned.audit.len();
        drop(planned);
        let s = Instant::now();
        gw.sync(&snap, now).unwrap();
        let first_sync = s.elapsed();

        // T2, steady state: the same roster again.
        let started = Instant::now();
        let snap = source.fetch(req()).await.unwrap();
        let steady_fetch = started.elapsed();
        let now = wall_clock();
        let p = Instant::now();
        let planned = gw.plan(&snap, now).unwrap();
        let steady_plan = p.elapsed();
        let steady_changes = planned.changes.len() + planned.audit.len();
        drop(planned);
        let s = Instant::now();
        gw.sync(&snap, now).unwrap();
        let steady_sync = s.elapsed();

        results.push(Round {
            t1,
            first_fetch,
            first_sync,
            first_plan,
            steady_fetch,
            steady_sync,
            steady_plan,
            changes,
            steady_changes,
        });
        drop(gw);
    }

    let breakdown = first_sync_breakdown(&server, &unit_refs).await;

    let t1 = median(results.iter().map(|r| r.t1).collect());
    let t2_first = median(
        results
            .iter()
            .map(|r| r.first_fetch + r.first_sync)
            .collect(),
    );
    let t2_steady = median(
        results
            .iter()
            .map(|r| r.steady_fetch + r.steady_sync)
            .collect(),
    );
    let first_plan = median(results.iter().map(|r| r.first_plan).collect());
    let first_sync = median(results.iter().map(|r| r.first_sync).collect());
    let steady_plan = median(results.iter().map(|r| r.steady_plan).collect());
    let steady_sync = median(results.iter().map(|r| r.steady_sync).collect());
    let verdict = |ratio: f64| if ratio <= 1.5 { "met" } else { "MISSED" };
    let r_first = t2_first.as_secs_f64() / t1.as_secs_f64();
    let r_steady = t2_steady.as_secs_f64() / t1.as_secs_f64();

    println!(
        "pms_sync{}: {n} Buildium leases in {pages} pages ({:.1} MB of JSON) over loopback \
         HTTPS, {residents} residents; median of {rounds} round(s); automatic mode",
        if full {
            ""
        } else {
            " (smoke run: pass --bench for the full size)"
        },
        bytes as f64 / 1e6,
    );
    println!(
        "  T1  fetch + parse                                   {}",
        ms(t1)
    );
    println!(
        "  T2  fetch + parse + plan + persist, first sync       {}   T2/T1 = {r_first:.2} \
         (target <= 1.5: {})",
        ms(t2_first),
        verdict(r_first)
    );
    println!(
        "      of which sync {} (plan alone {}, so persist ~{}); {} changes + audit entries",
        ms(first_sync),
        ms(first_plan),
        ms(first_sync.saturating_sub(first_plan)),
        results[0].changes
    );
    println!(
        "  T2  fetch + parse + plan + persist, steady state     {}   T2/T1 = {r_steady:.2} \
         (target <= 1.5: {})",
        ms(t2_steady),
        verdict(r_steady)
    );
    println!(
        "      of which sync {} (plan alone {}, so persist ~{}); {} changes + audit entries",
        ms(steady_sync),
        ms(steady_plan),
        ms(steady_sync.saturating_sub(steady_plan)),
        results[0].steady_changes
    );
    println!(
        "      steady-state fetch alone {} (T1 {}), sync alone / T1 = {:.2}",
        ms(median(results.iter().map(|r| r.steady_fetch).collect())),
        ms(t1),
        steady_sync.as_secs_f64() / t1.as_secs_f64()
    );
    println!("  first sync, step by step (one more round, Store and core used directly):");
    for (what, d) in &breakdown.steps {
        println!("      {what:<50}{}", ms(*d));
    }
    println!("      records written: {}", breakdown.records);
}

struct Breakdown {
    steps: Vec<(&'static str, Duration)>,
    records: String,
}

/// Where the first sync's time goes: what `Gateway::sync` does, one step at a time.
async fn first_sync_breakdown(server: &https::TestServer, units: &[&str]) -> Breakdown {
    use leasegate::core::Change;
    let dir = tempfile::tempdir().unwrap();
    let path = buildium_fake::write_deployment(
        dir.path(),
        &server.base_url(),
        &server.ca_file,
        "automatic",
        "60s",
        units,
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let cfg = leasegate::config::parse(&text, &path).unwrap();
    let source = BuildiumSource::new(&cfg).unwrap();
    // Seed the store as the gateway does, then work on it directly.
    drop(Gateway::open(&cfg).unwrap());
    let (store, mut world, _) = leasegate::store::Store::open_world(&cfg.store.path).unwrap();
    let mut steps = Vec::new();
    let t = Instant::now();
    let snap = source
        .fetch(FetchRequest {
            changed_since: None,
            now: wall_clock(),
        })
        .await
        .unwrap();
    steps.push(("fetch + parse", t.elapsed()));
    let now = wall_clock();
    let t = Instant::now();
    let tr = leasegate::core::plan(&world, &snap, &cfg.access.policy, now).unwrap();
    steps.push(("plan (core::plan)", t.elapsed()));
    let t = Instant::now();
    store.commit(&tr).unwrap();
    steps.push((
        "persist (Store::commit: sled txn, flush, fsync)",
        t.elapsed(),
    ));
    let t = Instant::now();
    world.apply(&tr);
    steps.push(("apply to the in-memory world", t.elapsed()));
    let (mut res, mut sug, mut gr, mut other) = (0, 0, 0, 0);
    for c in &tr.changes {
        match c {
            Change::Resident(_) => res += 1,
            Change::Suggestion(_) => sug += 1,
            Change::Grant(_) => gr += 1,
            _ => other += 1,
        }
    }
    let records = format!(
        "{res} residents, {sug} suggestion writes, {gr} grants, {other} other, {} audit entries",
        tr.audit.len()
    );
    let t = Instant::now();
    drop(tr);
    steps.push(("drop the transition", t.elapsed()));
    Breakdown { steps, records }
}

/// The size of the JSON the fake serves for the whole roster.
fn fake_bytes(fake: &buildium_fake::Fake) -> usize {
    fake.leases()
        .iter()
        .map(|l| l.to_json().to_string().len() + 1)
        .sum()
}
