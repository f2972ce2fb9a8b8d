//! `mobility events …`: operators' view of the event bus the configuration names
//! (`bus_url`): tail a stream, move a consumer's cursor back to replay, list streams and
//! consumers with their lag.
//!
//! `tail` and `info` read the embedded log beside the `serve` process that writes it (`tail
//! --follow` re-reads it); `replay` moves a cursor, so on the embedded bus it needs that
//! process stopped (with NATS it works while the platform runs).

use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use mobility_bus::{BusConfig, ConsumerSpec, StartAt};
use mobility_core::{CityId, Domain, TimestampMs};
use mobility_server::Settings;

/// The `events` commands.
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Print a stream's events as JSON lines: SUBJECT is a domain (booking, telemetry, vehicle,
    /// lifecycle, payment, account, fleet, admin, dead_letter), optionally `.CITY`.
    Tail(TailArgs),
    /// Move a consumer's cursor to a time (or sequence): it gets every event from there again.
    Replay(ReplayArgs),
    /// List the streams (events, bytes, sequences) and their consumers with their lag.
    Info,
}

/// `events tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    /// `DOMAIN` or `DOMAIN.CITY`, e.g. `vehicle.bcn`.
    pub subject: String,
    /// Start at this time: RFC 3339 (`2026-12-03T10:00:00Z`), ms since the epoch, or an age
    /// such as `15m`, `2h`, `1d`. Default: the last `--limit` events.
    #[arg(long)]
    pub from: Option<String>,
    /// Start at this sequence.
    #[arg(long, conflicts_with = "from")]
    pub from_seq: Option<u64>,
    /// Most events printed (before following).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Keep printing new events until interrupted.
    #[arg(long, short)]
    pub follow: bool,
}

/// `events replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The consumer's name (see `mobility events info`).
    #[arg(long)]
    pub consumer: String,
    /// Its stream; default: the stream of the platform's consumer of that name.
    #[arg(long)]
    pub domain: Option<String>,
    /// From this time (RFC 3339, ms since the epoch, or an age such as `2h`).
    #[arg(long, required_unless_present = "from_seq")]
    pub from: Option<String>,
    /// From this sequence.
    #[arg(long, conflicts_with = "from")]
    pub from_seq: Option<u64>,
}

/// A time as an operator types it.
fn parse_time(s: &str, now: TimestampMs) -> anyhow::Result<TimestampMs> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(TimestampMs(ms));
    }
    let units = [
        ("ms", 1),
        ("s", 1_000),
        ("m", 60_000),
        ("h", 3_600_000),
        ("d", 86_400_000),
    ];
    for (suffix, ms) in units {
        if let Some(n) = s.strip_suffix(suffix).and_then(|n| n.parse::<i64>().ok()) {
            return Ok(TimestampMs(now.0 - n.saturating_mul(ms)));
        }
    }
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .with_context(|| {
            format!("{s:?} is not a time: give RFC 3339, ms since the epoch, or an age like 2h")
        })?;
    Ok(TimestampMs(
        i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX),
    ))
}

