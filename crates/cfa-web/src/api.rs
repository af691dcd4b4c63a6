//! The routes' handlers, one module per audience.

pub(crate) mod agent;
pub(crate) mod health;
pub(crate) mod tenant;
