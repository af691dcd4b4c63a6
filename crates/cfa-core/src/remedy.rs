//! What a person can do about a refusal or a failure, as data. Library errors carry a
//! [`Remedy`] and word it neutrally ("resume the stack"); each front end words it its own
//! way: the CLI as the command line to type, the JSON API as an action name
//! ([`Remedy::action`]) a client can offer as a button. So no library error names a CLI
//! command, and a new front end needs no new error types.

use std::fmt;

use crate::plan::PlanTier;

/// A stack, by its tenant's slug and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackRef {
    pub tenant: String,
    pub stack: String,
}

impl StackRef {
    pub fn new(tenant: impl Into<String>, stack: impl Into<String>) -> StackRef {
        StackRef { tenant: tenant.into(), stack: stack.into() }
    }
}

impl fmt::Display for StackRef {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}/{}", self.tenant, self.stack)
    }
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remedy {
    /// The tenant named does not exist: look at the list.
    ListTenants,
    /// The stack named does not exist: look at the tenant's stacks.
    ListStacks { tenant: String },
    /// The server named is not configured: look at the servers.
    ListServers,
    /// A pending or failed stack is deployed (again) by the controller or a provision.
    Deploy { stack: StackRef },
    /// A deploy is under way: wait, and watch its status.
    AwaitDeploy { stack: StackRef },
    /// The stack is suspended: resume it first.
    Resume { stack: StackRef },
    /// A running stack: it can be suspended, upgraded or deleted, nothing else.
    ActOnRunning,
    /// A failed stack: retry its deploy, suspend it or delete it.
    RetryOrRemove { stack: StackRef },
    /// It did not become ready or failed to start: read its logs, then deploy it again (which
    /// keeps waiting) or delete it.
    ReadLogsThenRetry { stack: StackRef },
    /// The delete stopped before anything was deleted: fix what `detail` says, then delete
    /// again.
    FixThenDelete { stack: StackRef, detail: String },
    /// The tenant's plan does not allow it; `tier` does (with these per-stack ceilings for the
    /// custom plan).
    SetPlan { tier: PlanTier, cpus: Option<String>, memory_mb: Option<u32> },
    /// The plans file is not valid: compare it with the built-in one.
    ComparePlans,
    /// PocketBase lacks the platform's collections, hooks or indexes: install them, restart.
    InstallSchema,
    /// Whether PocketBase has what the platform needs: check it.
    CheckSchema,
}

impl Remedy {
    /// A stable name for the JSON API (`"hint": {"action": "resume", ...}`).
    pub fn action(&self) -> &'static str {
        match self {
            Remedy::ListTenants => "list_tenants",
            Remedy::ListStacks { .. } => "list_stacks",
            Remedy::ListServers => "list_servers",
            Remedy::Deploy { .. } => "deploy",
            Remedy::AwaitDeploy { .. } => "await_deploy",
            Remedy::Resume { .. } => "resume",
            Remedy::ActOnRunning => "suspend_upgrade_or_delete",
            Remedy::RetryOrRemove { .. } => "retry_suspend_or_delete",
            Remedy::ReadLogsThenRetry { .. } => "read_logs_then_retry",
            Remedy::FixThenDelete { .. } => "fix_then_delete",
            Remedy::SetPlan { .. } => "set_plan",
            Remedy::ComparePlans => "compare_plans",
            Remedy::InstallSchema => "install_schema",
            Remedy::CheckSchema => "check_schema",
        }
    }
}

/// The neutral wording, for logs and front ends that word nothing themselves.
impl fmt::Display for Remedy {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Remedy::ListTenants => formatter.write_str("the list of tenants shows which exist"),
            Remedy::ListStacks { tenant } => {
                write!(formatter, "the list of tenant `{tenant}`'s stacks shows which exist")
            }
            Remedy::ListServers => formatter.write_str("the capacity report lists the servers"),
            Remedy::Deploy { stack } => write!(
                formatter,
                "`{stack}` is deployed by the controller, or by provisioning it again"
            ),
            Remedy::AwaitDeploy { stack } => {
                write!(formatter, "wait for the deploy of `{stack}` to finish; its status shows it")
            }
            Remedy::Resume { stack } => write!(formatter, "resume `{stack}` first"),
            Remedy::ActOnRunning => {
                formatter.write_str("a running stack can be suspended, upgraded or deleted")
            }
            Remedy::RetryOrRemove { stack } => {
                write!(formatter, "retry `{stack}` (provision it again), suspend it or delete it")
            }
            Remedy::ReadLogsThenRetry { stack } => write!(
                formatter,
                "read the logs of `{stack}`; provisioning it again keeps waiting, deleting it gives up"
            ),
            Remedy::FixThenDelete { stack, detail } => {
                write!(formatter, "{detail}; then delete `{stack}` again")
            }
            Remedy::SetPlan { tier, cpus, memory_mb } => {
                write!(formatter, "move the tenant to the {tier} plan")?;
                match (cpus, memory_mb) {
                    (Some(cpus), Some(memory_mb)) => write!(
                        formatter,
                        " with a ceiling of {cpus} CPU and {memory_mb} MB per stack"
                    ),
                    _ => Ok(()),
                }
            }
            Remedy::ComparePlans => formatter.write_str("compare it with the built-in plans"),
            Remedy::InstallSchema => formatter.write_str(
                "install the platform's PocketBase migrations and hooks, then restart PocketBase",
            ),
            Remedy::CheckSchema => {
                formatter.write_str("the PocketBase schema check tells what is missing")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_are_unique_and_the_neutral_words_name_no_cli_command() {
        let stack = StackRef::new("acme", "bot");
        let remedies = [
            Remedy::ListTenants,
            Remedy::ListStacks { tenant: "acme".into() },
            Remedy::ListServers,
            Remedy::Deploy { stack: stack.clone() },
            Remedy::AwaitDeploy { stack: stack.clone() },
            Remedy::Resume { stack: stack.clone() },
            Remedy::ActOnRunning,
            Remedy::RetryOrRemove { stack: stack.clone() },
            Remedy::ReadLogsThenRetry { stack: stack.clone() },
            Remedy::FixThenDelete { stack, detail: "check the bucket".into() },
            Remedy::SetPlan {
                tier: PlanTier::Sovereign,
                cpus: Some("2".into()),
                memory_mb: Some(3072),
            },
            Remedy::ComparePlans,
            Remedy::InstallSchema,
            Remedy::CheckSchema,
        ];
        let mut actions: Vec<&str> = remedies.iter().map(Remedy::action).collect();
        actions.sort_unstable();
        actions.dedup();
        assert_eq!(actions.len(), remedies.len());
        for remedy in &remedies {
            let words = remedy.to_string();
            assert!(!words.contains("`cfa"), "{words}");
        }
        assert_eq!(
            remedies[10].to_string(),
            "move the tenant to the sovereign plan with a ceiling of 2 CPU and 3072 MB per stack"
        );
    }
}
