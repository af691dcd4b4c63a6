//! Where archives live in the bucket: Coolify's layout (which the sandbox writes and the engine
//! searches) and the platform's own prefix for final backups (which Coolify never touches).

/// `backup_dir().'/volumes'` without its leading `/`: `VolumeBackupJob::handle` builds
/// `/data/coolify/backups/volumes/<team slug>-<team id>/<storage uuid>` and `uploadToS3` copies
/// the archive to `<bucket><that directory>/` with `mc cp` (Coolify 4.3.11,
/// app/Jobs/VolumeBackupJob.php), so the key starts at `data/`.
pub const COOLIFY_VOLUME_BACKUPS: &str = "data/coolify/backups/volumes";

/// The platform's prefix for final backups when `[backups] final_prefix` is not set.
pub const DEFAULT_FINAL_PREFIX: &str = "cfa-final-backups";

/// The key of a volume archive as Coolify's `VolumeBackupJob` names it:
/// `<root>/<slug(team name)>-<team id>/<storage uuid>/volume-<slug(volume name)>-<unix s>.tar.gz`.
pub fn coolify_volume_archive_key(
    team_name: &str,
    team_id: u64,
    storage_uuid: &str,
    volume_name: &str,
    unix_seconds: u64,
) -> String {
    format!(
        "{COOLIFY_VOLUME_BACKUPS}/{}-{team_id}/{storage_uuid}/volume-{}-{unix_seconds}.tar.gz",
        laravel_slug(team_name),
        laravel_slug(volume_name)
    )
}

/// Whether `key` is an archive of the storage `storage_uuid` in Coolify's layout, whatever the
/// team folder (the engine does not need to reproduce the team's slug).
pub fn is_coolify_archive_of(key: &str, storage_uuid: &str) -> bool {
    let Some(rest) =
        key.strip_prefix(COOLIFY_VOLUME_BACKUPS).and_then(|rest| rest.strip_prefix('/'))
    else {
        return false;
    };
    let mut parts = rest.split('/');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some(team), Some(storage), Some(file), None)
            if !team.is_empty() && storage == storage_uuid && file.ends_with(".tar.gz")
    )
}

/// `<prefix>/<tenant>/<stack>/<archive file name>`: one folder per stack, the file named as
/// Coolify named it (volume and time), so several volumes and several deletes never collide.
pub fn final_backup_key(prefix: &str, tenant: &str, stack: &str, coolify_key: &str) -> String {
    let file = coolify_key.rsplit('/').next().unwrap_or(coolify_key);
    format!("{}/{tenant}/{stack}/{file}", prefix.trim_matches('/'))
}

/// Laravel's `Str::slug` for ASCII input: `_` becomes `-`, `@` becomes `-at-`, lower case,
/// anything but letters, digits, `-` and whitespace dropped, runs of `-`/whitespace joined
/// into one `-`, trimmed. (Laravel transliterates other letters first; our names are ASCII.)
pub fn laravel_slug(text: &str) -> String {
    let replaced = text.replace('_', "-").replace('@', "-at-").to_lowercase();
    let mut slug = String::with_capacity(replaced.len());
    let mut pending_separator = false;
    for character in replaced.chars() {
        if character == '-' || character.is_whitespace() {
            pending_separator = true;
        } else if character.is_ascii_alphanumeric() {
            if pending_separator && !slug.is_empty() {
                slug.push('-');
            }
            pending_separator = false;
            slug.push(character);
        }
    }
    slug
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_follow_laravel() {
        assert_eq!(laravel_slug("Root Team"), "root-team");
        assert_eq!(laravel_slug("abc123_openclaw-data"), "abc123-openclaw-data");
        assert_eq!(laravel_slug("  --Ops@Acme!! "), "ops-at-acme");
    }

    #[test]
    fn archive_keys_are_found_by_storage_uuid_whatever_the_team() {
        let key = coolify_volume_archive_key("Root Team", 0, "s-uuid", "x_data", 1_700_000_000);
        assert_eq!(
            key,
            "data/coolify/backups/volumes/root-team-0/s-uuid/volume-x-data-1700000000.tar.gz"
        );
        assert!(is_coolify_archive_of(&key, "s-uuid"));
        assert!(!is_coolify_archive_of(&key, "s-uuid2"));
        assert!(!is_coolify_archive_of(
            "data/coolify/backups/volumes/t/s-uuid/x/y.tar.gz",
            "s-uuid"
        ));
        assert!(!is_coolify_archive_of("elsewhere/t/s-uuid/y.tar.gz", "s-uuid"));
        assert_eq!(
            final_backup_key("/cfa-final-backups/", "acme", "support", &key),
            "cfa-final-backups/acme/support/volume-x-data-1700000000.tar.gz"
        );
    }
}
