"""Programs for people, not code the services share: the `consentflow` command (the
embedded dev stack, the demo, migrations, topics and the operator's commands) and the
generator of the published contracts (`python -m tools.contracts_gen`).

The services never import this package, and neither does `shared/`
(tests/unit/test_architecture.py guards both)."""
