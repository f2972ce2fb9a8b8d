//! `mobility`: the command-line front of the platform. Deliberately thin: it parses arguments,
//! loads [`Settings`], and hands over to `mobility-server`.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

mod demo;
mod events;
mod forecast;
mod load;
mod load_http;
mod load_trips;
mod sim;
use mobility_server::{Application, Settings, app, telemetry};

/// Run a shared electric fleet (e-scooters, e-bikes, cars, vans) across cities.
///
/// Everything runs in one process with embedded defaults (SQLite under ./data). Configure with
/// a mobility.toml file and MOBILITY_* environment variables; `mobility config` shows the result.
#[derive(Debug, Parser)]
#[command(name = "mobility", version, about, long_about)]
struct Cli {
    /// Configuration file (TOML). Default: ./mobility.toml when it exists. Env: MOBILITY_CONFIG.
    #[arg(long, global = true, env = "MOBILITY_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Log lines as JSON objects instead of human-readable text (same as log_format = "json").
    #[arg(long, global = true)]
    log_json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the platform: every role in this process, or those --roles names. Stops cleanly on
    /// Ctrl-C or SIGTERM.
    Serve(ServeArgs),
    /// Create or upgrade the database schema, then exit (serve also does this on start).
    Migrate,
    /// Print the effective configuration as TOML, with secrets redacted.
    Config,
    /// Print the version.
    Version,
    /// Run the platform plus a simulated city (Barcelona, 5,000 vehicles) driving it over MQTT
    /// and HTTP, with a live status line. Stops cleanly on Ctrl-C.
    Demo(demo::DemoArgs),
    /// Run the simulated city headless, in process, and write a report (JSON, CSV, SVG plots).
    Sim(sim::SimArgs),
    /// Generate load against a running platform (for benchmarks).
    #[command(subcommand)]
    Load(LoadCommand),
    /// Demand forecasting: evaluate the model against seasonal-naive.
    #[command(subcommand)]
    Forecast(ForecastCommand),
    /// The event bus: tail a stream, replay a consumer from a time, list streams and lag.
    #[command(subcommand)]
    Events(events::EventsCommand),
    /// The scheduled jobs (run once across every process on the database): who holds each,
    /// its last run, duration and error, its next run.
    Jobs,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// What this process does, comma-separated: ingest (vehicles' MQTT messages), api (the HTTP
    /// API and dashboard), worker (scheduled jobs and the event bus's consumers). Default: the
    /// `roles` setting (all three). Only some needs a NATS bus, an external MQTT broker and a
    /// shared database.
    #[arg(long, value_name = "ROLES")]
    roles: Option<String>,
}

#[derive(Debug, Subcommand)]
enum ForecastCommand {
    /// Train on the first 80 % of a demand history (simulated, or --csv FILE) and print WAPE and
    /// MAE per horizon on the rest, for the model and for seasonal-naive.
    Eval(forecast::EvalArgs),
}

#[derive(Debug, Subcommand)]
enum LoadCommand {
    /// Vehicles publishing telemetry over MQTT with their own credentials.
    Mqtt(load::MqttLoad),
    /// Riders searching for vehicles nearby over HTTP with keep-alive connections.
    Http(load_http::HttpLoad),
    /// Riders reserving, unlocking and ending trips, with vehicles acking over MQTT.
    Trips(load_trips::TripsLoad),
}

