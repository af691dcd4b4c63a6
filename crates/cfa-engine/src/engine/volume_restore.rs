//! A volume replaced by an archive, through the server's Docker engine: Coolify has no
//! volume-restore API, so this is the one path that works on a real server as in tests.
//!
//! The volume is removed and created again under its name with its driver, options and
//! labels (Compose's labels included, so Coolify's next `docker compose up` adopts it), then a
//! helper container that mounts it is created (never started) from an image the server holds,
//! and Docker's own archive endpoint (`PUT /containers/{id}/archive`, gzip accepted, owners
//! kept with `copyUIDGID`) unpacks the archive into it. Nothing runs inside the helper, so the
//! image needs no shell or tar, and the archive is never unpacked on this machine. A container
//! that still uses the volume stops the restore before anything is removed.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, VolumeCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use serde::Serialize;

/// How long one Docker request may take: an archive of several GB is one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3600);
/// dockerd 20.10's API (Debian 12's engine), as the host agent pins it: every call here exists
/// there, and a newer engine still answers it.
const API_VERSION: bollard::ClientVersion =
    bollard::ClientVersion { major_version: 1, minor_version: 41 };
/// Where the helper container mounts the volume.
const MOUNT: &str = "/cfa-restore";

/// One volume restored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoredVolume {
    pub volume: String,
    pub archive_key: String,
    pub archive_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub(super) enum VolumeRestoreError {
    #[error("cannot reach the server's Docker engine at `{docker_host}`: {source}")]
    Unreachable {
        docker_host: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("the volume `{volume}` does not exist on the server")]
    NoVolume { volume: String },
    #[error(
        "the volume `{volume}` is still used by container(s) {containers}: the stack did not stop"
    )]
    InUse { volume: String, containers: String },
    #[error("Docker's {operation} for volume `{volume}` failed{}: {source}", if *.partly { " (the volume is partly restored)" } else { "" })]
    Docker {
        operation: &'static str,
        volume: String,
        partly: bool,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("cannot read the downloaded archive {}: {source}", path.display())]
    Archive {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Replaces the content of `volume` with the gzipped tar at `archive` (as Coolify's
/// `VolumeBackupJob` writes it: entries `./…`).
pub(super) async fn restore_volume(
    docker_host: &str,
    volume: &str,
    helper_image: &str,
    archive_key: &str,
    archive: &Path,
) -> Result<RestoredVolume, VolumeRestoreError> {
    let docker = connect(docker_host)?;
    let failed = |operation: &'static str, partly: bool| {
        move |source: bollard::errors::Error| VolumeRestoreError::Docker {
            operation,
            volume: volume.to_owned(),
            partly,
            source,
        }
    };
    let inspected = match docker.inspect_volume(volume).await {
        Ok(inspected) => inspected,
        Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {
            return Err(VolumeRestoreError::NoVolume { volume: volume.to_owned() });
        }
        Err(error) => return Err(failed("volume inspect", false)(error)),
    };
    let users = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&HashMap::from([("volume", vec![volume])]))
                .build(),
        ))
        .await
        .map_err(failed("container list", false))?;
    if !users.is_empty() {
        let containers = users
            .iter()
            .flat_map(|container| container.names.clone().unwrap_or_default())
            .map(|name| format!("`{}`", name.trim_start_matches('/')))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(VolumeRestoreError::InUse { volume: volume.to_owned(), containers });
    }
    let archive_bytes = tokio::fs::metadata(archive)
        .await
        .map_err(|source| VolumeRestoreError::Archive { path: archive.to_path_buf(), source })?
        .len();
    docker
        .remove_volume(volume, None::<bollard::query_parameters::RemoveVolumeOptions>)
        .await
        .map_err(failed("volume remove", false))?;
    docker
        .create_volume(VolumeCreateRequest {
            name: Some(volume.to_owned()),
            driver: Some(inspected.driver.clone()),
            driver_opts: Some(inspected.options.clone()),
            labels: Some(inspected.labels.clone()),
            ..VolumeCreateRequest::default()
        })
        .await
        .map_err(failed("volume create", true))?;
    let helper_name = format!("cfa-restore-{volume}-{}", std::process::id());
    let helper = docker
        .create_container(
            Some(CreateContainerOptionsBuilder::new().name(&helper_name).build()),
            ContainerCreateBody {
                image: Some(helper_image.to_owned()),
                network_disabled: Some(true),
                labels: Some(HashMap::from([(
                    "cloudfreedom.restore-helper".to_owned(),
                    volume.to_owned(),
                )])),
                host_config: Some(HostConfig {
                    binds: Some(vec![format!("{volume}:{MOUNT}")]),
                    network_mode: Some("none".to_owned()),
                    ..HostConfig::default()
                }),
                ..ContainerCreateBody::default()
            },
        )
        .await
        .map_err(failed("helper container create", true))?;
    let file = tokio::fs::File::open(archive)
        .await
        .map_err(|source| VolumeRestoreError::Archive { path: archive.to_path_buf(), source });
    let uploaded = match file {
        Ok(file) => {
            // A read error fails the upload (the body stream carries it).
            let chunks = bollard::body_try_stream(tokio_util::io::ReaderStream::new(file));
            docker
                .upload_to_container(
                    &helper.id,
                    Some(
                        UploadToContainerOptionsBuilder::new().path(MOUNT).copy_uidgid("1").build(),
                    ),
                    chunks,
                )
                .await
                .map_err(failed("archive upload", true))
        }
        Err(error) => Err(error),
    };
    let removed = docker
        .remove_container(
            &helper.id,
            Some(RemoveContainerOptionsBuilder::new().force(true).build()),
        )
        .await;
    uploaded?;
    if let Err(error) = removed {
        tracing::warn!(volume, helper = %helper_name, %error, "the restore's helper container could not be removed; remove it by hand");
    }
    Ok(RestoredVolume {
        volume: volume.to_owned(),
        archive_key: archive_key.to_owned(),
        archive_bytes,
    })
}

fn connect(docker_host: &str) -> Result<Docker, VolumeRestoreError> {
    let seconds = REQUEST_TIMEOUT.as_secs();
    let connected = if docker_host.starts_with("tcp://") || docker_host.starts_with("http://") {
        Docker::connect_with_http(docker_host, seconds, &API_VERSION)
    } else {
        Docker::connect_with_unix(docker_host, seconds, &API_VERSION)
    };
    connected.map_err(|source| VolumeRestoreError::Unreachable {
        docker_host: docker_host.to_owned(),
        source,
    })
}