fn parse_subject(s: &str) -> anyhow::Result<(Domain, Option<CityId>)> {
    let (d, city) = s.split_once('.').map_or((s, None), |(d, c)| (d, Some(c)));
    let domain = Domain::parse(d).with_context(|| {
        let names: Vec<&str> = Domain::ALL.iter().map(|d| d.as_str()).collect();
        format!("{d:?} is not a stream; one of {}", names.join(", "))
    })?;
    let city = city
        .map(CityId::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((domain, city))
}

/// Runs an `events` command.
pub async fn run(settings: Settings, cmd: EventsCommand) -> anyhow::Result<()> {
    let config = settings.bus();
    // Looking needs no write access: the embedded log is read beside the server writing it.
    let mut bus = if matches!(cmd, EventsCommand::Replay(_)) {
        mobility_bus::open(&settings.bus_url, &settings.data_dir, config).await?
    } else {
        mobility_bus::open_read_only(&settings.bus_url, &settings.data_dir, config).await?
    };
    let now = mobility_bus::wall_now();
    match cmd {
        EventsCommand::Tail(a) => {
            let (domain, city) = parse_subject(&a.subject)?;
            let start = match (&a.from, a.from_seq) {
                (Some(t), _) => StartAt::Time(parse_time(t, now)?),
                (None, Some(s)) => StartAt::Seq(s),
                (None, None) => {
                    let info = bus.stream_info(domain).await?;
                    StartAt::Seq(info.last_seq.saturating_sub(a.limit as u64 - 1).max(1))
                }
            };
            let mut next = start;
            let mut left = a.limit;
            loop {
                let got = bus
                    .read(domain, city.as_ref(), next, left.clamp(1, 1_000))
                    .await?;
                for e in &got {
                    println!("{}", line(e));
                }
                if let Some(last) = got.last() {
                    next = StartAt::Seq(last.seq + 1);
                }
                left = left.saturating_sub(got.len());
                if got.is_empty() || left == 0 {
                    if !a.follow {
                        return Ok(());
                    }
                    left = 1_000;
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    // A read-only embedded log shows what was on disk when opened: look again.
                    if bus.backend() == "embedded" {
                        bus = mobility_bus::open_read_only(
                            &settings.bus_url,
                            &settings.data_dir,
                            BusConfig::default(),
                        )
                        .await?;
                    }
                }
            }
        }
        EventsCommand::Replay(a) => {
            let domain = match &a.domain {
                Some(d) => Domain::parse(d).with_context(|| format!("{d:?} is not a stream"))?,
                None => mobility_server::workers::consumers()
                    .into_iter()
                    .find(|c| c.name == a.consumer)
                    .map(|c| c.domain)
                    .with_context(|| {
                        format!("no platform consumer {:?}: give --domain", a.consumer)
                    })?,
            };
            let spec = mobility_server::workers::consumers()
                .into_iter()
                .find(|c| c.name == a.consumer && c.domain == domain)
                .unwrap_or_else(|| ConsumerSpec::new(a.consumer.clone(), domain));
            let from = match (&a.from, a.from_seq) {
                (Some(t), _) => StartAt::Time(parse_time(t, now)?),
                (None, Some(s)) => StartAt::Seq(s),
                (None, None) => bail!("give --from or --from-seq"),
            };
            bus.reset_consumer(spec, from).await?;
            println!(
                "consumer {} on {domain} will get every event from {from:?} again",
                a.consumer
            );
            Ok(())
        }
        EventsCommand::Info => {
            for d in Domain::ALL {
                let s = bus.stream_info(d).await?;
                println!(
                    "{:<12} events {:>10}  bytes {:>12}  seq {}..{}",
                    d.as_str(),
                    s.messages,
                    s.bytes,
                    s.first_seq,
                    s.last_seq
                );
                for name in bus.consumers(d).await? {
                    let spec = ConsumerSpec::new(name.clone(), d);
                    let lag = bus.consumer(spec).await?.lag().await?;
                    println!("  consumer {name:<24} lag {lag}");
                }
            }
            Ok(())
        }
    }
}

fn line(e: &mobility_bus::Envelope) -> String {
    serde_json::json!({
        "seq": e.seq,
        "stored": e.stored.rfc3339(),
        "subject": e.subject,
        "type": e.event_type,
        "id": e.id,
        "region": e.region,
        "at": e.at.0,
        "event": e.event,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_as_operators_type_them() {
        let now = TimestampMs(10_000_000);
        assert_eq!(
            parse_time("2h", now).expect("age").0,
            10_000_000 - 7_200_000
        );
        assert_eq!(parse_time("1234", now).expect("ms").0, 1234);
        assert_eq!(
            parse_time("1970-01-01T00:00:01Z", now).expect("rfc3339").0,
            1_000
        );
        assert!(parse_time("yesterday", now).is_err());
    }

    #[test]
    fn subjects_name_a_stream_and_maybe_a_city() {
        let (d, c) = parse_subject("vehicle.bcn").expect("subject");
        assert_eq!(d, Domain::Vehicle);
        assert_eq!(c.expect("city").as_str(), "bcn");
        assert!(parse_subject("nope").is_err());
    }
}
