//! Integration tests of the template catalogue, the renderer and the guardrail linter, against
//! the real `templates/` folder and the compose-spec JSON schema in `../shared/compose/`.

mod injection;
mod linter;
mod rendering;
mod support;
