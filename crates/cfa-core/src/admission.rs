//! Admission and placement: may this tenant have this stack, with which limits, on which server.
//!
//! Checks run cheapest and most actionable first: template allowed by the plan, plan ceiling
//! against the template's minimum, the tenant's count quota, then host capacity. Every refusal
//! is an [`AdmissionError`] whose message names the limit and what would satisfy it.
//!
//! Limits a stack gets: per dimension, the plan's ceiling capped by the template's profile
//! (what the program can use well), never below the template's minimum.
//!
//! Disk: a stack reserves its volumes, and its images once per server. An image already pulled
//! for another stack on that server costs nothing more (Docker shares it), so the same stack can
//! need more disk on one server than on another.

use std::collections::BTreeSet;
use std::fmt;

use crate::plan::{Ceiling, Plan, PlanTable, PlanTier};
use crate::remedy::Remedy;
use crate::resources::{Resources, format_cpus, format_megabytes};

/// What a rendered stack needs: CPU and memory as a range, disk as a fixed reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackRequirements {
    pub template: String,
    /// Below this the stack does not run (CPU and memory; disk ignored).
    pub minimum: Resources,
    /// Above this the stack gains nothing (CPU and memory; disk ignored).
    pub profile: Resources,
    /// Sum of the stack's volume sizes, reserved on the host's disk.
    pub disk_mb: u32,
    /// The images the stack runs, each reserved once per server.
    pub images: Vec<ImageFootprint>,
}

/// A pinned image and the disk it takes once pulled and unpacked.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ImageFootprint {
    /// `name:tag`, as in the compose file.
    pub image: String,
    pub disk_mb: u32,
}

/// A tenant as admission sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantStanding {
    pub slug: String,
    pub plan_tier: PlanTier,
    /// The tenant's count quota (`tenants.max_stacks`); `None` is unlimited.
    pub max_stacks: Option<u32>,
    /// Stacks the tenant already has, in any status.
    pub existing_stacks: u32,
    /// Sovereign tenants' custom per-stack ceiling (`resource_limits`).
    pub resource_limits: Option<Resources>,
}

/// A server stacks can be placed on, with what is already reserved there.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerCapacity {
    /// Coolify's server uuid.
    pub id: String,
    pub name: String,
    /// Cores, RAM and free disk of the machine.
    pub total: Resources,
    /// Kept back for the host itself (Coolify, Traefik, the Router).
    pub system_reserve: Resources,
    /// How far CPU may be promised beyond the cores (containers rarely all peak at once).
    pub cpu_overcommit: f64,
    /// 1.0 by default: RAM promised twice is an OOM kill waiting to happen.
    pub memory_overcommit: f64,
    /// 1.0 by default: a full disk stops every stack on the host.
    pub disk_overcommit: f64,
    /// Limits of the stacks already placed here, their images' disk included.
    pub reserved: Resources,
    /// The images of the stacks already placed here (their disk is part of `reserved`).
    pub images: BTreeSet<String>,
}

impl ServerCapacity {
    /// The seed's host: 12 cores, 31 GB RAM, 24 GB free disk, with default ratios.
    pub fn seed_host(id: &str) -> ServerCapacity {
        ServerCapacity {
            id: id.to_owned(),
            name: "seed host".to_owned(),
            total: Resources::new(12_000, 31 * 1024, 24 * 1024),
            system_reserve: DEFAULT_SYSTEM_RESERVE,
            cpu_overcommit: DEFAULT_CPU_OVERCOMMIT,
            memory_overcommit: 1.0,
            disk_overcommit: 1.0,
            reserved: Resources::ZERO,
            images: BTreeSet::new(),
        }
    }

    /// The disk `images` would add here: those not pulled yet, each once.
    pub fn image_disk_for(&self, images: &[ImageFootprint]) -> u32 {
        let mut counted = BTreeSet::new();
        images
            .iter()
            .filter(|footprint| !self.images.contains(&footprint.image))
            .filter(|footprint| counted.insert(footprint.image.as_str()))
            .map(|footprint| footprint.disk_mb)
            .sum()
    }

