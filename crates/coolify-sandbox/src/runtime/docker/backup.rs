//! Volume backups, as `app/Jobs/VolumeBackupJob.php` (`handle`) makes them.
//!
//! Coolify runs `docker volume inspect <volume>` (the source must exist), `mkdir -p` of the
//! backup directory, then `tar -cf - -C /volume .` in a helper container that mounts the volume
//! read-only, and fails when `du -b` of the archive says 0 bytes (deleting it). Here the volume
//! is read from the host through `docker volume inspect`'s `Mountpoint`: the sandbox runs as
//! root beside a local engine, Coolify's helper image cannot be pulled, and a helper built from
//! a local image would add a container start to every backup for the same bytes. Symbolic links
//! are archived as links, never followed, so a link in a volume cannot pull host files in. The
//! archive is gzip-compressed (`tar -I <compressor>`, `BackupCompression::compressorCommand`:
//! pigz or gzip), as its `.tar.gz` name says.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{DockerError, DockerRuntime, is_not_found};

/// ScheduledVolumeBackup::DEFAULT_TIMEOUT is 36,000 s; a sandbox volume is small.
const BACKUP_TIMEOUT: Duration = Duration::from_secs(600);

impl DockerRuntime {
    /// Archives the volume's content (entries `./…`, as `tar -C /volume .` names them) to
    /// `archive` and returns the archive's size in bytes. Fails, removing the archive, when the
    /// volume does not exist, cannot be read, or the archive ends up empty.
    pub async fn backup_volume(
        &self,
        volume_name: &str,
        archive: &Path,
    ) -> Result<u64, DockerError> {
        let target = format!("volume {volume_name}");
        let inspected = self
            .engine(
                "docker volume inspect",
                &target,
                "see the engine's message",
                self.docker.inspect_volume(volume_name),
            )
            .await;
        let volume = match inspected {
            Ok(volume) => volume,
            Err(error) if is_not_found(&error) => {
                return Err(DockerError::VolumeNotFound { volume_name: volume_name.to_owned() });
            }
            Err(error) => return Err(error),
        };
        let mountpoint = PathBuf::from(&volume.mountpoint);
        let archive_path = archive.to_path_buf();
        let volume_name_owned = volume_name.to_owned();
        let written = tokio::time::timeout(
            BACKUP_TIMEOUT,
            tokio::task::spawn_blocking(move || {
                write_archive(&volume_name_owned, &mountpoint, &archive_path)
            }),
        )
        .await;
        let result = match written {
            Ok(Ok(result)) => result,
            Ok(Err(join_error)) => Err(DockerError::Io {
                operation: "archive",
                path: archive.to_path_buf(),
                target: target.clone(),
                source: std::io::Error::other(join_error.to_string()),
            }),
            Err(_) => Err(DockerError::Timeout {
                operation: "the volume archive".to_owned(),
                target: target.clone(),
                docker_host: self.docker_host.clone(),
                seconds: BACKUP_TIMEOUT.as_secs(),
            }),
        };
        // `du -b <archive>`: 0 bytes or no archive fails the backup.
        let size = match result {
            Ok(()) => {
                tokio::fs::metadata(archive).await.map(|metadata| metadata.len()).unwrap_or(0)
            }
            Err(error) => {
                let _ignored = tokio::fs::remove_file(archive).await;
                return Err(error);
            }
        };
        if size == 0 {
            let _ignored = tokio::fs::remove_file(archive).await;
            return Err(DockerError::EmptyBackup {
                volume_name: volume_name.to_owned(),
                archive: archive.to_path_buf(),
            });
        }
        Ok(size)
    }
}

fn write_archive(volume_name: &str, mountpoint: &Path, archive: &Path) -> Result<(), DockerError> {
    let target = format!("volume {volume_name}");
    let io_error = |operation: &'static str, path: &Path| {
        let path = path.to_path_buf();
        let target = target.clone();
        move |source| DockerError::Io { operation, path, target, source }
    };
    // Read before anything is written, so an unreadable volume leaves no archive behind.
    std::fs::read_dir(mountpoint).map_err(|source| DockerError::VolumeNotReadable {
        volume_name: volume_name.to_owned(),
        mountpoint: mountpoint.to_path_buf(),
        source,
    })?;
    if let Some(parent) = archive.parent() {
        std::fs::create_dir_all(parent).map_err(io_error("create directory", parent))?;
    }
    let file = std::fs::File::create(archive).map_err(io_error("create", archive))?;
    let gzip = flate2::write::GzEncoder::new(
        std::io::BufWriter::new(file),
        flate2::Compression::default(),
    );
    let mut builder = tar::Builder::new(gzip);
    builder.follow_symlinks(false);
    // Owners, modes and times as `tar` keeps them, so a restore gives the container its files.
    builder.mode(tar::HeaderMode::Complete);
    builder.append_dir_all(".", mountpoint).map_err(io_error("archive", mountpoint))?;
    let gzip = builder.into_inner().map_err(io_error("finish", archive))?;
    let mut writer = gzip.finish().map_err(io_error("compress", archive))?;
    writer.flush().map_err(io_error("write", archive))?;
    writer.get_ref().sync_all().map_err(io_error("sync", archive))
}
