//! The version gate: features the client uses and the first Coolify version that has them
//! (`notes/coolify.md` §11.2 and the volume-backup controller, which landed for 4.3).

use semver::Version;

/// A Coolify capability that older instances lack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// `docker_compose_raw` on `POST /services` (first tag v4.0.0-beta.399).
    ComposeRawServices,
    /// `urls` and `force_domain_override` on services (v4.0.0-beta.461).
    ServiceUrls,
    /// `GET /destinations` and `GET /servers/{uuid}/destinations` (v4.2.0).
    Destinations,
    /// Volume backups of service storages (`VolumeBackupsController`, 4.3).
    StorageBackups,
}

impl Feature {
    pub fn name(self) -> &'static str {
        match self {
            Self::ComposeRawServices => "creating a service from docker_compose_raw",
            Self::ServiceUrls => "service urls",
            Self::Destinations => "listing destinations",
            Self::StorageBackups => "storage backups",
        }
    }

    pub fn minimum(self) -> Version {
        let text = match self {
            Self::ComposeRawServices => "4.0.0-beta.399",
            Self::ServiceUrls => "4.0.0-beta.461",
            Self::Destinations => "4.2.0",
            Self::StorageBackups => "4.3.0",
        };
        Version::parse(text).unwrap_or_else(|_| Version::new(4, 3, 0))
    }
}

/// What the platform can do on a Coolify of a given version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSupport {
    /// Provisioning is impossible: every stack is placed on a destination, which needs
    /// [`Feature::Destinations`] (4.2.0).
    Unsupported { minimum: Version },
    /// Stacks run, but paid plans get no volume backups (they need 4.3.0).
    WithoutBackups { backups_need: Version },
    /// Everything the platform uses.
    Full,
}

/// The platform's verdict on `version`: 4.2.0 is the minimum (destinations), 4.3.0 for
/// backups. Versions 4.3.0 to 4.3.8 answer a backup schedule with a number where later ones
/// send `null`, and before 4.3.10 a delete leaves the backup archives: the client reads both.
pub fn support(version: &Version) -> VersionSupport {
    let minimum = Feature::Destinations.minimum();
    let backups = Feature::StorageBackups.minimum();
    if *version < minimum {
        VersionSupport::Unsupported { minimum }
    } else if *version < backups {
        VersionSupport::WithoutBackups { backups_need: backups }
    } else {
        VersionSupport::Full
    }
}

/// Parses `/version`'s plain-text answer (`4.3.11`, `v4.0.0-beta.420`, with whitespace).
pub(crate) fn parse_coolify_version(text: &str) -> Option<Version> {
    let trimmed = text.trim().trim_matches('"');
    let trimmed = trimmed.strip_prefix('v').unwrap_or(trimmed);
    Version::parse(trimmed).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders_versions() {
        let beta = parse_coolify_version("v4.0.0-beta.420\n").unwrap();
        assert!(beta >= Feature::ComposeRawServices.minimum());
        assert!(beta < Feature::ServiceUrls.minimum());
        let current = parse_coolify_version("4.3.11").unwrap();
        assert!(current >= Feature::StorageBackups.minimum());
        assert!(parse_coolify_version("4.2.0").unwrap() < Feature::StorageBackups.minimum());
        assert_eq!(parse_coolify_version("<html>"), None);
    }

    #[test]
    fn four_two_is_the_minimum_and_four_three_brings_backups() {
        let verdict = |text: &str| support(&parse_coolify_version(text).unwrap());
        assert!(matches!(verdict("4.1.2"), VersionSupport::Unsupported { .. }));
        assert!(matches!(verdict("v4.0.0-beta.470"), VersionSupport::Unsupported { .. }));
        assert!(matches!(verdict("4.2.0"), VersionSupport::WithoutBackups { .. }));
        assert_eq!(verdict("4.3.0"), VersionSupport::Full);
        assert_eq!(verdict("4.3.11"), VersionSupport::Full);
    }
}
