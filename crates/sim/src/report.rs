//! The report of a run: headline figures, per-hour and per-district tables (CSV) and plots (SVG).
//! Everything here is a function of the simulation state, so equal runs give equal bytes.

use plotters::prelude::*;
use serde::Serialize;

use crate::{
    local::Received,
    sim::{Activity, Faults, HourStats, Sim},
};

/// Lost demand in one district (requests grouped by their nearest hotspot).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DistrictStats {
    /// Hotspot name.
    pub name: String,
    /// Requests.
    pub demand: u64,
    /// Lost requests.
    pub lost: u64,
    /// Lost share, percent.
    pub lost_pct: f64,
}

/// Headline figures of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// City id.
    pub city: String,
    /// Seed.
    pub seed: u64,
    /// Fleet size.
    pub vehicles: u32,
    /// Simulated hours.
    pub hours: u32,
    /// Start of the run (UTC ms).
    pub start_ms: i64,
    /// Rider requests (potential demand).
    pub demand: u64,
    /// Trips started.
    pub trips_served: u64,
    /// Requests lost (no rentable vehicle within walking distance).
    pub lost: u64,
    /// Lost share of demand, percent.
    pub lost_demand_pct: f64,
    /// Of the lost, those where the platform showed a vehicle that was not really rentable.
    pub lost_phantom: u64,
    /// Trips completed.
    pub trips_completed: u64,
    /// Share of vehicle time spent on trips, percent.
    pub utilisation_pct: f64,
    /// Trips per vehicle per day.
    pub trips_per_vehicle_day: f64,
    /// Simulated revenue (unlock fee plus per-minute tariff), in the city's currency.
    pub revenue: f64,
    /// Vehicles moved by staff.
    pub relocations: u64,
    /// Batteries swapped by staff.
    pub battery_swaps: u64,
    /// Field operations, when a policy ran.
    pub ops: Option<OpsReport>,
    /// Mean walk of served riders to their vehicle, metres.
    pub avg_walk_m: f64,
    /// Mean trip distance, km.
    pub avg_trip_km: f64,
    /// Vehicles that went flat.
    pub went_flat: u64,
    /// Vehicles out of service with a flat battery at the end.
    pub flat_at_end: u64,
    /// Battery distribution at the end: vehicles per 10 % band (0–9, 10–19, …, 90–100).
    pub battery_bands: [u32; 10],
    /// Messages sent to the platform (including duplicates).
    pub messages: u64,
    /// Duplicated messages.
    pub duplicated: u64,
    /// Reordered messages.
    pub reordered: u64,
    /// Offline periods.
    pub offline_periods: u64,
    /// What the platform did with the messages.
    pub platform: Received,
    /// Crashes (ground truth, see truth.json).
    pub crashes: u64,
    /// Vehicles with degrading batteries (ground truth, see truth.json).
    pub degrading_batteries: u64,
    /// Faults injected.
    pub faults: Faults,
    /// Per hour.
    pub hourly: Vec<HourStats>,
    /// Per district, most lost first.
    pub districts: Vec<DistrictStats>,
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        round2(part as f64 * 100.0 / whole as f64)
    }
}

