//! Names and domains: stack names, tenant slugs, the Coolify project name and the stack's domain.
//!
//! Everything a tenant names ends up in DNS, Docker labels and Coolify names, so names are
//! validated once, here, into types that cannot hold anything else.

use std::fmt;

/// Longest stack name (DESIGN §3).
pub const STACK_NAME_MAX: usize = 40;
/// Longest tenant slug; with the longest stack name and the `-` between them the stack's
/// domain label stays within DNS's 63 characters.
pub const TENANT_SLUG_MAX: usize = 22;
/// Prefix of every Coolify project and service this platform owns.
pub const COOLIFY_NAME_PREFIX: &str = "cfa";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error(
        "invalid {kind} `{shown}`: {problem}\nhint: use 1-{max} characters of a-z, 0-9 and `-`, starting and ending with a letter or digit"
    )]
    InvalidLabel { kind: &'static str, shown: String, problem: &'static str, max: usize },
    #[error(
        "invalid base domain `{shown}`: {problem}\nhint: use a lowercase DNS name such as `cloudfreedom.de`"
    )]
    InvalidBaseDomain { shown: String, problem: &'static str },
    #[error(
        "the domain `{domain}` is too long for DNS: {problem}\nhint: choose a shorter stack name or base domain"
    )]
    DomainTooLong { domain: String, problem: &'static str },
}

/// Shows at most 60 characters of user input, with control characters escaped, so an error
/// message about a hostile name stays one readable line.
fn shown(input: &str) -> String {
    let mut out: String = input.chars().take(60).flat_map(char::escape_debug).collect();
    if input.chars().count() > 60 {
        out.push('…');
    }
    out
}

fn check_dns_label(input: &str, kind: &'static str, max: usize) -> Result<(), NameError> {
    let error = |problem| NameError::InvalidLabel { kind, shown: shown(input), problem, max };
    if input.is_empty() {
        return Err(error("it is empty"));
    }
    if input.len() > max {
        return Err(error("it is too long"));
    }
    if !input.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
    {
        return Err(error("only lowercase letters, digits and `-` are allowed"));
    }
    if input.starts_with('-') || input.ends_with('-') {
        return Err(error("it must not start or end with `-`"));
    }
    if input.contains("--") {
        // `xn--` and friends: a double hyphen also makes `<stack>-<tenant>` ambiguous.
        return Err(error("it must not contain `--`"));
    }
    Ok(())
}

macro_rules! label_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn parse(input: &str) -> Result<$name, NameError> {
                check_dns_label(input, $kind, $max)?;
                Ok($name(input.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = NameError;
            fn from_str(input: &str) -> Result<$name, NameError> {
                $name::parse(input)
            }
        }
    };
}

label_type!(
    /// A stack's name: a DNS label of 1-40 characters, unique per tenant.
    StackName,
    "stack name",
    STACK_NAME_MAX
);
label_type!(
    /// A tenant's slug: a DNS label of 1-22 characters, unique across tenants.
    TenantSlug,
    "tenant slug",
    TENANT_SLUG_MAX
);

/// The DNS zone stacks live under, such as `cloudfreedom.de`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BaseDomain(String);

