"""The core under the apps: helpers every app may use and that use none of them (docs/architecture.md)."""
