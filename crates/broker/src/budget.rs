//! How big a pool is: set explicitly, or derived from the database's own `max_connections`
//! the way RDS Proxy's `MaxConnectionsPercent` works, minus a reserve kept for admins and
//! migrations.

use crate::error::BrokerError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetPolicy {
    /// Exactly this many concurrent leases.
    Explicit(u32),
    /// `floor(max_connections * percent / 100) - reserve`.
    Percent { percent: u32, reserve: u32 },
}

impl BudgetPolicy {
    /// Whether resolving the policy needs the database's `max_connections`.
    pub fn needs_max_connections(&self) -> bool {
        matches!(self, BudgetPolicy::Percent { .. })
    }

    /// Checks the policy's own numbers before anything is read or written.
    pub fn validate(&self) -> Result<(), BrokerError> {
        match *self {
            BudgetPolicy::Explicit(0) => Err(BrokerError::InvalidInput(
                "Budget must be at least 1".into(),
            )),
            BudgetPolicy::Percent { percent, .. } if !(1..=100).contains(&percent) => Err(
                BrokerError::InvalidInput("BudgetPercent must be between 1 and 100".into()),
            ),
            _ => Ok(()),
        }
    }

    /// The budget in connections. `max_connections` is only read for the percent form.
    pub fn resolve(&self, max_connections: Option<u64>) -> Result<u32, BrokerError> {
        self.validate()?;
        match *self {
            BudgetPolicy::Explicit(n) => Ok(n),
            BudgetPolicy::Percent { percent, reserve } => {
                let max = max_connections.ok_or_else(|| {
                    BrokerError::InvalidInput(
                        "BudgetPercent needs the database's max_connections".into(),
                    )
                })?;
                let share = max.saturating_mul(u64::from(percent)) / 100;
                let budget = share.saturating_sub(u64::from(reserve));
                if budget == 0 {
                    return Err(BrokerError::InvalidInput(format!(
                        "{percent}% of max_connections {max} minus reserve {reserve} leaves no connection"
                    )));
                }
                Ok(u32::try_from(budget).unwrap_or(u32::MAX))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_of_max_connections_minus_reserve() {
        let policy = BudgetPolicy::Percent {
            percent: 90,
            reserve: 5,
        };
        // 90% of 151 is 135.9, floored to 135, minus 5.
        assert_eq!(policy.resolve(Some(151)).unwrap(), 130);
    }

    #[test]
    fn explicit_budget_ignores_the_database() {
        assert_eq!(BudgetPolicy::Explicit(7).resolve(None).unwrap(), 7);
        assert!(!BudgetPolicy::Explicit(7).needs_max_connections());
    }

    #[test]
    fn impossible_budgets_are_invalid_input() {
        let cases = [
            (BudgetPolicy::Explicit(0), Some(100)),
            (
                BudgetPolicy::Percent {
                    percent: 0,
                    reserve: 0,
                },
                Some(100),
            ),
            (
                BudgetPolicy::Percent {
                    percent: 101,
                    reserve: 0,
                },
                Some(100),
            ),
            (
                BudgetPolicy::Percent {
                    percent: 10,
                    reserve: 10,
                },
                Some(100),
            ),
            (
                BudgetPolicy::Percent {
                    percent: 50,
                    reserve: 0,
                },
                None,
            ),
        ];
        for (policy, max) in cases {
            assert_eq!(
                policy.resolve(max).unwrap_err().name(),
                "InvalidInput",
                "{policy:?}"
            );
        }
    }
}