    /// Reserves a placed stack here: its limits and the images it adds.
    pub fn reserve(&mut self, limits: Resources, images: &[ImageFootprint]) {
        let image_disk_mb = self.image_disk_for(images);
        self.reserved = self.reserved.saturating_add(limits).saturating_add(Resources::new(
            0,
            0,
            image_disk_mb,
        ));
        self.images.extend(images.iter().map(|footprint| footprint.image.clone()));
    }

    /// What may be promised in all, after the reserve and overcommit.
    pub fn allocatable(&self) -> Resources {
        let usable = self.total.saturating_sub(self.system_reserve);
        let scale = |value: u32, ratio: f64| (f64::from(value) * ratio.max(0.0)).floor() as u32;
        Resources::new(
            scale(usable.millicpus, self.cpu_overcommit),
            scale(usable.memory_mb, self.memory_overcommit),
            scale(usable.disk_mb, self.disk_overcommit),
        )
    }

    /// What is still free to promise.
    pub fn free(&self) -> Resources {
        self.allocatable().saturating_sub(self.reserved)
    }
}

/// Default host reserve: one core, 2 GB RAM and 2 GB disk for Docker, Coolify and its proxy.
pub const DEFAULT_SYSTEM_RESERVE: Resources = Resources::new(1000, 2048, 2048);
/// Default CPU overcommit: agent stacks idle most of the time.
pub const DEFAULT_CPU_OVERCOMMIT: f64 = 4.0;

/// The question admission answers.
#[derive(Debug, Clone, Copy)]
pub struct AdmissionRequest<'a> {
    pub plans: &'a PlanTable,
    pub tenant: &'a TenantStanding,
    pub requirements: &'a StackRequirements,
    pub servers: &'a [ServerCapacity],
    /// An operator's `--server`: place there or refuse.
    pub preferred_server: Option<&'a str>,
}

/// A yes: the limits the stack gets and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    pub plan: PlanTier,
    /// CPU and memory limits of the whole stack, plus its disk reservation.
    pub limits: Resources,
    pub server_id: String,
    /// Disk for images the chosen server does not have yet (on top of `limits`).
    pub image_disk_mb: u32,
    /// What the chosen server has left after this stack.
    pub server_free_after: Resources,
}

/// Why a server could not take the stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerShortfall {
    pub server: String,
    pub free: Resources,
    pub short_of: &'static str,
    /// Disk the stack's images would need there (0 when they are pulled already).
    pub image_disk_mb: u32,
}

impl fmt::Display for ServerShortfall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} has {} free (short of {}", self.server, self.free, self.short_of)?;
        if self.image_disk_mb > 0 {
            write!(f, "; its images need {} of disk more", format_megabytes(self.image_disk_mb))?;
        }
        write!(f, ")")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    #[error(
        "template `{template}` is not part of the {plan} plan\nhint: {}",
        needed_plan_hint(*needed, "allows it")
    )]
    TemplateNotInPlan { template: String, plan: PlanTier, needed: Option<PlanTier> },
    #[error(
        "template `{template}` needs at least {minimum}, but the {plan} plan allows {ceiling} per stack\nhint: {}",
        needed_plan_hint(*needed, "fits it")
    )]
    BelowTemplateMinimum {
        template: String,
        plan: PlanTier,
        minimum: Resources,
        ceiling: Resources,
        needed: Option<PlanTier>,
    },
    #[error(
        "template `{template}` needs at least {minimum}, but the tenant's custom ceiling is {ceiling} per stack\nhint: raise it: {}",
        raised_ceiling(minimum, ceiling)
    )]
    BelowCustomCeiling { template: String, minimum: Resources, ceiling: Resources },
    #[error(
        "tenant `{tenant}` has reached its quota of {max_stacks} stack(s) ({existing} exist)\nhint: delete a stack, or raise the tenant's max_stacks{}",
        plan_limit_hint(*max_stacks_limit)
    )]
    QuotaReached { tenant: String, max_stacks: u32, existing: u32, max_stacks_limit: Option<u32> },
    #[error(
        "no server has room for a stack of {needed}: {}\nhint: free capacity (suspending does not free it; deleting does), add a server, or raise its overcommit in cfa.toml",
        shortfalls_text(shortfalls)
    )]
    NoCapacity { needed: Resources, shortfalls: Vec<ServerShortfall> },
    #[error("server `{server}` is not configured\nhint: {}", Remedy::ListServers)]
    UnknownServer { server: String },
}

