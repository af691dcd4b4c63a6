//! Plans: the four tiers, their per-stack ceilings, allowed templates and backup policy.
//!
//! The table is data: a built-in TOML (`plans.toml`, DESIGN §3) that an operator's file of the
//! same shape overrides field by field. Both go through the same parser, so the built-in
//! table is checked exactly like an operator's.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use crate::resources::{Resources, format_cpus, format_megabytes};

/// The built-in plan table, as TOML.
pub const BUILTIN_PLANS_TOML: &str = include_str!("plans.toml");

/// A plan tier, as stored in PocketBase's `tenants.plan_tier`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlanTier {
    Starter,
    Team,
    Business,
    Sovereign,
}

impl PlanTier {
    /// Every tier, cheapest first.
    pub const ALL: [PlanTier; 4] =
        [PlanTier::Starter, PlanTier::Team, PlanTier::Business, PlanTier::Sovereign];

    pub fn as_str(self) -> &'static str {
        match self {
            PlanTier::Starter => "starter",
            PlanTier::Team => "team",
            PlanTier::Business => "business",
            PlanTier::Sovereign => "sovereign",
        }
    }

    pub fn parse(input: &str) -> Result<PlanTier, PlanError> {
        PlanTier::ALL
            .into_iter()
            .find(|tier| tier.as_str() == input)
            .ok_or_else(|| PlanError::UnknownTier { given: input.chars().take(40).collect() })
    }
}

impl fmt::Display for PlanTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for PlanTier {
    type Err = PlanError;
    fn from_str(input: &str) -> Result<PlanTier, PlanError> {
        PlanTier::parse(input)
    }
}

/// How a plan's stateful stacks are backed up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupPolicy {
    None,
    Daily { retention_days: u32 },
}

/// Where a plan's per-stack ceiling comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ceiling {
    Fixed(Resources),
    /// The tenant's own `resource_limits`, else the table's sovereign default.
    Tenant {
        default: Resources,
    },
}

/// One tier's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub tier: PlanTier,
    /// `max_stacks` given to a tenant put on this plan; `None` is unlimited.
    pub max_stacks: Option<u32>,
    /// The highest `max_stacks` an operator should give a tenant on this plan.
    pub max_stacks_limit: Option<u32>,
    pub ceiling: Ceiling,
    /// Template names, or `*` for all.
    pub templates: Vec<String>,
    pub backups: BackupPolicy,
}

impl Plan {
    /// The per-stack CPU and memory ceiling for a tenant with these `resource_limits`.
    pub fn ceiling_for(&self, tenant_resource_limits: Option<Resources>) -> Resources {
        match self.ceiling {
            Ceiling::Fixed(resources) => resources,
            Ceiling::Tenant { default } => tenant_resource_limits.unwrap_or(default),
        }
    }

    pub fn allows_template(&self, template: &str) -> bool {
        self.templates.iter().any(|allowed| allowed == "*" || allowed == template)
    }

