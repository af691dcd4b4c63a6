//! Resource quantities: CPU in millicores, memory and disk in MiB.
//!
//! Integers, so sums and comparisons are exact; `0.25 CPU` is 250 millicores.

use std::fmt;

use serde::{Deserialize, Serialize};

/// CPU, memory and disk, as limits or reservations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Resources {
    /// Thousandths of a CPU core.
    pub millicpus: u32,
    /// Memory in MiB.
    pub memory_mb: u32,
    /// Disk in MiB (volume reservations).
    #[serde(default)]
    pub disk_mb: u32,
}

impl Resources {
    pub const ZERO: Resources = Resources { millicpus: 0, memory_mb: 0, disk_mb: 0 };

    pub const fn new(millicpus: u32, memory_mb: u32, disk_mb: u32) -> Resources {
        Resources { millicpus, memory_mb, disk_mb }
    }

    /// CPUs as the decimal compose expects (`0.25`).
    pub fn cpus(&self) -> f64 {
        f64::from(self.millicpus) / 1000.0
    }

    pub fn saturating_add(self, other: Resources) -> Resources {
        Resources {
            millicpus: self.millicpus.saturating_add(other.millicpus),
            memory_mb: self.memory_mb.saturating_add(other.memory_mb),
            disk_mb: self.disk_mb.saturating_add(other.disk_mb),
        }
    }

    pub fn saturating_sub(self, other: Resources) -> Resources {
        Resources {
            millicpus: self.millicpus.saturating_sub(other.millicpus),
            memory_mb: self.memory_mb.saturating_sub(other.memory_mb),
            disk_mb: self.disk_mb.saturating_sub(other.disk_mb),
        }
    }

    /// The smaller of each dimension.
    pub fn min(self, other: Resources) -> Resources {
        Resources {
            millicpus: self.millicpus.min(other.millicpus),
            memory_mb: self.memory_mb.min(other.memory_mb),
            disk_mb: self.disk_mb.min(other.disk_mb),
        }
    }

    /// True when every dimension of `self` is at most `other`'s.
    pub fn fits_within(&self, other: &Resources) -> bool {
        self.millicpus <= other.millicpus
            && self.memory_mb <= other.memory_mb
            && self.disk_mb <= other.disk_mb
    }

    /// True when CPU and memory of `self` are at most `other`'s (disk ignored: plans cap
    /// CPU and memory per stack, disk is a host reservation).
    pub fn compute_fits_within(&self, other: &Resources) -> bool {
        self.millicpus <= other.millicpus && self.memory_mb <= other.memory_mb
    }
}

impl fmt::Display for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} CPU, {}", format_cpus(self.millicpus), format_megabytes(self.memory_mb))?;
        if self.disk_mb > 0 {
            write!(f, ", {} disk", format_megabytes(self.disk_mb))?;
        }
        Ok(())
    }
}

/// `250` -> `0.25`, `2000` -> `2`.
pub fn format_cpus(millicpus: u32) -> String {
    let whole = millicpus / 1000;
    let fraction = millicpus % 1000;
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = format!("{fraction:03}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// `256` -> `256 MB`, `2048` -> `2 GB`, `1536` -> `1.5 GB`.
pub fn format_megabytes(megabytes: u32) -> String {
    if megabytes >= 1024 && megabytes.is_multiple_of(512) {
        let gigabytes = f64::from(megabytes) / 1024.0;
        if megabytes.is_multiple_of(1024) {
            return format!("{} GB", megabytes / 1024);
        }
        return format!("{gigabytes:.1} GB");
    }
    format!("{megabytes} MB")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_the_plan_table() {
        assert_eq!(Resources::new(250, 256, 0).to_string(), "0.25 CPU, 256 MB");
        assert_eq!(Resources::new(1000, 1024, 2048).to_string(), "1 CPU, 1 GB, 2 GB disk");
        assert_eq!(Resources::new(1500, 1536, 0).to_string(), "1.5 CPU, 1.5 GB");
        assert_eq!(format_cpus(125), "0.125");
    }

    #[test]
    fn arithmetic_saturates_and_compares_per_dimension() {
        let small = Resources::new(250, 256, 0);
        let big = Resources::new(1000, 1024, 10);
        assert!(small.fits_within(&big));
        assert!(!big.fits_within(&small));
        assert_eq!(small.saturating_sub(big), Resources::ZERO);
        assert_eq!(small.saturating_add(big), Resources::new(1250, 1280, 10));
        assert_eq!(big.min(Resources::new(2000, 512, 5)), Resources::new(1000, 512, 5));
    }
}
