//! The allow-list: the only SQL the query handler ever runs. An event names a query and gives
//! parameters; the text of the SQL is fixed here and parameters are bound, never spliced.

use crate::error::DbError;
use serde_json::{Map, Value};

/// Longest time a request may hold its connection busy (`holdMs`), 30 seconds: long enough to
/// simulate slow queries, short enough to stay well inside the function's timeout.
pub const MAX_HOLD_MS: u64 = 30_000;

/// What the application account may do, and all it may do: the privilege each allow-listed
/// statement needs, on its table of the database (`DB_NAME`). The seed grants exactly these
/// and revokes anything else; the hold (`SELECT SLEEP`), `SELECT VERSION()` and the session's
/// statement limit need no privilege.
pub const TABLE_GRANTS: [(&str, &str); 1] = [("SELECT", "Employees")];

/// The names accepted in `"query"`.
pub const QUERY_NAMES: [&str; 2] = ["listEmployees", "getEmployee"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamedQuery {
    ListEmployees,
    GetEmployee { id: i64 },
}

impl NamedQuery {
    /// Resolves a name and its parameters; nothing here touches the database.
    pub fn parse(name: &str, params: Option<&Value>) -> Result<Self, DbError> {
        let empty = Map::new();
        let params = match params {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(map)) => map,
            Some(_) => return Err(DbError::InvalidInput("params must be an object".into())),
        };
        let query = match name {
            "listEmployees" => {
                only(params, &[])?;
                NamedQuery::ListEmployees
            }
            "getEmployee" => {
                only(params, &["id"])?;
                let id = match params.get("id") {
                    Some(Value::Number(n)) => n.as_i64(),
                    Some(Value::String(s)) => s.trim().parse().ok(),
                    _ => None,
                }
                .filter(|id| *id >= 1)
                .ok_or_else(|| {
                    DbError::InvalidInput("getEmployee needs params.id, a positive integer".into())
                })?;
                NamedQuery::GetEmployee { id }
            }
            other => {
                return Err(DbError::UnknownQuery {
                    name: other.to_owned(),
                    known: QUERY_NAMES.join(", "),
                });
            }
        };
        Ok(query)
    }

    pub fn name(&self) -> &'static str {
        match self {
            NamedQuery::ListEmployees => "listEmployees",
            NamedQuery::GetEmployee { .. } => "getEmployee",
        }
    }

    /// The fixed SQL text and the values bound to its placeholders.
    pub fn statement(&self) -> (&'static str, Vec<mysql_async::Value>) {
        match *self {
            NamedQuery::ListEmployees => (
                "SELECT id, first_name AS firstName, last_name AS lastName \
                 FROM Employees ORDER BY id",
                vec![],
            ),
            NamedQuery::GetEmployee { id } => (
                "SELECT id, first_name AS firstName, last_name AS lastName \
                 FROM Employees WHERE id = ?",
                vec![mysql_async::Value::Int(id)],
            ),
        }
    }
}

fn only(params: &Map<String, Value>, allowed: &[&str]) -> Result<(), DbError> {
    match params.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(extra) => Err(DbError::InvalidInput(format!(
            "unexpected parameter {extra:?} (allowed: {})",
            if allowed.is_empty() {
                "none".to_string()
            } else {
                allowed.join(", ")
            }
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn named_queries_resolve_with_their_parameters() {
        assert_eq!(
            NamedQuery::parse("listEmployees", None).unwrap(),
            NamedQuery::ListEmployees
        );
        assert_eq!(
            NamedQuery::parse("getEmployee", Some(&json!({"id": 2}))).unwrap(),
            NamedQuery::GetEmployee { id: 2 }
        );
        assert_eq!(
            NamedQuery::parse("getEmployee", Some(&json!({"id": "3"}))).unwrap(),
            NamedQuery::GetEmployee { id: 3 }
        );
    }

    /// Every table an allow-listed statement names, with the statement's verb.
    fn tables_of(sql: &str) -> (String, Vec<String>) {
        let words: Vec<&str> = sql.split_whitespace().collect();
        let verb = words[0].to_ascii_uppercase();
        let tables = words
            .windows(2)
            .filter(|w| {
                ["FROM", "JOIN", "INTO", "UPDATE"].contains(&w[0].to_ascii_uppercase().as_str())
            })
            .map(|w| w[1].trim_matches(|c| c == '`' || c == ',').to_owned())
            .collect();
        (verb, tables)
    }

    #[test]
    fn the_grants_cover_every_allow_listed_statement_and_nothing_more() {
        let all = [NamedQuery::ListEmployees, NamedQuery::GetEmployee { id: 1 }];
        assert_eq!(all.len(), QUERY_NAMES.len());
        let mut used = Vec::new();
        for query in all {
            let (sql, _) = query.statement();
            let (verb, tables) = tables_of(sql);
            assert!(!tables.is_empty(), "{sql}");
            for table in tables {
                let needed = (verb.as_str(), table.as_str());
                assert!(
                    TABLE_GRANTS.contains(&needed),
                    "{} needs {needed:?}, which TABLE_GRANTS lacks",
                    query.name()
                );
                used.push((verb.clone(), table));
            }
        }
        for (privilege, table) in TABLE_GRANTS {
            assert!(
                used.iter().any(|(v, t)| v == privilege && t == table),
                "TABLE_GRANTS gives {privilege} on {table}, which no allow-listed query needs"
            );
        }
    }

    #[test]
    fn anything_else_is_rejected_by_name() {
        let cases = [
            ("DROP TABLE Employees", None, "UnknownQuery"),
            ("getEmployee", None, "InvalidInput"),
            ("getEmployee", Some(json!({"id": 0})), "InvalidInput"),
            (
                "getEmployee",
                Some(json!({"id": "1 OR 1=1"})),
                "InvalidInput",
            ),
            (
                "getEmployee",
                Some(json!({"id": 1, "sql": "x"})),
                "InvalidInput",
            ),
            ("listEmployees", Some(json!([1])), "InvalidInput"),
            ("listEmployees", Some(json!({"limit": 1})), "InvalidInput"),
        ];
        for (name, params, expected) in cases {
            let err = NamedQuery::parse(name, params.as_ref()).unwrap_err();
            assert_eq!(err.name(), expected, "{name} {params:?}");
        }
    }
}
