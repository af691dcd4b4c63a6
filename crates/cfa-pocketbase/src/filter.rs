//! Typed list filters, rendered to PocketBase's filter language with every value quoted and
//! escaped (the REST API has no bound parameters, so escaping is ours to get right).

use cfa_core::lifecycle::StackStatus;

/// A string literal in PocketBase's filter syntax: single quotes, with `\` and `'` escaped.
pub fn quote(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('\'');
    for character in value.chars() {
        if matches!(character, '\\' | '\'') {
            quoted.push('\\');
        }
        quoted.push(character);
    }
    quoted.push('\'');
    quoted
}

/// Which stacks to list; every set criterion must hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StackFilter {
    pub tenant_id: Option<String>,
    /// Any of these statuses (empty: any status).
    pub statuses: Vec<StackStatus>,
    pub template: Option<String>,
    pub stack_name: Option<String>,
    pub domain: Option<String>,
    /// Domains ending in this (a LIKE with `%` before it; `_` and `%` in it match literally
    /// only where they do not occur, so callers pass DNS names, which have neither).
    pub domain_suffix: Option<String>,
}

impl StackFilter {
    pub fn tenant(tenant_id: &str) -> StackFilter {
        StackFilter { tenant_id: Some(tenant_id.to_owned()), ..StackFilter::default() }
    }

    pub fn status(mut self, status: StackStatus) -> StackFilter {
        self.statuses.push(status);
        self
    }

    /// The filter expression, or `None` for "everything".
    pub fn to_expression(&self) -> Option<String> {
        let mut terms = Vec::new();
        if let Some(tenant_id) = &self.tenant_id {
            terms.push(format!("tenant_id = {}", quote(tenant_id)));
        }
        if !self.statuses.is_empty() {
            let any = self
                .statuses
                .iter()
                .map(|status| format!("status = {}", quote(status.as_str())))
                .collect::<Vec<_>>();
            terms.push(format!("({})", any.join(" || ")));
        }
        if let Some(template) = &self.template {
            terms.push(format!("template = {}", quote(template)));
        }
        if let Some(stack_name) = &self.stack_name {
            terms.push(format!("stack_name = {}", quote(stack_name)));
        }
        if let Some(domain) = &self.domain {
            terms.push(format!("domain = {}", quote(domain)));
        }
        if let Some(suffix) = &self.domain_suffix {
            terms.push(format!("domain ~ {}", quote(&format!("%{suffix}"))));
        }
        and(terms)
    }
}

/// Which audit entries to list, in the order they were appended (newest first by default).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AuditQuery {
    pub tenant: Option<String>,
    pub stack: Option<String>,
    pub action: Option<String>,
    pub actor: Option<String>,
    /// At most this many entries (default 100, at most 1000).
    pub limit: Option<u32>,
    /// Oldest first instead of newest first.
    pub oldest_first: bool,
}

impl AuditQuery {
    pub fn to_expression(&self) -> Option<String> {
        let mut terms = Vec::new();
        for (field, value) in [
            ("tenant", &self.tenant),
            ("stack", &self.stack),
            ("action", &self.action),
            ("actor", &self.actor),
        ] {
            if let Some(value) = value {
                terms.push(format!("{field} = {}", quote(value)));
            }
        }
        and(terms)
    }
}

pub(crate) fn and(terms: Vec<String>) -> Option<String> {
    if terms.is_empty() { None } else { Some(terms.join(" && ")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_escape_backslash_and_single_quote() {
        assert_eq!(quote("plain"), "'plain'");
        assert_eq!(quote(r#"it's "q""#), r#"'it\'s "q"'"#);
        assert_eq!(quote(r"a\' || 1=1"), r"'a\\\' || 1=1'");
    }

    #[test]
    fn stack_filter_joins_terms() {
        let filter =
            StackFilter::tenant("t1").status(StackStatus::Running).status(StackStatus::Error);
        assert_eq!(
            filter.to_expression().unwrap(),
            "tenant_id = 't1' && (status = 'running' || status = 'error')"
        );
        assert_eq!(StackFilter::default().to_expression(), None);
    }
}