impl Report {
    /// The report of a simulation after `hours` hours.
    #[must_use]
    pub fn of(sim: &Sim, hours: u32, received: &Received) -> Self {
        let t = sim.totals();
        let cfg = sim.config();
        let fleet_ms = f64::from(cfg.vehicles) * f64::from(hours) * 3_600_000.0;
        let mut battery_bands = [0u32; 10];
        for v in sim.vehicles() {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let band = ((v.battery / 10.0).floor() as usize).min(9);
            battery_bands[band] += 1;
        }
        let mut districts: Vec<DistrictStats> = sim
            .city()
            .hotspots
            .iter()
            .enumerate()
            .map(|(i, h)| DistrictStats {
                name: h.name.clone(),
                demand: t.demand_by_district[i],
                lost: t.lost_by_district[i],
                lost_pct: pct(t.lost_by_district[i], t.demand_by_district[i]),
            })
            .collect();
        districts.sort_by(|a, b| b.lost.cmp(&a.lost).then_with(|| a.name.cmp(&b.name)));
        let days = f64::from(hours) / 24.0;
        Self {
            city: sim.city().id.clone(),
            seed: cfg.seed,
            vehicles: cfg.vehicles,
            hours,
            start_ms: cfg.start.0,
            demand: t.demand,
            trips_served: t.served,
            lost: t.lost,
            lost_demand_pct: pct(t.lost, t.demand),
            lost_phantom: t.lost_phantom,
            trips_completed: t.trips_completed,
            utilisation_pct: if fleet_ms > 0.0 {
                round2(t.on_trip_ms as f64 * 100.0 / fleet_ms)
            } else {
                0.0
            },
            trips_per_vehicle_day: if cfg.vehicles > 0 && days > 0.0 {
                round2(t.served as f64 / f64::from(cfg.vehicles) / days)
            } else {
                0.0
            },
            revenue: round2(t.revenue_cents as f64 / 100.0),
            relocations: t.relocations,
            battery_swaps: t.battery_swaps,
            ops: sim.ops().map(|o| {
                let s = &o.stats;
                let per_k = |x: f64| {
                    if t.served == 0 {
                        0.0
                    } else {
                        round2(x * 1_000.0 / t.served as f64)
                    }
                };
                OpsReport {
                    policy: o.config().policy,
                    vans: o.config().vans,
                    staff_km: round2(s.staff_km),
                    staff_km_per_1000_trips: per_k(s.staff_km),
                    swaps_per_1000_trips: per_k(s.swaps as f64),
                    stats: s.clone(),
                }
            }),
            avg_walk_m: if t.served > 0 {
                round2(t.walk_m_sum / t.served as f64)
            } else {
                0.0
            },
            avg_trip_km: if t.trips_completed > 0 {
                round2(t.trip_m_sum / t.trips_completed as f64 / 1_000.0)
            } else {
                0.0
            },
            went_flat: t.went_flat,
            flat_at_end: sim
                .vehicles()
                .iter()
                .filter(|v| v.activity == Activity::LowBattery)
                .count() as u64,
            battery_bands,
            messages: t.messages,
            duplicated: t.duplicated,
            reordered: t.reordered,
            offline_periods: t.offline_periods,
            platform: received.clone(),
            crashes: sim.truth().crashes.len() as u64,
            degrading_batteries: sim.truth().degrading_batteries.len() as u64,
            faults: cfg.faults,
            hourly: sim.hours().to_vec(),
            districts,
        }
    }

    /// `hourly.csv`: one row per simulated hour.
    #[must_use]
    pub fn hourly_csv(&self) -> String {
        let mut out = String::from("hour,local_hour,demand,served,lost,lost_pct,rain\n");
        for h in &self.hourly {
            out.push_str(&format!(
                "{},{},{},{},{},{},{}\n",
                h.hour,
                h.local_hour,
                h.demand,
                h.served,
                h.lost,
                pct(u64::from(h.lost), u64::from(h.demand)),
                h.rain
            ));
        }
        out
    }

    /// `districts.csv`: lost demand per district.
    #[must_use]
    pub fn districts_csv(&self) -> String {
        let mut out = String::from("district,demand,lost,lost_pct\n");
        for d in &self.districts {
            out.push_str(&format!(
                "\"{}\",{},{},{}\n",
                d.name.replace('"', "\"\""),
                d.demand,
                d.lost,
                d.lost_pct
            ));
        }
        out
    }

