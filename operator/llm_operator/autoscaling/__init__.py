"""The builtin autoscaler: a pure decision function, the signal readers, and the operator's loop."""
