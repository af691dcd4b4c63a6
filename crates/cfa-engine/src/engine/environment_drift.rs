//! Environment drift: a deployed stack's variables in Coolify against its template's secret
//! parameters (the only variables the platform sets: everything else is in the compose, whose
//! hash `drift` compares). One Coolify call per stack, so only on request (`cfa drift
//! --environment`). Names only: values are never compared, read out or reported.

use cfa_templates::manifest::ParameterType;

use super::drift::{DriftKind, Healing, StackDrift};
use super::*;

impl Engine {
    /// The stack's variables in Coolify against its template's secret parameters: names only.
    pub(super) async fn environment_drift(
        &self,
        record: &AgentStack,
        service_uuid: &str,
    ) -> Result<Vec<StackDrift>, EngineError> {
        let Some(tenant) = record.tenant.as_deref() else { return Ok(Vec::new()) };
        let subject = Subject { tenant: tenant.slug.clone(), stack: record.stack_name.clone() };
        let Ok(template) = self.template(&record.template) else { return Ok(Vec::new()) };
        let variables = match self.inner.coolify.list_envs_by_service_uuid(service_uuid).await {
            Ok(variables) => variables,
            Err(error) if error.is_not_found() => return Ok(Vec::new()),
            Err(error) => return Err(subject.coolify(Step::SetEnvironment, error)),
        };
        let observed: BTreeMap<String, bool> = variables
            .iter()
            .map(|variable| {
                let set = variable
                    .value
                    .as_ref()
                    .or(variable.real_value.as_ref())
                    .is_some_and(|value| !value.expose().is_empty());
                (variable.key.clone(), set)
            })
            .collect();
        let secrets: Vec<(String, bool)> = template
            .manifest
            .parameters
            .iter()
            .filter(|(_, parameter)| parameter.kind == ParameterType::Secret)
            .map(|(name, parameter)| {
                let required = parameter.required && parameter.default.is_none();
                (cfa_templates::render::secret_variable_name(name), required)
            })
            .collect();
        Ok(compare_environment(&secrets, &observed)
            .into_iter()
            .map(|(kind, detail)| StackDrift {
                tenant: tenant.slug.clone(),
                stack: record.stack_name.clone(),
                kind,
                detail,
                healing: Healing::Operator,
            })
            .collect())
    }
}

/// Variables Coolify makes itself from the compose's magic names (`SERVICE_FQDN_*`,
/// `SERVICE_PASSWORD_*`, ...): never the platform's nor drift.
const COOLIFY_GENERATED_PREFIX: &str = "SERVICE_";

/// The template's secret variables `(name, required)` against Coolify's `(name, has a value)`:
/// a required one missing or empty, and names that are neither ours nor Coolify's own.
fn compare_environment(
    secrets: &[(String, bool)],
    observed: &BTreeMap<String, bool>,
) -> Vec<(DriftKind, String)> {
    let mut found = Vec::new();
    let missing: Vec<&str> = secrets
        .iter()
        .filter(|(name, required)| *required && observed.get(name) != Some(&true))
        .map(|(name, _)| name.as_str())
        .collect();
    if !missing.is_empty() {
        found.push((
            DriftKind::SecretMissing,
            format!(
                "Coolify holds no value for {}: the stack cannot start again until the tenant (or the operator) sets it through the platform's API",
                quoted(&missing)
            ),
        ));
    }
    let extra: Vec<&str> = observed
        .keys()
        .map(String::as_str)
        .filter(|name| !name.starts_with(COOLIFY_GENERATED_PREFIX))
        .filter(|name| !secrets.iter().any(|(secret, _)| secret == name))
        .collect();
    if !extra.is_empty() {
        found.push((
            DriftKind::EnvironmentExtra,
            format!(
                "{} set outside the platform (Coolify's UI?): the compose reads none of them; remove them, or make them template parameters",
                quoted(&extra)
            ),
        ));
    }
    found
}

fn quoted(names: &[&str]) -> String {
    names.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_drift_names_missing_secrets_and_foreign_variables_never_values() {
        let secrets = vec![
            ("TELEGRAM_BOT_TOKEN".to_owned(), true),
            ("ROUTER_API_KEY".to_owned(), true),
            ("WEBHOOK_SECRET".to_owned(), false),
        ];
        let observed: BTreeMap<String, bool> = [
            ("TELEGRAM_BOT_TOKEN", true),
            ("ROUTER_API_KEY", false),
            ("SERVICE_PASSWORD_GATEWAY", true),
            ("DEBUG", true),
        ]
        .into_iter()
        .map(|(name, set)| (name.to_owned(), set))
        .collect();
        let found = compare_environment(&secrets, &observed);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].0, DriftKind::SecretMissing);
        assert!(found[0].1.contains("`ROUTER_API_KEY`") && !found[0].1.contains("WEBHOOK"));
        assert_eq!(found[1].0, DriftKind::EnvironmentExtra);
        assert!(found[1].1.starts_with("`DEBUG` set outside"), "{}", found[1].1);

        let all_set: BTreeMap<String, bool> =
            [("TELEGRAM_BOT_TOKEN".to_owned(), true), ("ROUTER_API_KEY".to_owned(), true)].into();
        assert!(compare_environment(&secrets, &all_set).is_empty());
    }
}
