//! Commands the platform sends to a vehicle, and how their outcome is decided.

use serde::{Deserialize, Serialize};

use crate::{ParseError, TimestampMs};

/// Highest speed limit a command may set, km/h.
pub const SPEED_LIMIT_KMH_MAX: u8 = 130;
/// Shortest and longest time a command may wait for its acknowledgement.
pub const COMMAND_TIMEOUT_MS_MIN: i64 = 1_000;
/// See [`COMMAND_TIMEOUT_MS_MIN`].
pub const COMMAND_TIMEOUT_MS_MAX: i64 = 120_000;

/// What the vehicle is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum CommandKind {
    /// Engage the lock.
    Lock,
    /// Release the lock (start of a trip).
    Unlock,
    /// Cap the motor speed (slow zones).
    SetSpeedLimit {
        /// The cap, km/h.
        speed_limit_kmh: u8,
    },
    /// Sound the bell or horn (a rider looking for it).
    Ring,
    /// Report position now.
    Locate,
}

impl CommandKind {
    /// Parses a command name with its parameter.
    pub fn parse(name: &str, speed_limit_kmh: Option<i64>) -> Result<Self, ParseError> {
        let kind = match name {
            "lock" => Self::Lock,
            "unlock" => Self::Unlock,
            "ring" => Self::Ring,
            "locate" => Self::Locate,
            "set_speed_limit" => {
                let kmh = speed_limit_kmh.ok_or_else(|| {
                    ParseError::new("command", "set_speed_limit needs speed_limit_kmh")
                })?;
                let kmh = u8::try_from(kmh)
                    .ok()
                    .filter(|k| (1..=SPEED_LIMIT_KMH_MAX).contains(k))
                    .ok_or_else(|| {
                        ParseError::new(
                            "speed limit",
                            format!("{kmh} km/h is not in 1..={SPEED_LIMIT_KMH_MAX}"),
                        )
                    })?;
                Self::SetSpeedLimit {
                    speed_limit_kmh: kmh,
                }
            }
            other => {
                return Err(ParseError::new(
                    "command",
                    format!("{other:?} is not one of lock, unlock, set_speed_limit, ring, locate"),
                ));
            }
        };
        if speed_limit_kmh.is_some() && !matches!(kind, Self::SetSpeedLimit { .. }) {
            return Err(ParseError::new(
                "command",
                "only set_speed_limit takes speed_limit_kmh",
            ));
        }
        Ok(kind)
    }

    /// The command's name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Lock => "lock",
            Self::Unlock => "unlock",
            Self::SetSpeedLimit { .. } => "set_speed_limit",
            Self::Ring => "ring",
            Self::Locate => "locate",
        }
    }
}

/// Where a command stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandState {
    /// Sent, no answer yet.
    Pending,
    /// The vehicle confirmed it did it.
    Acked,
    /// The vehicle answered that it could not.
    Failed,
    /// No answer before the deadline.
    TimedOut,
}

impl CommandState {
    /// The name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Acked => "acked",
            Self::Failed => "failed",
            Self::TimedOut => "timed_out",
        }
    }

    /// Parses the name.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        [Self::Pending, Self::Acked, Self::Failed, Self::TimedOut]
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| ParseError::new("command state", format!("{s:?} is unknown")))
    }

    /// Is the outcome decided?
    #[must_use]
    pub const fn is_final(self) -> bool {
        !matches!(self, Self::Pending)
    }
}

/// What the vehicle answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckStatus {
    /// Done.
    Ok,
    /// Could not do it.
    Failed,
}

/// What to record when an answer arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOutcome {
    /// The command's state becomes this.
    Resolve(CommandState),
    /// Too late (the command already timed out) or a repeat: keep the state, note the late ack.
    Late,
    /// Already resolved by an earlier answer: nothing to do.
    Ignore,
}

/// Decides what an answer means for a command in `state` with `deadline`, received at `at`.
/// An answer after the deadline never turns a time-out into success: the caller has already
/// been told it timed out, and may have acted on that (released a booking, say).
#[must_use]
pub fn on_ack(
    state: CommandState,
    deadline: TimestampMs,
    status: AckStatus,
    at: TimestampMs,
) -> AckOutcome {
    match state {
        CommandState::Pending if at <= deadline => AckOutcome::Resolve(match status {
            AckStatus::Ok => CommandState::Acked,
            AckStatus::Failed => CommandState::Failed,
        }),
        CommandState::Pending | CommandState::TimedOut => AckOutcome::Late,
        CommandState::Acked | CommandState::Failed => AckOutcome::Ignore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing() {
        assert_eq!(CommandKind::parse("lock", None).unwrap(), CommandKind::Lock);
        assert_eq!(
            CommandKind::parse("set_speed_limit", Some(15)).unwrap(),
            CommandKind::SetSpeedLimit {
                speed_limit_kmh: 15
            }
        );
        assert!(CommandKind::parse("set_speed_limit", None).is_err());
        assert!(CommandKind::parse("set_speed_limit", Some(0)).is_err());
        assert!(CommandKind::parse("set_speed_limit", Some(300)).is_err());
        assert!(CommandKind::parse("ring", Some(10)).is_err());
        assert!(CommandKind::parse("self_destruct", None).is_err());
        let json = serde_json::to_string(&CommandKind::SetSpeedLimit {
            speed_limit_kmh: 12,
        })
        .unwrap();
        assert_eq!(
            json,
            r#"{"command":"set_speed_limit","speed_limit_kmh":12}"#
        );
    }

    #[test]
    fn acks_resolve_only_pending_commands_in_time() {
        let d = TimestampMs(100);
        use AckOutcome::*;
        use CommandState::*;
        assert_eq!(
            on_ack(Pending, d, AckStatus::Ok, TimestampMs(100)),
            Resolve(Acked)
        );
        assert_eq!(
            on_ack(Pending, d, AckStatus::Failed, TimestampMs(50)),
            Resolve(Failed)
        );
        assert_eq!(on_ack(Pending, d, AckStatus::Ok, TimestampMs(101)), Late);
        assert_eq!(on_ack(TimedOut, d, AckStatus::Ok, TimestampMs(90)), Late);
        assert_eq!(on_ack(Acked, d, AckStatus::Failed, TimestampMs(90)), Ignore);
        assert_eq!(on_ack(Failed, d, AckStatus::Ok, TimestampMs(90)), Ignore);
    }
}
