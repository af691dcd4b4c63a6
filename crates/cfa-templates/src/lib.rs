//! Template catalogue, typed compose rendering and guardrail linter.
