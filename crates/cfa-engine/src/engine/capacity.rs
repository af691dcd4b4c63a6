//! The capacity view: every usable Coolify server as admission sees it, with how many more
//! stacks of each template it takes at the template's smallest plan (images counted once per
//! server). One shape for `cfa capacity`, `--output json` and the coming JSON API.

use cfa_core::{Room, ServerCapacity, room_on};

use super::*;

/// One server in the capacity view.
#[derive(Debug, Clone)]
pub struct ServerView {
    pub capacity: ServerCapacity,
    /// Whether the operator described the machine (`[[servers]]`), or the seed host is assumed.
    pub configured: bool,
    /// Per template: the smallest plan that offers it, its limits there, and how many more fit.
    pub room: Vec<(String, Room)>,
}

impl ServerView {
    pub fn to_json(&self) -> Value {
        let server = &self.capacity;
        json!({
            "server_uuid": server.id,
            "name": server.name,
            "configured": self.configured,
            "total": resources_json(server.total),
            "system_reserve": resources_json(server.system_reserve),
            "overcommit": {
                "cpu": server.cpu_overcommit,
                "memory": server.memory_overcommit,
                "disk": server.disk_overcommit,
            },
            "allocatable": resources_json(server.allocatable()),
            "reserved": resources_json(server.reserved),
            "images": server.images,
            "free": resources_json(server.free()),
            "room": self.room.iter().map(|(template, room)| json!({
                "template": template,
                "plan": room.plan.as_str(),
                "limits": resources_json(room.limits),
                "stacks": room.stacks,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Resources as every JSON view shows them.
pub fn resources_json(resources: Resources) -> Value {
    json!({ "cpus": resources.cpus(), "memory_mb": resources.memory_mb, "disk_mb": resources.disk_mb })
}

impl Engine {
    /// The capacity view of every usable server.
    pub async fn capacity_view(&self) -> Result<Vec<ServerView>, EngineError> {
        let servers = self.capacity().await?;
        let plans = &self.inner.settings.plans;
        let requirements: Vec<_> = self
            .inner
            .catalogue
            .templates()
            .map(|template| cfa_templates::recorded_requirements(template, &BTreeMap::new()))
            .collect();
        Ok(servers
            .into_iter()
            .map(|capacity| {
                let room = requirements
                    .iter()
                    .filter_map(|needs| {
                        Some((needs.template.clone(), room_on(plans, needs, &capacity)?))
                    })
                    .collect();
                let configured = self.inner.settings.servers.contains_key(&capacity.id);
                ServerView { capacity, configured, room }
            })
            .collect())
    }
}