impl AdmissionError {
    /// What to do about it, as data each front end words ([`Remedy`]); `None` where the hint
    /// says it all (free capacity, raise a quota).
    pub fn remedy(&self) -> Option<Remedy> {
        match self {
            AdmissionError::TemplateNotInPlan { needed, .. }
            | AdmissionError::BelowTemplateMinimum { needed, .. } => {
                needed.map(|tier| Remedy::SetPlan { tier, cpus: None, memory_mb: None })
            }
            AdmissionError::BelowCustomCeiling { minimum, ceiling, .. } => {
                Some(raised_ceiling(minimum, ceiling))
            }
            AdmissionError::UnknownServer { .. } => Some(Remedy::ListServers),
            AdmissionError::QuotaReached { .. } | AdmissionError::NoCapacity { .. } => None,
        }
    }
}

/// The custom plan with a per-stack ceiling that fits the template's minimum.
fn raised_ceiling(minimum: &Resources, ceiling: &Resources) -> Remedy {
    Remedy::SetPlan {
        tier: PlanTier::Sovereign,
        cpus: Some(format_cpus(minimum.millicpus.max(ceiling.millicpus))),
        memory_mb: Some(minimum.memory_mb.max(ceiling.memory_mb)),
    }
}

fn needed_plan_hint(needed: Option<PlanTier>, verb: &str) -> String {
    match needed {
        Some(tier) => format!("the {tier} plan {verb}"),
        None => "no plan allows it: check the plans file and the template's minimum".to_owned(),
    }
}

fn plan_limit_hint(limit: Option<u32>) -> String {
    match limit {
        Some(limit) => format!(" (this plan allows up to {limit}), or move to a larger plan"),
        None => String::new(),
    }
}

fn shortfalls_text(shortfalls: &[ServerShortfall]) -> String {
    if shortfalls.is_empty() {
        return "no servers are configured".to_owned();
    }
    shortfalls.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// The CPU and memory limits a stack gets under `plan`: the plan's ceiling, capped by the
/// template's profile, refused when below the template's minimum. Disk is carried through.
pub fn stack_limits(
    plans: &PlanTable,
    plan: &Plan,
    tenant_resource_limits: Option<Resources>,
    requirements: &StackRequirements,
) -> Result<Resources, AdmissionError> {
    if !plan.allows_template(&requirements.template) {
        return Err(AdmissionError::TemplateNotInPlan {
            template: requirements.template.clone(),
            plan: plan.tier,
            needed: cheapest_plan_for(plans, tenant_resource_limits, requirements),
        });
    }
    let ceiling = plan.ceiling_for(tenant_resource_limits);
    if !requirements.minimum.compute_fits_within(&ceiling) {
        if matches!(plan.ceiling, Ceiling::Tenant { .. }) && tenant_resource_limits.is_some() {
            return Err(AdmissionError::BelowCustomCeiling {
                template: requirements.template.clone(),
                minimum: Resources { disk_mb: 0, ..requirements.minimum },
                ceiling,
            });
        }
        return Err(AdmissionError::BelowTemplateMinimum {
            template: requirements.template.clone(),
            plan: plan.tier,
            minimum: Resources { disk_mb: 0, ..requirements.minimum },
            ceiling,
            needed: cheapest_plan_for(plans, tenant_resource_limits, requirements),
        });
    }
    let capped = ceiling.min(requirements.profile);
    Ok(Resources::new(
        capped.millicpus.max(requirements.minimum.millicpus),
        capped.memory_mb.max(requirements.minimum.memory_mb),
        requirements.disk_mb,
    ))
}

/// The cheapest plan that allows the template and whose ceiling fits its minimum.
fn cheapest_plan_for(
    plans: &PlanTable,
    tenant_resource_limits: Option<Resources>,
    requirements: &StackRequirements,
) -> Option<PlanTier> {
    plans
        .plans()
        .find(|plan| {
            plan.allows_template(&requirements.template)
                && requirements
                    .minimum
                    .compute_fits_within(&plan.ceiling_for(tenant_resource_limits))
        })
        .map(|plan| plan.tier)
}

/// Admission: plan, quota, then placement.
pub fn admit(request: AdmissionRequest<'_>) -> Result<Admitted, AdmissionError> {
    let tenant = request.tenant;
    let plan = request.plans.plan(tenant.plan_tier);
    let limits = stack_limits(request.plans, plan, tenant.resource_limits, request.requirements)?;
    if let Some(max_stacks) = tenant.max_stacks
        && tenant.existing_stacks >= max_stacks
    {
        return Err(AdmissionError::QuotaReached {
            tenant: tenant.slug.clone(),
            max_stacks,
            existing: tenant.existing_stacks,
            max_stacks_limit: plan.max_stacks_limit,
        });
    }
    let images = &request.requirements.images;
    let server = place(request.servers, limits, images, request.preferred_server)?;
    let image_disk_mb = server.image_disk_for(images);
    Ok(Admitted {
        plan: plan.tier,
        limits,
        server_id: server.id.clone(),
        image_disk_mb,
        server_free_after: server.free().saturating_sub(limits).saturating_sub(Resources::new(
            0,
            0,
            image_disk_mb,
        )),
    })
}

/// How many more stacks of one template a server has room for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Room {
    /// The cheapest plan that allows the template: its limits are the smallest a stack gets.
    pub plan: PlanTier,
    pub limits: Resources,
    pub stacks: u32,
}