impl BaseDomain {
    pub fn parse(input: &str) -> Result<BaseDomain, NameError> {
        let error = |problem| NameError::InvalidBaseDomain { shown: shown(input), problem };
        if input.is_empty() {
            return Err(error("it is empty"));
        }
        if input.len() > 200 {
            return Err(error("it is longer than 200 characters"));
        }
        let labels: Vec<&str> = input.split('.').collect();
        if labels.len() < 2 {
            return Err(error("it needs at least two labels"));
        }
        for label in labels {
            let valid = !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !valid {
                return Err(error("each label must be 1-63 characters of a-z, 0-9 and inner `-`"));
            }
        }
        Ok(BaseDomain(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BaseDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The deterministic name of a tenant's Coolify project: found by this name and reused.
pub fn coolify_project_name(tenant: &TenantSlug) -> String {
    format!("{COOLIFY_NAME_PREFIX}-{tenant}")
}

/// The name of a stack's Coolify service, unique per project.
pub fn coolify_service_name(stack: &StackName) -> String {
    format!("{COOLIFY_NAME_PREFIX}-{stack}")
}

/// Every tenant slug a stack label `<stack>-<tenant>` could also be read as ending in: each
/// part after a hyphen (`support-acme-corp` -> `acme-corp`, `corp`), longest first.
pub fn slug_suffixes(label: &str) -> Vec<&str> {
    label
        .match_indices('-')
        .map(|(index, _)| &label[index + 1..])
        .filter(|rest| !rest.is_empty())
        .collect()
}

/// The stack's domain, `<stack>-<tenant>.<base domain>`. Names cannot contain `--`, yet
/// `a-b` + `c` and `a` + `b-c` still meet at `a-b-c`: the engine refuses a label that ends in
/// another tenant's slug and a new slug that ends another tenant's label (`slug_suffixes`),
/// and PocketBase keeps domains unique.
pub fn stack_domain(
    stack: &StackName,
    tenant: &TenantSlug,
    base_domain: &BaseDomain,
) -> Result<String, NameError> {
    let label = format!("{stack}-{tenant}");
    let domain = format!("{label}.{base_domain}");
    if label.len() > 63 {
        return Err(NameError::DomainTooLong {
            domain,
            problem: "its first label exceeds 63 characters",
        });
    }
    if domain.len() > 253 {
        return Err(NameError::DomainTooLong { domain, problem: "it exceeds 253 characters" });
    }
    Ok(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_names_are_dns_labels() {
        for good in ["a", "bot", "support-bot-2", &"x".repeat(40)] {
            assert!(StackName::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "A",
            "a_b",
            "a.b",
            "a b",
            "a--b",
            "ä",
            "a\nb",
            "a\0",
            &"x".repeat(41),
            "${X}",
            "a: b",
        ] {
            assert!(StackName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn errors_name_the_problem_and_stay_one_line_for_hostile_input() {
        let error = StackName::parse(&format!("evil\n{}", "y".repeat(100_000))).unwrap_err();
        let message = error.to_string();
        let first_line = message.lines().next().unwrap();
        assert!(first_line.starts_with("invalid stack name `evil\\nyyy"), "{message}");
        assert!(first_line.len() < 200);
        assert!(message.contains("hint: use 1-40 characters"));
    }

    #[test]
    fn a_label_ends_in_each_part_after_a_hyphen() {
        assert_eq!(slug_suffixes("support-acme-corp"), ["acme-corp", "corp"]);
        assert_eq!(slug_suffixes("bot"), Vec::<&str>::new());
    }

    #[test]
    fn domains_are_derived_and_bounded() {
        let stack = StackName::parse("support-bot").unwrap();
        let tenant = TenantSlug::parse("acme").unwrap();
        let base = BaseDomain::parse("cloudfreedom.de").unwrap();
        assert_eq!(
            stack_domain(&stack, &tenant, &base).unwrap(),
            "support-bot-acme.cloudfreedom.de"
        );
        assert_eq!(coolify_project_name(&tenant), "cfa-acme");
        assert_eq!(coolify_service_name(&stack), "cfa-support-bot");
        let longest = StackName::parse(&"s".repeat(40)).unwrap();
        let longest_tenant = TenantSlug::parse(&"t".repeat(22)).unwrap();
        assert!(stack_domain(&longest, &longest_tenant, &base).is_ok());
        assert!(TenantSlug::parse(&"t".repeat(23)).is_err());
        for bad in ["", "de", "Cloud.de", "a..b", "-a.de", "a.de.", "a_b.de"] {
            assert!(BaseDomain::parse(bad).is_err(), "{bad}");
        }
    }
}
