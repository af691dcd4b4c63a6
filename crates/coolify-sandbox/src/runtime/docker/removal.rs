//! Stopping and deleting a service, as `app/Actions/Service/StopService.php` (`handle`,
//! `stopContainersInParallel`), `app/Jobs/DeleteResourceJob.php` (`handle`),
//! `app/Actions/Service/DeleteService.php` (`cleanupRemote`), `app/Models/Service.php`
//! (`deleteConnectedNetworks`, `deleteConfigurations`) and `app/Actions/Server/CleanupDocker.php`
//! (`handle`) do it.

use std::collections::HashMap;
use std::time::Duration;

use bollard::query_parameters::{
    ListVolumesOptions, PruneContainersOptionsBuilder, PruneImagesOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder, StopContainerOptionsBuilder,
};

use super::{
    DeleteFlags, DockerError, DockerRuntime, STOP_TIMEOUT_MARGIN, ignore_not_found,
    ignore_not_modified_or_missing, validated_service_uuid,
};

impl DockerRuntime {
    /// StopService::handle: `docker stop --time=30` (10 when more than five containers) and
    /// `docker rm -f` of the service's containers, in parallel; volumes stay. Coolify names the
    /// containers `<sub>-<uuid>`; here they are found by their compose project label, so
    /// containers compose named otherwise are stopped too. With `docker_cleanup`, CleanupDocker
    /// as StopService dispatches it (no volume or network prune).
    pub async fn stop(&self, service_uuid: &str, docker_cleanup: bool) -> Result<(), DockerError> {
        let service_uuid = validated_service_uuid(service_uuid)?;
        let first_error = self.stop_and_remove_containers(service_uuid).await.err();
        if docker_cleanup {
            self.cleanup_docker().await;
        }
        first_error.map_or(Ok(()), Err)
    }

    /// DeleteResourceJob::handle for a service: StopService (with `deleteConnectedNetworks`
    /// and `dockerCleanup`), then DeleteService::cleanupRemote: `docker volume rm -f` of the
    /// service's volumes, the `<uuid>` network, the work directory, and `docker rm -f <uuid>`.
    /// Coolify logs remote failures and goes on (every command with `throwError: false`): every
    /// step here runs too, and the first failure is returned at the end for the caller to log.
    pub async fn delete(&self, service_uuid: &str, flags: DeleteFlags) -> Result<(), DockerError> {
        let service_uuid = validated_service_uuid(service_uuid)?;
        let target = format!("service {service_uuid}");
        let mut errors = Vec::new();
        errors.extend(self.stop_and_remove_containers(service_uuid).await.err());
        if flags.delete_connected_networks {
            errors.extend(self.remove_service_network(service_uuid).await.err());
        }
        if flags.docker_cleanup {
            self.cleanup_docker().await;
        }
        if flags.delete_volumes {
            // DeleteService::cleanupRemote removes the service's persistent storages by name;
            // those are the volumes compose created for the project, named `<uuid>_<name>`.
            match self.service_volume_names(service_uuid).await {
                Ok(volume_names) => {
                    for volume_name in volume_names {
                        let options = RemoveVolumeOptionsBuilder::default().force(true).build();
                        let removed = self
                            .engine(
                                "docker volume rm -f",
                                &target,
                                "a running container still uses the volume",
                                self.docker.remove_volume(&volume_name, Some(options)),
                            )
                            .await;
                        errors.extend(ignore_not_found(removed).err());
                    }
                }
                Err(error) => errors.push(error),
            }
        }
        if flags.delete_configurations {
            // Service::deleteConfigurations removes the work directory only when its path ends
            // with the uuid; the uuid was validated, so the path is the service's own.
            let work_dir = self.service_work_dir(service_uuid);
            match tokio::fs::remove_dir_all(&work_dir).await {
                Err(source) if source.kind() != std::io::ErrorKind::NotFound => {
                    errors.push(DockerError::Io {
                        operation: "remove directory",
                        path: work_dir,
                        target: target.clone(),
                        source,
                    });
                }
                _ => {}
            }
        }
        // DeleteService::cleanupRemote ends with `docker rm -f <uuid>`.
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        let removed = self
            .engine(
                "docker rm -f",
                &target,
                "see the engine's message",
                self.docker.remove_container(service_uuid, Some(options)),
            )
            .await;
        errors.extend(ignore_not_found(removed).err());
        errors.into_iter().next().map_or(Ok(()), Err)
    }

