//! SQL identifiers that come from user input: output table keys and schema field names.
//! They are checked here and always double-quoted when used; nothing else from the user ever
//! becomes part of SQL text.

use crate::error::{Error, Result};

const MAX_LEN: usize = 63;

fn check(what: &'static str, name: &str) -> Result<()> {
    let invalid = |why| {
        Err(Error::InvalidIdentifier {
            what,
            name: name.to_string(),
            why,
        })
    };
    let mut chars = name.chars();
    match chars.next() {
        None => return invalid("it is empty"),
        Some(c) if !c.is_ascii_alphabetic() => return invalid("it must start with a letter"),
        _ => {}
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return invalid("only letters, digits and _ are allowed");
    }
    if name.len() > MAX_LEN {
        return invalid("it is longer than 63 characters");
    }
    Ok(())
}

/// An output key (`createSmithers({ publishApproval: … })`); its table is `snake_case(key)`.
pub fn check_table_key(key: &str) -> Result<()> {
    check("output key", key)?;
    // SQLite reserves every table name that starts with `sqlite_` (`sqliteMaster` would be
    // `sqlite_master`): refused here, not by CREATE TABLE after a run was written.
    let table = snake_case(key);
    if table.starts_with("smithers_") || table == "sqlite" || table.starts_with("sqlite_") {
        return Err(Error::InvalidIdentifier {
            what: "output key",
            name: key.to_string(),
            why: "names starting with smithers_ or sqlite_ are reserved",
        });
    }
    Ok(())
}

pub fn check_field(field: &str) -> Result<()> {
    check("schema field", field)?;
    if matches!(
        snake_case(field).as_str(),
        "run_id" | "node_id" | "iteration"
    ) {
        return Err(Error::InvalidIdentifier {
            what: "schema field",
            name: field.to_string(),
            why: "run_id, node_id and iteration are the output table's key columns",
        });
    }
    Ok(())
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

/// Double-quotes an identifier that [`check`] accepted (it cannot contain quotes).
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
