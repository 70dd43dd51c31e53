"""Grafana dashboards as code, written to charts/llm-operator/dashboards/ by `make dashboards`.

Five dashboards, built with grafana-foundation-sdk (pinned to its build for the
current Grafana, dashboard schema 41): the fleet overview, one LLMDeployment in
detail, autoscaling, guardrails and cache, and the operator's health. `render()` gives
each file's JSON text; the unit tier fails when the files in the chart differ from it
(regenerate with `make dashboards`), and the integration tier runs every query of the
files against a real Prometheus fed by the real exporters. The SDK is needed only to
build them (the `dashboards` extra), never by the running operator.
"""