    pub fn ceiling_description(&self) -> String {
        match self.ceiling {
            Ceiling::Fixed(resources) => resources.to_string(),
            Ceiling::Tenant { default } => format!(
                "custom (tenant resource_limits; default {} CPU, {})",
                format_cpus(default.millicpus),
                format_megabytes(default.memory_mb)
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("unknown plan tier `{given}`\nhint: use one of starter, team, business, sovereign")]
    UnknownTier { given: String },
    #[error("the plans file is not valid: {message}\nhint: compare it with the built-in plans")]
    InvalidFile { message: String },
}

/// The plan table in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanTable {
    plans: BTreeMap<PlanTier, Plan>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlansFile {
    #[serde(default)]
    sovereign_default_ceiling: Option<CeilingFile>,
    #[serde(default)]
    plans: BTreeMap<PlanTier, PlanFile>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
struct CeilingFile {
    cpus: f64,
    memory_mb: u32,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    max_stacks: Option<u32>,
    max_stacks_limit: Option<u32>,
    cpus: Option<f64>,
    memory_mb: Option<u32>,
    ceiling: Option<String>,
    templates: Option<Vec<String>>,
    backups: Option<String>,
    backup_retention_days: Option<u32>,
    /// Lets an override file turn a limit back into "unlimited".
    unlimited_stacks: Option<bool>,
}

impl PlanFile {
    fn merged_with(self, over: PlanFile) -> PlanFile {
        PlanFile {
            max_stacks: over.max_stacks.or(self.max_stacks),
            max_stacks_limit: over.max_stacks_limit.or(self.max_stacks_limit),
            cpus: over.cpus.or(self.cpus),
            memory_mb: over.memory_mb.or(self.memory_mb),
            ceiling: over.ceiling.or(self.ceiling),
            templates: over.templates.or(self.templates),
            backups: over.backups.or(self.backups),
            backup_retention_days: over.backup_retention_days.or(self.backup_retention_days),
            unlimited_stacks: over.unlimited_stacks.or(self.unlimited_stacks),
        }
    }
}

fn millicpus(cpus: f64, what: &str) -> Result<u32, PlanError> {
    if !(cpus.is_finite() && cpus > 0.0 && cpus <= 1024.0) {
        return Err(PlanError::InvalidFile {
            message: format!("{what}: cpus must be between 0 and 1024"),
        });
    }
    Ok((cpus * 1000.0).round() as u32)
}

impl PlanTable {
    /// The built-in table of DESIGN §3.
    pub fn builtin() -> PlanTable {
        PlanTable::from_toml_overrides(None).expect("the built-in plan table is valid")
    }

    /// The built-in table with an operator's TOML file laid over it.
    pub fn with_overrides(override_toml: &str) -> Result<PlanTable, PlanError> {
        PlanTable::from_toml_overrides(Some(override_toml))
    }

    fn from_toml_overrides(override_toml: Option<&str>) -> Result<PlanTable, PlanError> {
        let parse = |text: &str| {
            toml::from_str::<PlansFile>(text)
                .map_err(|error| PlanError::InvalidFile { message: error.message().to_owned() })
        };
        let builtin = parse(BUILTIN_PLANS_TOML)?;
        let over = match override_toml {
            Some(text) => parse(text)?,
            None => PlansFile::default(),
        };
        let default_ceiling = over
            .sovereign_default_ceiling
            .or(builtin.sovereign_default_ceiling)
            .ok_or_else(|| PlanError::InvalidFile {
                message: "sovereign_default_ceiling is missing".into(),
            })?;
        let default_ceiling = Resources::new(
            millicpus(default_ceiling.cpus, "sovereign_default_ceiling")?,
            default_ceiling.memory_mb,
            0,
        );
        let mut plans = BTreeMap::new();
        for tier in PlanTier::ALL {
            let base = builtin.plans.get(&tier).cloned().unwrap_or_default();
            let merged = match over.plans.get(&tier) {
                Some(over_plan) => base.merged_with(over_plan.clone()),
                None => base,
            };
            plans.insert(tier, PlanTable::plan_from_file(tier, merged, default_ceiling)?);
        }
        Ok(PlanTable { plans })
    }

    fn plan_from_file(
        tier: PlanTier,
        file: PlanFile,
        default_ceiling: Resources,
    ) -> Result<Plan, PlanError> {
        let invalid = |message: String| PlanError::InvalidFile {
            message: format!("plans.{tier}: {message}"),
        };
        let ceiling = match file.ceiling.as_deref() {
            Some("tenant") => Ceiling::Tenant { default: default_ceiling },
            Some("fixed") | None => {
                let cpus = file.cpus.ok_or_else(|| invalid("cpus is missing".into()))?;
                let memory_mb =
                    file.memory_mb.ok_or_else(|| invalid("memory_mb is missing".into()))?;
                if memory_mb < 16 {
                    return Err(invalid("memory_mb must be at least 16".into()));
                }
                Ceiling::Fixed(Resources::new(
                    millicpus(cpus, &format!("plans.{tier}"))?,
                    memory_mb,
                    0,
                ))
            }
            Some(other) => {
                return Err(invalid(format!("ceiling must be `fixed` or `tenant`, not `{other}`")));
            }
        };
        let backups = match file.backups.as_deref() {
            Some("none") | None => BackupPolicy::None,
            Some("daily") => BackupPolicy::Daily {
                retention_days: file
                    .backup_retention_days
                    .ok_or_else(|| invalid("backup_retention_days is missing".into()))?,
            },
            Some(other) => {
                return Err(invalid(format!("backups must be `none` or `daily`, not `{other}`")));
            }
        };
        let max_stacks = if file.unlimited_stacks == Some(true) { None } else { file.max_stacks };
        if let (Some(max_stacks), Some(limit)) = (max_stacks, file.max_stacks_limit)
            && limit < max_stacks
        {
            return Err(invalid("max_stacks_limit is below max_stacks".into()));
        }
        Ok(Plan {
            tier,
            max_stacks,
            max_stacks_limit: file.max_stacks_limit,
            ceiling,
            templates: file.templates.unwrap_or_default(),
            backups,
        })
    }

    pub fn plan(&self, tier: PlanTier) -> &Plan {
        &self.plans[&tier]
    }

    /// Plans cheapest first.
    pub fn plans(&self) -> impl Iterator<Item = &Plan> {
        self.plans.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_table_matches_design() {
        let table = PlanTable::builtin();
        let starter = table.plan(PlanTier::Starter);
        assert_eq!(starter.max_stacks, Some(1));
        assert_eq!(starter.max_stacks_limit, Some(2));
        assert_eq!(starter.ceiling_for(None), Resources::new(250, 256, 0));
        assert!(starter.allows_template("telegram-bot"));
        assert!(!starter.allows_template("openclaw-agent"));
        assert_eq!(starter.backups, BackupPolicy::None);
        assert_eq!(table.plan(PlanTier::Team).ceiling_for(None), Resources::new(500, 512, 0));
        let business = table.plan(PlanTier::Business);
        assert_eq!(business.ceiling_for(None), Resources::new(1000, 1024, 0));
        assert!(business.allows_template("openclaw-agent"));
        assert!(!business.allows_template("base-llm"));
        let sovereign = table.plan(PlanTier::Sovereign);
        assert_eq!(sovereign.max_stacks, None);
        assert!(sovereign.allows_template("base-llm"));
        assert_eq!(sovereign.ceiling_for(None), Resources::new(4000, 8192, 0));
        assert_eq!(
            sovereign.ceiling_for(Some(Resources::new(6000, 12288, 0))),
            Resources::new(6000, 12288, 0)
        );
        assert_eq!(sovereign.backups, BackupPolicy::Daily { retention_days: 30 });
    }

    #[test]
    fn an_override_file_changes_only_what_it_names() {
        let table = PlanTable::with_overrides(
            "[plans.team]\nmemory_mb = 768\ntemplates = [\"telegram-bot\", \"openclaw-agent\"]\n",
        )
        .unwrap();
        let team = table.plan(PlanTier::Team);
        assert_eq!(team.ceiling_for(None), Resources::new(500, 768, 0));
        assert!(team.allows_template("openclaw-agent"));
        assert_eq!(team.max_stacks, Some(10));
        assert_eq!(table.plan(PlanTier::Starter), PlanTable::builtin().plan(PlanTier::Starter));
    }

    #[test]
    fn a_bad_override_file_is_refused_with_the_field() {
        for (text, expected) in [
            ("[plans.team]\nmemroy_mb = 1\n", "unknown field `memroy_mb`"),
            ("[plans.gold]\ncpus = 1.0\n", "unknown variant `gold`"),
            ("[plans.team]\ncpus = -1.0\n", "cpus must be between"),
            ("[plans.team]\nbackups = \"hourly\"\n", "backups must be"),
            ("[plans.starter]\nmax_stacks = 5\n", "max_stacks_limit is below"),
        ] {
            let error = PlanTable::with_overrides(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn tiers_parse_and_refuse_unknown_names() {
        assert_eq!(PlanTier::parse("business").unwrap(), PlanTier::Business);
        assert!(PlanTier::parse("Business").unwrap_err().to_string().contains("hint: use one of"));
    }
}
