//! Integration tests for the Coolify client against the sandbox.
