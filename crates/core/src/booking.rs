//! A booking's states and the moves between them, as rules (the store records a move only from
//! the state it was decided from: compare-and-set).
//!
//! ```text
//! reserved ──> unlocking ──> on_trip <──> paused
//!    │             │            │           │
//!    ├─> cancelled └─> failed   └──> ended <┘   (ended → ended: the trip's facts, once paid)
//!    └─> expired
//! ```

use serde::{Deserialize, Serialize};

/// Where a booking is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BookingState {
    /// Holding a vehicle for the rider until the hold lapses.
    Reserved,
    /// The unlock command is on its way to the vehicle.
    Unlocking,
    /// Riding.
    OnTrip,
    /// Riding, the vehicle locked for a stop.
    Paused,
    /// The trip ended (and is charged).
    Ended,
    /// The rider cancelled the reservation.
    Cancelled,
    /// The hold lapsed unused.
    Expired,
    /// The vehicle did not unlock.
    Failed,
}

impl BookingState {
    /// Every state.
    pub const ALL: [Self; 8] = [
        Self::Reserved,
        Self::Unlocking,
        Self::OnTrip,
        Self::Paused,
        Self::Ended,
        Self::Cancelled,
        Self::Expired,
        Self::Failed,
    ];

    /// Stable name (the store's and the API's).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Reserved => "reserved",
            Self::Unlocking => "unlocking",
            Self::OnTrip => "on_trip",
            Self::Paused => "paused",
            Self::Ended => "ended",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
            Self::Failed => "failed",
        }
    }

    /// The state named `s`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.as_str() == s)
    }

    /// The booking holds its vehicle (at most one such booking per vehicle and per rider).
    #[must_use]
    pub const fn is_active(self) -> bool {
        matches!(
            self,
            Self::Reserved | Self::Unlocking | Self::OnTrip | Self::Paused
        )
    }

    /// The rider is on a trip (riding or paused).
    #[must_use]
    pub const fn is_riding(self) -> bool {
        matches!(self, Self::OnTrip | Self::Paused)
    }

    /// Whether a booking may move from `self` to `to`.
    #[must_use]
    pub const fn can_move_to(self, to: Self) -> bool {
        matches!(
            (self, to),
            (
                Self::Reserved,
                Self::Unlocking | Self::Cancelled | Self::Expired
            ) | (Self::Unlocking, Self::OnTrip | Self::Failed)
                | (Self::OnTrip, Self::Paused | Self::Ended)
                | (Self::Paused, Self::OnTrip | Self::Ended)
                | (Self::Ended, Self::Ended)
        )
    }
}

impl std::fmt::Display for BookingState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in BookingState::ALL {
            assert_eq!(BookingState::parse(s.as_str()), Some(s));
        }
        assert_eq!(BookingState::parse("riding"), None);
    }

    #[test]
    fn the_moves_are_exactly_the_diagram() {
        use BookingState::{
            Cancelled, Ended, Expired, Failed, OnTrip, Paused, Reserved, Unlocking,
        };
        let allowed = [
            (Reserved, Unlocking),
            (Reserved, Cancelled),
            (Reserved, Expired),
            (Unlocking, OnTrip),
            (Unlocking, Failed),
            (OnTrip, Paused),
            (OnTrip, Ended),
            (Paused, OnTrip),
            (Paused, Ended),
            (Ended, Ended),
        ];
        for from in BookingState::ALL {
            for to in BookingState::ALL {
                assert_eq!(
                    from.can_move_to(to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
        // Nothing leaves a final state (but the ended trip's own facts).
        for done in [Cancelled, Expired, Failed] {
            assert!(BookingState::ALL.iter().all(|to| !done.can_move_to(*to)));
        }
        // Active states are exactly those a move can start from, but the ended facts update.
        for s in BookingState::ALL {
            let leaves = BookingState::ALL
                .iter()
                .any(|to| s.can_move_to(*to) && *to != s);
            assert_eq!(s.is_active(), leaves, "{s}");
        }
    }
}
