//! Template catalogue, typed compose rendering and the guardrail linter.
//!
//! A template is a folder under `templates/`: `template.toml` (the manifest: services with
//! their resource range, volumes, parameters and how they bind to the environment),
//! `compose.yaml` (the containers) and config files. [`Catalogue::load`] reads and cross-checks
//! them; [`render`] turns one into a Coolify-ready stack for a tenant; [`lint::lint`] checks any
//! compose document against the guardrails and runs on every render.
//!
//! **Architecture invariant:** pure. No I/O except [`Catalogue::load`] reading the folder; a
//! render is a function of its request.

pub mod catalogue;
pub mod compose;
pub mod lint;
pub mod manifest;
pub mod params;
pub mod render;

pub use catalogue::{Catalogue, CatalogueError, Template, repository_templates_dir};
pub use render::{
    EnvironmentEntry, RenderError, RenderFailure, RenderRequest, RenderedStack, RoutedUrl,
    recorded_requirements, render,
};
