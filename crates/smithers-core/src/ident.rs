//! SQL identifiers that come from user input: output table keys and schema field names.
//! They are checked here and always double-quoted when used; nothing else from the user ever
//! becomes part of SQL text.

use crate::error::{Error, Result};

const MAX_LEN: usize = 63;

/// The columns every output table has first (its key): no schema field may take their names.
pub const KEY_COLUMNS: [&str; 3] = ["run_id", "node_id", "iteration"];

/// Why `name` cannot be an SQL identifier (`^[A-Za-z][A-Za-z0-9_]*$`, at most 63 bytes).
pub fn identifier_problem(name: &str) -> Option<&'static str> {
    let mut chars = name.chars();
    match chars.next() {
        None => return Some("it is empty"),
        Some(c) if !c.is_ascii_alphabetic() => return Some("it must start with a letter"),
        _ => {}
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Some("only letters, digits and _ are allowed");
    }
    if name.len() > MAX_LEN {
        return Some("it is longer than 63 characters");
    }
    None
}

/// Why `key` cannot be an output key (`createSmithers({ publishApproval: … })`); its table
/// is `snake_case(key)`.
pub fn table_key_problem(key: &str) -> Option<&'static str> {
    identifier_problem(key).or_else(|| {
        // SQLite reserves every table name that starts with `sqlite_` (`sqliteMaster` would
        // be `sqlite_master`): refused here, not by CREATE TABLE after a run was written.
        let table = snake_case(key);
        (table.starts_with("smithers_") || table == "sqlite" || table.starts_with("sqlite_"))
            .then_some("names starting with smithers_ or sqlite_ are reserved")
    })
}

/// Why `field` cannot be a field of an output schema (a column of its table).
pub fn field_problem(field: &str) -> Option<&'static str> {
    identifier_problem(field).or_else(|| {
        KEY_COLUMNS
            .contains(&snake_case(field).as_str())
            .then_some("run_id, node_id and iteration are the output table's key columns")
    })
}

fn check(what: &'static str, name: &str, problem: Option<&'static str>) -> Result<()> {
    match problem {
        None => Ok(()),
        Some(why) => Err(Error::InvalidIdentifier {
            what,
            name: name.to_string(),
            why,
        }),
    }
}

/// An output key the core accepts (see [`table_key_problem`]).
pub fn check_table_key(key: &str) -> Result<()> {
    check("output key", key, table_key_problem(key))
}

pub fn check_field(field: &str) -> Result<()> {
    check("schema field", field, field_problem(field))
}

/// `publishApproval` → `publish_approval`, `decidedAt` → `decided_at`, `HTTPCode` → `http_code`.
pub fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1);
            let boundary = match prev {
                Some(p) if p.is_ascii_lowercase() || p.is_ascii_digit() => true,
                Some(p) if p.is_ascii_uppercase() => next.is_some_and(|n| n.is_ascii_lowercase()),
                _ => false,
            };
            if boundary && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Double-quotes an identifier that [`identifier_problem`] accepted (it cannot contain quotes).
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_cases_like_smithers() {
        assert_eq!(snake_case("publishApproval"), "publish_approval");
        assert_eq!(snake_case("decidedBy"), "decided_by");
        assert_eq!(snake_case("HTTPCode"), "http_code");
        assert_eq!(snake_case("step2Result"), "step2_result");
        assert_eq!(snake_case("already_snake"), "already_snake");
    }

    #[test]
    fn rejects_hostile_names() {
        for bad in [
            "",
            "1abc",
            "a b",
            "x\";DROP TABLE t;--",
            "_smithers_runs",
            "smithersRuns",
            "a-b",
            "sqliteMaster",
            "sqliteSequence",
            "sqlite_stat1",
            "SqliteSchema",
        ] {
            assert!(check_table_key(bad).is_err(), "{bad}");
        }
        assert!(check_field("runId").is_err());
        assert!(check_table_key(&"a".repeat(64)).is_err());
        assert!(check_table_key("publishApproval").is_ok());
    }
}
