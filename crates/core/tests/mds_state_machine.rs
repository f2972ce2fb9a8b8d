//! The state machines against the MDS 2.0 spec: every triple (from, event, to) over every state
//! and event type is checked, legal and illegal, against the spec's tables (transcribed in
//! `tests/data/mds-2.0-transitions.txt`) and against the official bundled JSON schemas in
//! `spec/mds-2.0/`, which list the event types allowed with each resulting state.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::collections::{BTreeMap, BTreeSet};

use mobility_core::{EventType, Mode, VehicleState};

type Triple = (VehicleState, EventType, VehicleState);

fn spec_table() -> BTreeMap<&'static str, BTreeSet<Triple>> {
    let text = include_str!("data/mds-2.0-transitions.txt");
    let mut tables: BTreeMap<&str, BTreeSet<Triple>> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        assert_eq!(cols.len(), 4, "line {}: {line}", n + 1);
        let to = VehicleState::parse(cols[2]).unwrap();
        let event = EventType::parse(cols[3]).unwrap();
        let table = tables.entry(cols[0]).or_default();
        for from in cols[1].split(',') {
            let from = VehicleState::parse(from.trim()).unwrap();
            assert!(
                table.insert((from, event, to)),
                "duplicate row at line {}",
                n + 1
            );
        }
    }
    tables
}

#[test]
fn every_triple_is_legal_exactly_when_the_spec_table_lists_it() {
    let tables = spec_table();
    for mode in [Mode::Micromobility, Mode::CarShare] {
        let table = &tables[mode.as_str()];
        let (mut legal, mut illegal) = (0, 0);
        for &from in VehicleState::ALL {
            for &event in EventType::ALL {
                for &to in VehicleState::ALL {
                    let expected = table.contains(&(from, event, to));
                    let got = mode.transition(from, event, to);
                    assert_eq!(
                        got.is_ok(),
                        expected,
                        "{}: {from} --{event}--> {to}: expected {}",
                        mode.as_str(),
                        if expected { "legal" } else { "illegal" }
                    );
                    if expected {
                        legal += 1;
                    } else {
                        illegal += 1;
                    }
                }
            }
        }
        assert_eq!(legal, table.len());
        assert_eq!(legal + illegal, 9 * 47 * 9);
    }
    // Row counts after expanding "valid prior states" lists.
    assert_eq!(tables["micromobility"].len(), 85);
    assert_eq!(tables["car-share"].len(), 47);
}

/// The official bundled schema for a mode, `$defs["modes.<mode>.event"].oneOf`, as
/// resulting state -> allowed event types.
fn schema_pairs(mode: Mode) -> BTreeMap<String, BTreeSet<String>> {
    let path = format!(
        "{}/../../spec/mds-2.0/bundled-{}/provider-events-recent.json",
        env!("CARGO_MANIFEST_DIR"),
        mode.as_str()
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    let branches = schema["$defs"][format!("modes.{}.event", mode.as_str())]["oneOf"]
        .as_array()
        .unwrap();
    branches
        .iter()
        .map(|b| {
            let state = b["properties"]["vehicle_state"]["const"]
                .as_str()
                .unwrap()
                .to_owned();
            let events = b["properties"]["event_types"]["items"]["enum"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e.as_str().unwrap().to_owned())
                .collect();
            (state, events)
        })
        .collect()
}

#[test]
fn every_legal_transition_passes_the_official_event_schema() {
    for mode in [Mode::Micromobility, Mode::CarShare] {
        let schema = schema_pairs(mode);
        let mut from_table: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for t in mode.table() {
            // Upstream defect: car-share's schema says `recommissioned`, the global enum `recommission`.
            let name = match (mode, t.event) {
                (Mode::CarShare, EventType::Recommission) => "recommissioned".to_owned(),
                _ => t.event.as_str().to_owned(),
            };
            from_table
                .entry(t.to.as_str().to_owned())
                .or_default()
                .insert(name);
        }
        for (state, events) in &from_table {
            let allowed = schema
                .get(state)
                .unwrap_or_else(|| panic!("{}: schema has no branch for {state}", mode.as_str()));
            let missing: Vec<_> = events.difference(allowed).collect();
            assert!(
                missing.is_empty(),
                "{}: {state}: not in schema: {missing:?}",
                mode.as_str()
            );
        }
        if mode == Mode::Micromobility {
            // And the other way round: the schema allows nothing the table lacks.
            assert_eq!(
                from_table, schema,
                "micromobility table and schema disagree"
            );
        }
    }
}
