"""A trace-driven discrete-event simulation of a fleet of GPU replicas under an autoscaler.

`model` sizes one replica from the engine simulator's capacity model, `traces`
makes the request-rate traces, `fleet` runs the event loop, `policies` holds the
autoscaling policies compared (the builtin one is the operator's own decision code),
`oracle` the policy with perfect foresight, `reference` the rows that say what a
policy without foresight can reach, and `report` the table, spread, JSON lines and
plots. `bench/autoscale.py` is the command.
"""
