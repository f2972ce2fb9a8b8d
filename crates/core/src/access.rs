//! Who may do what: the roles API callers act in.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::ParseError;

/// A caller's role. Each endpoint names the roles it admits (least privilege).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Configures the platform: cities, vehicles, tokens.
    Admin,
    /// Operations staff: sees the whole fleet and sends vehicle commands.
    Staff,
    /// A telemetry gateway: may only submit telemetry.
    Gateway,
    /// A rider: finds vehicles, books and rides them, sees their own account.
    Rider,
}

impl Role {
    /// All roles.
    pub const ALL: &'static [Self] = &[Self::Admin, Self::Staff, Self::Gateway, Self::Rider];

    /// Our name for it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Staff => "staff",
            Self::Gateway => "gateway",
            Self::Rider => "rider",
        }
    }

    /// Parses the name.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        Self::ALL
            .iter()
            .copied()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                ParseError::new(
                    "role",
                    format!("{s:?} is not one of admin, staff, gateway, rider"),
                )
            })
    }

    /// Does this role include the rights of `other`? Admin includes every role; staff includes
    /// what riders may see (to help them); gateways and riders include only themselves.
    #[must_use]
    pub const fn includes(self, other: Self) -> bool {
        matches!(
            (self, other),
            (Self::Admin, _)
                | (Self::Staff, Self::Staff | Self::Rider)
                | (Self::Gateway, Self::Gateway)
                | (Self::Rider, Self::Rider)
        )
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_privilege() {
        assert!(Role::Admin.includes(Role::Staff));
        assert!(Role::Admin.includes(Role::Gateway));
        assert!(!Role::Staff.includes(Role::Admin));
        assert!(!Role::Staff.includes(Role::Gateway));
        assert!(!Role::Gateway.includes(Role::Staff));
        assert!(Role::Staff.includes(Role::Rider));
        assert!(!Role::Rider.includes(Role::Staff));
        assert!(!Role::Rider.includes(Role::Gateway));
        assert!(!Role::Gateway.includes(Role::Rider));
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()).unwrap(), *r);
        }
        assert!(Role::parse("root").is_err());
    }
}