    async fn stop_and_remove_containers(&self, service_uuid: &str) -> Result<(), DockerError> {
        let target = format!("service {service_uuid}");
        let containers = self.project_containers(service_uuid).await?;
        let container_ids: Vec<String> =
            containers.iter().filter_map(|container| container.id.clone()).collect();
        // StopService::stopContainersInParallel: a shorter grace period for larger stacks.
        let grace_seconds: i32 = if container_ids.len() > 5 { 10 } else { 30 };
        let stop_timeout =
            Duration::from_secs(grace_seconds.unsigned_abs().into()) + STOP_TIMEOUT_MARGIN;
        let stops = container_ids.iter().map(|container_id| {
            let options = StopContainerOptionsBuilder::default().t(grace_seconds).build();
            self.engine_within(
                stop_timeout,
                "docker stop",
                &target,
                "see the engine's message",
                self.docker.stop_container(container_id, Some(options)),
            )
        });
        let mut errors: Vec<DockerError> = futures::future::join_all(stops)
            .await
            .into_iter()
            .filter_map(|stopped| ignore_not_modified_or_missing(stopped).err())
            .collect();
        let removals = container_ids.iter().map(|container_id| {
            let options = RemoveContainerOptionsBuilder::default().force(true).build();
            self.engine(
                "docker rm -f",
                &target,
                "see the engine's message",
                self.docker.remove_container(container_id, Some(options)),
            )
        });
        errors.extend(
            futures::future::join_all(removals)
                .await
                .into_iter()
                .filter_map(|removed| ignore_not_found(removed).err()),
        );
        errors.into_iter().next().map_or(Ok(()), Err)
    }

    /// Service::deleteConnectedNetworks: `docker network rm <uuid>` (the proxy's disconnect
    /// has nothing to do here: the front is not a container).
    async fn remove_service_network(&self, service_uuid: &str) -> Result<(), DockerError> {
        let removed = self
            .engine(
                "docker network rm",
                &format!("service {service_uuid}"),
                "a container outside the service still uses the network",
                self.docker.remove_network(service_uuid),
            )
            .await;
        ignore_not_found(removed)
    }

    /// Names of the service's volumes: those compose labelled with the project, and any named
    /// `<uuid>_…` as Coolify names a service's persistent storages.
    async fn service_volume_names(&self, service_uuid: &str) -> Result<Vec<String>, DockerError> {
        let listed = self
            .engine(
                "docker volume ls",
                &format!("service {service_uuid}"),
                "see the engine's message",
                self.docker.list_volumes(None::<ListVolumesOptions>),
            )
            .await?;
        let prefix = format!("{service_uuid}_");
        Ok(listed
            .volumes
            .unwrap_or_default()
            .into_iter()
            .filter(|volume| {
                volume.labels.get("com.docker.compose.project").map(String::as_str)
                    == Some(service_uuid)
                    || volume.name.starts_with(&prefix)
            })
            .map(|volume| volume.name)
            .collect())
    }

    /// CleanupDocker::handle as StopService and DeleteResourceJob dispatch it (unused volumes
    /// and networks are not pruned): the prune of stopped containers that Coolify manages but
    /// that belong to no proxy, database, application or service, and of dangling images.
    /// Coolify also removes every unused tagged image and the build cache; here images cannot be
    /// pulled again and the engine is shared with the project's image builds, so those stay.
    /// Failures are logged and ignored, as Coolify runs each command with `throwError: false`.
    async fn cleanup_docker(&self) {
        let container_filters = HashMap::from([
            ("label", vec!["coolify.managed=true".to_owned()]),
            (
                "label!",
                vec![
                    "coolify.proxy=true".to_owned(),
                    "coolify.type=database".to_owned(),
                    "coolify.type=application".to_owned(),
                    "coolify.type=service".to_owned(),
                ],
            ),
        ]);
        let options = PruneContainersOptionsBuilder::default().filters(&container_filters).build();
        let pruned = self
            .engine(
                "docker container prune",
                "docker cleanup",
                "",
                self.docker.prune_containers(Some(options)),
            )
            .await;
        if let Err(error) = pruned {
            tracing::warn!(%error, "docker cleanup: container prune failed");
        }
        let image_filters = HashMap::from([("dangling", vec!["true".to_owned()])]);
        let options = PruneImagesOptionsBuilder::default().filters(&image_filters).build();
        let pruned = self
            .engine(
                "docker image prune",
                "docker cleanup",
                "",
                self.docker.prune_images(Some(options)),
            )
            .await;
        if let Err(error) = pruned {
            tracing::warn!(%error, "docker cleanup: image prune failed");
        }
    }
}
