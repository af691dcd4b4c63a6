//! The CLI's words for a library's [`Remedy`]: the command lines to type. Library errors word
//! their remedy neutrally ("resume `acme/bot` first"); the CLI adds its commands to that hint
//! line, so the operator can copy them.

use cfa_core::Remedy;
use cfa_engine::EngineError;

/// The commands that carry `remedy` out, or `None` when there is nothing to type.
pub(crate) fn commands(remedy: &Remedy) -> Option<String> {
    Some(match remedy {
        Remedy::ListTenants => "`cfa tenant list`".to_owned(),
        Remedy::ListStacks { tenant } => format!("`cfa list --tenant {tenant}`"),
        Remedy::ListServers => "`cfa capacity`".to_owned(),
        Remedy::Deploy { stack } => {
            format!("`cfa reconcile {stack}` (a `pending` record), or `cfa provision` again")
        }
        Remedy::AwaitDeploy { stack } => format!("`cfa status {stack}`"),
        Remedy::Resume { stack } => format!("`cfa resume {stack}`"),
        Remedy::ActOnRunning => return None,
        Remedy::RetryOrRemove { stack } => {
            format!("`cfa provision` again, `cfa suspend {stack}` or `cfa delete {stack}`")
        }
        Remedy::ReadLogsThenRetry { stack } => {
            format!("`cfa logs {stack}`, then `cfa provision` again or `cfa delete {stack}`")
        }
        Remedy::FixThenDelete { stack, .. } => format!("`cfa delete {stack}`"),
        Remedy::SetPlan { tier, cpus, memory_mb } => match (cpus, memory_mb) {
            (Some(cpus), Some(memory_mb)) => {
                format!(
                    "`cfa tenant set-plan <tenant> {tier} --cpus {cpus} --memory-mb {memory_mb}`"
                )
            }
            _ => format!("`cfa tenant set-plan <tenant> {tier}`"),
        },
        Remedy::ComparePlans => "`cfa plans --output toml`".to_owned(),
        Remedy::InstallSchema => "`cfa pb install`".to_owned(),
        Remedy::CheckSchema => "`cfa pb check`".to_owned(),
    })
}

/// The engine's error with its remedy's commands added to its hint line (its last line).
pub(crate) fn worded(error: EngineError) -> anyhow::Error {
    let Some(commands) = error.remedy().as_ref().and_then(commands) else {
        return error.into();
    };
    anyhow::Error::new(Worded { text: format!("{:#}: {commands}", anyhow::Error::new(error)) })
}

/// An engine error as the CLI words it: the whole chain, already in `text`.
#[derive(Debug, thiserror::Error)]
#[error("{text}")]
struct Worded {
    text: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_the_command_that_fixes_it_on_its_hint_line() {
        let error = EngineError::UnknownStack { tenant: "acme".into(), stack: "bot".into() };
        let text = format!("{:#}", worded(error));
        assert_eq!(
            text,
            "stack `acme/bot` does not exist\nhint: the list of tenant `acme`'s stacks shows which exist: `cfa list --tenant acme`"
        );
    }
}