    /// Demand and trips served per hour (SVG).
    pub fn demand_svg(&self) -> Result<String, String> {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (960, 480)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| e.to_string())?;
            let hours = u32::try_from(self.hourly.len()).unwrap_or(0).max(1);
            let top = self
                .hourly
                .iter()
                .map(|h| h.demand)
                .max()
                .unwrap_or(1)
                .max(1);
            let mut chart = ChartBuilder::on(&root)
                .caption("Demand vs trips served, per hour", ("sans-serif", 22))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(60)
                .build_cartesian_2d(0u32..hours, 0u32..top + top / 10 + 1)
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc("hour since start")
                .y_desc("requests")
                .draw()
                .map_err(|e| e.to_string())?;
            chart
                .draw_series(LineSeries::new(
                    self.hourly.iter().map(|h| (h.hour, h.demand)),
                    BLUE.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?
                .label("demand")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
            chart
                .draw_series(LineSeries::new(
                    self.hourly.iter().map(|h| (h.hour, h.served)),
                    GREEN.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?
                .label("served")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREEN));
            chart
                .draw_series(LineSeries::new(
                    self.hourly.iter().map(|h| (h.hour, h.lost)),
                    RED.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?
                .label("lost")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
            chart
                .configure_series_labels()
                .border_style(BLACK)
                .background_style(WHITE.mix(0.8))
                .draw()
                .map_err(|e| e.to_string())?;
            root.present().map_err(|e| e.to_string())?;
        }
        Ok(svg)
    }

    /// Lost demand per district (SVG, horizontal bars, most lost first).
    pub fn lost_by_zone_svg(&self) -> Result<String, String> {
        let mut svg = String::new();
        {
            let rows: Vec<&DistrictStats> = self.districts.iter().take(24).collect();
            let n = u32::try_from(rows.len()).unwrap_or(0).max(1);
            let root = SVGBackend::with_string(&mut svg, (960, 120 + 22 * n)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| e.to_string())?;
            let top = rows.iter().map(|d| d.lost).max().unwrap_or(1).max(1);
            let mut chart = ChartBuilder::on(&root)
                .caption("Lost requests by district", ("sans-serif", 22))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(180)
                .build_cartesian_2d(0u64..top + top / 10 + 1, (0u32..n).into_segmented())
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .disable_y_mesh()
                .y_labels(rows.len())
                .y_label_formatter(&|v| match v {
                    SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => rows
                        .get(*i as usize)
                        .map(|d| format!("{} ({:.0} %)", d.name, d.lost_pct))
                        .unwrap_or_default(),
                    SegmentValue::Last => String::new(),
                })
                .x_desc("lost requests")
                .draw()
                .map_err(|e| e.to_string())?;
            chart
                .draw_series(rows.iter().enumerate().map(|(i, d)| {
                    let i = u32::try_from(i).unwrap_or(0);
                    Rectangle::new(
                        [
                            (0, SegmentValue::Exact(i)),
                            (d.lost, SegmentValue::Exact(i + 1)),
                        ],
                        RED.mix(0.7).filled(),
                    )
                }))
                .map_err(|e| e.to_string())?;
            root.present().map_err(|e| e.to_string())?;
        }
        Ok(svg)
    }

    /// Battery distribution at the end of the run (SVG histogram).
    pub fn battery_svg(&self) -> Result<String, String> {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (960, 420)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| e.to_string())?;
            let top = self.battery_bands.iter().copied().max().unwrap_or(1).max(1);
            let mut chart = ChartBuilder::on(&root)
                .caption("Battery at the end of the run", ("sans-serif", 22))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(60)
                .build_cartesian_2d((0u32..10u32).into_segmented(), 0u32..top + top / 10 + 1)
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_label_formatter(&|v| match v {
                    SegmentValue::CenterOf(b) | SegmentValue::Exact(b) => {
                        format!("{}–{} %", b * 10, b * 10 + 9)
                    }
                    SegmentValue::Last => String::new(),
                })
                .x_desc("battery")
                .y_desc("vehicles")
                .draw()
                .map_err(|e| e.to_string())?;
            // Rectangles in band order (plotters' Histogram aggregates in a HashMap, whose
            // order would make equal runs write different files).
            chart
                .draw_series(self.battery_bands.iter().enumerate().map(|(b, n)| {
                    let b = u32::try_from(b).unwrap_or(0);
                    Rectangle::new(
                        [
                            (SegmentValue::Exact(b), 0),
                            (SegmentValue::Exact(b + 1), *n),
                        ],
                        BLUE.mix(0.7).filled(),
                    )
                }))
                .map_err(|e| e.to_string())?;
            root.present().map_err(|e| e.to_string())?;
        }
        Ok(svg)
    }
}

/// Field operations in a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpsReport {
    /// Policy.
    pub policy: crate::ops::Policy,
    /// Vans.
    pub vans: u32,
    /// Kilometres driven.
    pub staff_km: f64,
    /// Per 1,000 trips served.
    pub staff_km_per_1000_trips: f64,
    /// Battery swaps per 1,000 trips served.
    pub swaps_per_1000_trips: f64,
    /// Everything counted.
    pub stats: crate::ops::OpsStats,
}