/// Beyond this, "room for" is reported as this many (a stack with tiny limits on a big host).
const ROOM_COUNT_CAP: u32 = 100_000;

/// How many more stacks of `requirements` fit `server`, each with the limits of the cheapest
/// plan that allows the template (no custom ceiling), its images counted once; `None` when no
/// plan allows it.
pub fn room_on(
    plans: &PlanTable,
    requirements: &StackRequirements,
    server: &ServerCapacity,
) -> Option<Room> {
    let plan = cheapest_plan_for(plans, None, requirements)?;
    let limits = stack_limits(plans, plans.plan(plan), None, requirements).ok()?;
    let mut server = server.clone();
    let mut stacks = 0;
    while stacks < ROOM_COUNT_CAP && shortfall(&server, limits, &requirements.images).is_none() {
        server.reserve(limits, &requirements.images);
        stacks += 1;
    }
    Some(Room { plan, limits, stacks })
}

fn shortfall(
    server: &ServerCapacity,
    limits: Resources,
    images: &[ImageFootprint],
) -> Option<ServerShortfall> {
    let image_disk_mb = server.image_disk_for(images);
    let needed = limits.saturating_add(Resources::new(0, 0, image_disk_mb));
    let free = server.free();
    let short_of = if needed.memory_mb > free.memory_mb {
        "memory"
    } else if needed.disk_mb > free.disk_mb {
        "disk"
    } else if needed.millicpus > free.millicpus {
        "CPU"
    } else {
        return None;
    };
    Some(ServerShortfall { server: server.name.clone(), free, short_of, image_disk_mb })
}

