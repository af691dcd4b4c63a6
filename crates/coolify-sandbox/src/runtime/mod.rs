//! What runs the services' containers for the job queue: the simulated runtime (containers
//! computed from timestamps and faults, [`simulated`]) or a real Docker engine ([`docker`]).
//! Jobs (`crate::jobs`) decide the order of effects as Coolify's actions do; a runtime only
//! carries them out.

pub mod docker;
pub(crate) mod simulated;

/// The runtime a sandbox runs its jobs against.
#[derive(Debug, Clone)]
pub(crate) enum Runtime {
    Simulated,
    Docker(docker::DockerRuntime),
}

impl Runtime {
    pub(crate) fn docker(&self) -> Option<&docker::DockerRuntime> {
        match self {
            Self::Simulated => None,
            Self::Docker(docker) => Some(docker),
        }
    }
}
