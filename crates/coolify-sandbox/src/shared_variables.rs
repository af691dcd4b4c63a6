//! Coolify's shared variables (`SharedEnvironmentVariable`: per team, project or environment)
//! and `resolveSharedEnvironmentVariables` (bootstrap/helpers/shared.php, 4.3.11): every
//! `{{team.X}}`, `{{project.X}}` or `{{environment.X}}` (`/{{(.*?)}}/`, whitespace inside
//! trimmed) in a compose value is replaced at parse time, and in an env-API value whatever its
//! `is_literal` says (`EnvironmentVariable::realValue`). The sandbox replaces them where its
//! start job writes the compose and `.env` (`jobs::written_compose`, `jobs::env_file`). It
//! keeps one scope per kind: its one team, and every project and environment alike.

use serde::{Deserialize, Serialize};

/// `SHARED_VARIABLE_TYPES`.
pub(crate) const KINDS: [&str; 3] = ["team", "project", "environment"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SharedVariable {
    pub kind: String,
    pub key: String,
    pub value: String,
}

/// `value` with every known placeholder replaced (unknown ones stay, as in Coolify).
pub(crate) fn resolve(value: &str, variables: &[SharedVariable]) -> String {
    if !value.contains("{{") {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len());
    for (index, line) in value.split('\n').enumerate() {
        if index > 0 {
            out.push('\n');
        }
        let mut rest = line;
        while let Some(start) = rest.find("{{") {
            let Some(length) = rest[start + 2..].find("}}") else { break };
            let inner = &rest[start + 2..start + 2 + length];
            let trimmed = inner.trim();
            let replacement = trimmed.split_once('.').and_then(|(kind, key)| {
                KINDS.contains(&kind).then_some(())?;
                variables
                    .iter()
                    .find(|variable| variable.kind == kind && variable.key == key)
                    .map(|variable| variable.value.as_str())
            });
            out.push_str(&rest[..start]);
            match replacement {
                Some(replacement) => out.push_str(replacement),
                None => out.push_str(&rest[start..start + 4 + length]),
            }
            rest = &rest[start + 4 + length..];
        }
        out.push_str(rest);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_resolve_like_coolify() {
        let variables = vec![SharedVariable {
            kind: "team".into(),
            key: "ROUTER_MASTER_KEY".into(),
            value: "sk-master".into(),
        }];
        assert_eq!(resolve("key={{ team.ROUTER_MASTER_KEY }}!", &variables), "key=sk-master!");
        assert_eq!(
            resolve("{{team.UNKNOWN}} {{server.X}}", &variables),
            "{{team.UNKNOWN}} {{server.X}}"
        );
        assert_eq!(
            resolve("{{team.ROUTER_MASTER_KEY\n}}", &variables),
            "{{team.ROUTER_MASTER_KEY\n}}"
        );
    }
}