/// Picks a server with room for `needed` plus the `images` it lacks: the one with the most
/// memory left afterwards (spreading stacks keeps a noisy tenant's blast radius small); ties
/// go to the lowest id, so the choice is deterministic.
pub fn place<'a>(
    servers: &'a [ServerCapacity],
    needed: Resources,
    images: &[ImageFootprint],
    preferred_server: Option<&str>,
) -> Result<&'a ServerCapacity, AdmissionError> {
    if let Some(preferred) = preferred_server {
        let server = servers
            .iter()
            .find(|server| server.id == preferred || server.name == preferred)
            .ok_or_else(|| AdmissionError::UnknownServer { server: preferred.to_owned() })?;
        return match shortfall(server, needed, images) {
            None => Ok(server),
            Some(short) => Err(AdmissionError::NoCapacity { needed, shortfalls: vec![short] }),
        };
    }
    let mut best: Option<&ServerCapacity> = None;
    let mut shortfalls = Vec::new();
    for server in servers {
        match shortfall(server, needed, images) {
            Some(short) => shortfalls.push(short),
            None => {
                let better = match best {
                    None => true,
                    Some(current) => {
                        let (left, current_left) =
                            (server.free().memory_mb, current.free().memory_mb);
                        left > current_left || (left == current_left && server.id < current.id)
                    }
                };
                if better {
                    best = Some(server);
                }
            }
        }
    }
    best.ok_or(AdmissionError::NoCapacity { needed, shortfalls })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requirements(
        template: &str,
        minimum: (u32, u32),
        profile: (u32, u32),
        disk_mb: u32,
        images: &[(&str, u32)],
    ) -> StackRequirements {
        StackRequirements {
            template: template.to_owned(),
            minimum: Resources::new(minimum.0, minimum.1, 0),
            profile: Resources::new(profile.0, profile.1, 0),
            disk_mb,
            images: images
                .iter()
                .map(|(image, disk_mb)| ImageFootprint {
                    image: (*image).to_owned(),
                    disk_mb: *disk_mb,
                })
                .collect(),
        }
    }

    fn tenant(
        plan_tier: PlanTier,
        max_stacks: Option<u32>,
        existing_stacks: u32,
    ) -> TenantStanding {
        TenantStanding {
            slug: "acme".to_owned(),
            plan_tier,
            max_stacks,
            existing_stacks,
            resource_limits: None,
        }
    }

    /// The three templates' requirements as their manifests declare them (checked against the
    /// real manifests in cfa-templates' tests).
    fn bot() -> StackRequirements {
        requirements("telegram-bot", (100, 64), (500, 256), 0, &[("bot:0.1.0", 16)])
    }
    fn openclaw() -> StackRequirements {
        requirements(
            "openclaw-agent",
            (1000, 1024),
            (2000, 2048),
            2048,
            &[("openclaw:2026.9.6", 1536)],
        )
    }
    fn base_llm() -> StackRequirements {
        requirements(
            "base-llm",
            (2000, 3072),
            (3000, 5120),
            5120,
            &[("open-webui:v0.12.4", 6144), ("litellm:v1.106.2", 2048)],
        )
    }

    /// Fills the seed host with one kind of stack until admission refuses, and returns how many
    /// fit and the refusal.
    fn fill_seed_host(
        plan_tier: PlanTier,
        requirements: &StackRequirements,
    ) -> (u32, AdmissionError) {
        let plans = PlanTable::builtin();
        let mut host = ServerCapacity::seed_host("srv1");
        let mut count = 0;
        loop {
            let standing = tenant(plan_tier, None, 0);
            let request = AdmissionRequest {
                plans: &plans,
                tenant: &standing,
                requirements,
                servers: std::slice::from_ref(&host),
                preferred_server: None,
            };
            match admit(request) {
                Ok(admitted) => {
                    let free_before = host.free();
                    host.reserve(admitted.limits, &requirements.images);
                    assert_eq!(host.free(), admitted.server_free_after);
                    assert_eq!(
                        free_before.disk_mb - host.free().disk_mb,
                        admitted.limits.disk_mb + admitted.image_disk_mb
                    );
                    count += 1;
                }
                Err(error) => return (count, error),
            }
        }
    }

    #[test]
    fn seed_host_capacity_per_template() {
        // 12 cores x4 overcommit less 1 reserved core = 44 CPUs; 29 GB RAM; 22 GB disk.
        let (bots, refusal) = fill_seed_host(PlanTier::Starter, &bot());
        assert_eq!(bots, 116, "starter bots at 0.25 CPU / 256 MB: RAM-bound (29696 / 256)");
        assert!(refusal.to_string().contains("short of memory"), "{refusal}");

        let (agents, refusal) = fill_seed_host(PlanTier::Business, &openclaw());
        assert_eq!(
            agents, 10,
            "business OpenClaw at 1 CPU / 1 GB / 2 GB volume, its 1.5 GB image once: disk-bound ((22 GB - 1.5 GB) / 2 GB)"
        );
        assert!(refusal.to_string().contains("short of disk"), "{refusal}");

        let (llms, refusal) = fill_seed_host(PlanTier::Sovereign, &base_llm());
        assert_eq!(
            llms, 2,
            "sovereign base-llm at 3 CPU / 5 GB / 5 GB volume, 8 GB of images once: disk-bound ((22 GB - 8 GB) / 5 GB)"
        );
        assert!(refusal.to_string().contains("short of disk"), "{refusal}");
    }

    #[test]
    fn room_on_a_server_is_what_admission_would_admit() {
        let plans = PlanTable::builtin();
        let host = ServerCapacity::seed_host("srv1");
        for (tier, requirements) in [
            (PlanTier::Starter, bot()),
            (PlanTier::Business, openclaw()),
            (PlanTier::Sovereign, base_llm()),
        ] {
            let room = room_on(&plans, &requirements, &host).unwrap();
            assert_eq!(room.plan, tier, "{}", requirements.template);
            assert_eq!(
                room.stacks,
                fill_seed_host(tier, &requirements).0,
                "{}",
                requirements.template
            );
        }
        // With one OpenClaw agent placed, its image is there: room for the rest of the volumes.
        let mut host = host;
        host.reserve(Resources::new(1000, 1024, 2048), &openclaw().images);
        assert_eq!(room_on(&plans, &openclaw(), &host).unwrap().stacks, 9);
        let nowhere = requirements("nowhere", (64_000, 1_000_000), (64_000, 1_000_000), 0, &[]);
        assert_eq!(room_on(&plans, &nowhere, &host), None, "no plan allows it");
    }

    #[test]
    fn limits_are_the_ceiling_capped_by_the_profile() {
        let plans = PlanTable::builtin();
        let check = |tier: PlanTier, requirements: &StackRequirements| {
            stack_limits(&plans, plans.plan(tier), None, requirements)
                .map(|limits| limits.to_string())
        };
        assert_eq!(check(PlanTier::Starter, &bot()).unwrap(), "0.25 CPU, 256 MB");
        assert_eq!(check(PlanTier::Team, &bot()).unwrap(), "0.5 CPU, 256 MB");
        assert_eq!(check(PlanTier::Business, &openclaw()).unwrap(), "1 CPU, 1 GB, 2 GB disk");
        assert_eq!(check(PlanTier::Sovereign, &openclaw()).unwrap(), "2 CPU, 2 GB, 2 GB disk");
        assert_eq!(check(PlanTier::Sovereign, &base_llm()).unwrap(), "3 CPU, 5 GB, 5 GB disk");
    }

    #[test]
    fn refusals_name_the_plan_that_would_do() {
        let plans = PlanTable::builtin();
        let error =
            stack_limits(&plans, plans.plan(PlanTier::Team), None, &openclaw()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "template `openclaw-agent` is not part of the team plan\nhint: the business plan allows it"
        );
        let error =
            stack_limits(&plans, plans.plan(PlanTier::Starter), None, &base_llm()).unwrap_err();
        assert!(error.to_string().contains("the sovereign plan allows it"), "{error}");

        // A plan that allows the template but whose ceiling is too small.
        let tight = PlanTable::with_overrides("[plans.business]\nmemory_mb = 512\n").unwrap();
        let error =
            stack_limits(&tight, tight.plan(PlanTier::Business), None, &openclaw()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "template `openclaw-agent` needs at least 1 CPU, 1 GB, but the business plan allows 1 CPU, 512 MB per stack\nhint: the sovereign plan fits it"
        );
        // A sovereign tenant whose custom limits are too small for base-llm.
        let error = stack_limits(
            &plans,
            plans.plan(PlanTier::Sovereign),
            Some(Resources::new(1000, 1024, 0)),
            &base_llm(),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "template `base-llm` needs at least 2 CPU, 3 GB, but the tenant's custom ceiling is 1 CPU, 1 GB per stack\nhint: raise it: move the tenant to the sovereign plan with a ceiling of 2 CPU and 3072 MB per stack"
        );
    }

    #[test]
    fn quota_counts_existing_stacks() {
        let plans = PlanTable::builtin();
        let servers = [ServerCapacity::seed_host("srv1")];
        let check = |standing: &TenantStanding| {
            admit(AdmissionRequest {
                plans: &plans,
                tenant: standing,
                requirements: &bot(),
                servers: &servers,
                preferred_server: None,
            })
        };
        assert!(check(&tenant(PlanTier::Starter, Some(1), 0)).is_ok());
        let error = check(&tenant(PlanTier::Starter, Some(1), 1)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "tenant `acme` has reached its quota of 1 stack(s) (1 exist)\nhint: delete a stack, or raise the tenant's max_stacks (this plan allows up to 2), or move to a larger plan"
        );
        assert!(check(&tenant(PlanTier::Starter, Some(2), 1)).is_ok());
        assert!(check(&tenant(PlanTier::Sovereign, None, 10_000)).is_ok());
    }

    #[test]
    fn placement_spreads_and_honours_the_operator() {
        let mut small = ServerCapacity::seed_host("a-small");
        small.name = "small".to_owned();
        small.total = Resources::new(4000, 8192, 10_240);
        let mut big = ServerCapacity::seed_host("b-big");
        big.name = "big".to_owned();
        let servers = [small.clone(), big.clone()];
        let needed = Resources::new(1000, 1024, 2048);
        assert_eq!(place(&servers, needed, &[], None).unwrap().id, "b-big");
        assert_eq!(place(&servers, needed, &[], Some("small")).unwrap().id, "a-small");
        assert!(matches!(
            place(&servers, needed, &[], Some("nope")),
            Err(AdmissionError::UnknownServer { .. })
        ));
        // Fill the big one: the small one takes over.
        let mut full_big = big;
        full_big.reserved = full_big.allocatable();
        let servers = [small, full_big];
        assert_eq!(place(&servers, needed, &[], None).unwrap().id, "a-small");
        let error = place(&servers, Resources::new(1000, 7000, 0), &[], None).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("no server has room for a stack of 1 CPU, 7000 MB: small has"),
            "{error}"
        );
    }

    #[test]
    fn an_image_is_reserved_once_per_server() {
        let stack = openclaw();
        let mut host = ServerCapacity::seed_host("srv1");
        assert_eq!(host.image_disk_for(&stack.images), 1536);
        host.reserve(Resources::new(1000, 1024, 2048), &stack.images);
        assert_eq!(host.reserved.disk_mb, 2048 + 1536);
        assert_eq!(host.image_disk_for(&stack.images), 0, "pulled already");
        host.reserve(Resources::new(1000, 1024, 2048), &stack.images);
        assert_eq!(host.reserved.disk_mb, 2 * 2048 + 1536);
        // The same image twice in one stack counts once.
        let twice = [stack.images[0].clone(), stack.images[0].clone()];
        assert_eq!(ServerCapacity::seed_host("srv2").image_disk_for(&twice), 1536);
    }

    #[test]
    fn placement_prefers_no_server_for_its_images_but_counts_them() {
        // Only the server that already has the images has room for the volume alone.
        let base = base_llm();
        let mut with_images = ServerCapacity::seed_host("a-with-images");
        with_images.name = "with-images".to_owned();
        with_images.total = Resources::new(12_000, 31 * 1024, 2048 + 8192 + 5120 + 5120);
        with_images.reserve(Resources::new(3000, 5120, 5120), &base.images);
        let mut empty = ServerCapacity::seed_host("b-empty");
        empty.name = "empty".to_owned();
        empty.total = Resources::new(12_000, 31 * 1024, 2048 + 10_240);
        let servers = [with_images, empty];
        let needed = Resources::new(3000, 5120, 5120);
        assert_eq!(place(&servers, needed, &base.images, None).unwrap().id, "a-with-images");
        let error = place(&servers, needed, &base.images, Some("empty")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "no server has room for a stack of 3 CPU, 5 GB, 5 GB disk: empty has 44 CPU, 29 GB, 10 GB disk free (short of disk; its images need 8 GB of disk more)\nhint: free capacity (suspending does not free it; deleting does), add a server, or raise its overcommit in cfa.toml"
        );
    }

    #[test]
    fn cpu_overcommit_lets_cpu_but_not_memory_stretch() {
        let mut host = ServerCapacity::seed_host("srv1");
        host.total = Resources::new(2000, 100_000, 100_000);
        host.system_reserve = Resources::ZERO;
        // 2 cores x4 = 8 CPUs promised.
        assert_eq!(host.allocatable().millicpus, 8000);
        host.cpu_overcommit = 1.0;
        assert_eq!(host.allocatable().millicpus, 2000);
        assert_eq!(host.allocatable().memory_mb, 100_000);
    }
}