/// mimalloc instead of glibc's malloc: the request and ingest paths allocate small buffers on
/// every worker thread, and glibc's arena locks showed up in their profiles (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, saying what is wrong and how to fix it.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if matches!(cli.command, Command::Version) {
        println!("mobility {}", env!("CARGO_PKG_VERSION"));
        return Ok(());
    }
    if let Command::Sim(a) = &cli.command {
        return sim::run(a);
    }
    if let Command::Forecast(ForecastCommand::Eval(a)) = &cli.command {
        return forecast::eval(a);
    }
    match cli.command {
        Command::Load(LoadCommand::Mqtt(o)) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(o.threads.max(1))
                .enable_all()
                .thread_name("mobility-load")
                .build()?;
            return rt.block_on(load::run(o));
        }
        Command::Load(LoadCommand::Http(o)) => return runtime()?.block_on(load_http::run(o)),
        Command::Load(LoadCommand::Trips(o)) => return runtime()?.block_on(load_trips::run(o)),
        _ => {}
    }
    let mut settings = Settings::load(cli.config.as_deref())?;
    if cli.log_json {
        settings.log_format = mobility_server::LogFormat::Json;
    }
    match cli.command {
        Command::Config => {
            print!("{}", settings.to_redacted_toml());
            Ok(())
        }
        Command::Jobs => runtime()?.block_on(async {
            let store = app::open_store(&settings).await?;
            let statuses = store.job_statuses().await;
            store.close().await;
            print!(
                "{}",
                jobs_table(
                    &mobility_server::jobs::configured(&settings),
                    &statuses?,
                    mobility_server::clock::now()
                )
            );
            anyhow::Ok(())
        }),
        Command::Migrate => {
            let guard = telemetry::init(&settings)?;
            let result = runtime()?.block_on(async {
                let store = app::open_store(&settings).await?;
                let ready = store.readiness().await?;
                println!(
                    "{} database is at schema version {}",
                    store.backend().as_str(),
                    ready.schema_version.unwrap_or(0)
                );
                store.close().await;
                anyhow::Ok(())
            });
            guard.shutdown();
            result
        }
        Command::Serve(args) => {
            if let Some(roles) = &args.roles {
                settings.roles = mobility_server::config::Roles::parse(roles)?;
                settings.check_roles()?;
            }
            // Telemetry is set up outside the runtime: the OTLP exporter uses a blocking client.
            let guard = telemetry::init(&settings)?;
            let rt = runtime()?;
            let result = rt.block_on(async {
                let app = Application::build(settings).await?;
                app.run_until(app::shutdown_signal()).await?;
                anyhow::Ok(())
            });
            drop(rt);
            guard.shutdown();
            result
        }
        Command::Events(cmd) => runtime()?.block_on(events::run(settings, cmd)),
        Command::Demo(a) => {
            let guard = telemetry::init(&settings)?;
            let rt = runtime()?;
            let result = rt.block_on(demo::run(settings, a));
            drop(rt);
            guard.shutdown();
            result
        }
        Command::Version | Command::Load(_) | Command::Sim(_) | Command::Forecast(_) => Ok(()),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("mobility")
        .build()?)
}

/// The jobs as a table: every job this version runs, then any other the database knows.
fn jobs_table(
    jobs: &[mobility_server::jobs::JobSpec],
    statuses: &[mobility_store::JobStatus],
    now: mobility_core::TimestampMs,
) -> String {
    use std::fmt::Write;
    let mut out = format!(
        "{:<22} {:>8} {:<30} {:>10} {:>9} {:>7} {:>8}  {}\n",
        "JOB", "EVERY", "HELD BY", "LAST RUN", "DURATION", "RUNS", "FAILED", "LAST ERROR"
    );
    let mut names: Vec<&str> = jobs.iter().map(|j| j.name).collect();
    for s in statuses {
        if !names.contains(&s.name.as_str()) {
            names.push(&s.name);
        }
    }
    let ago = |at: mobility_core::TimestampMs| {
        let s = (now.0 - at.0).max(0) / 1_000;
        if s < 120 {
            format!("{s} s ago")
        } else {
            format!("{} min ago", s / 60)
        }
    };
    for name in names {
        let every = jobs
            .iter()
            .find(|j| j.name == name)
            .map_or_else(|| "-".to_owned(), |j| format!("{} ms", j.every.as_millis()));
        let s = statuses.iter().find(|s| s.name == name);
        let held = s
            .and_then(|s| s.lease.as_ref())
            .filter(|(_, until)| until.0 > now.0)
            .map_or_else(|| "(free)".to_owned(), |(h, _)| h.clone());
        let last = s.and_then(|s| s.last_run.as_ref());
        let _ = writeln!(
            out,
            "{:<22} {:>8} {:<30} {:>10} {:>9} {:>7} {:>8}  {}",
            name,
            every,
            held,
            last.map_or_else(|| "never".to_owned(), |r| ago(r.started_at)),
            last.map_or_else(|| "-".to_owned(), |r| format!("{} ms", r.duration_ms)),
            s.map_or(0, |s| s.runs),
            s.map_or(0, |s| s.failures),
            s.and_then(|s| s.last_error.as_ref())
                .map_or_else(String::new, |(e, at)| format!("{e} ({})", ago(*at))),
        );
    }
    out
}
