"""The `LLMDeployment` API, version v1alpha1: pydantic models for spec and status.

These models are the single source of truth for the resource. The CRD's OpenAPI
schema (with its defaults, enums and CEL rules) is generated from them by
`llm_operator.api.crd`, the operator parses every object with
`LLMDeploymentSpec.model_validate`, and `llm-operator render` validates files the
same way, so the API server, the operator and the CLI refuse the same specs.
Cross-field rules are written twice on purpose, once as a CEL rule for the API
server and once as a pydantic validator, and a unit test checks that both agree on
the same corpus of bad specs. The models live in one module per section of the
spec (`model`, `engine`, `placement`, `scaling`, `operations`), the whole spec in
`spec` and the status in `status`; this package is the one surface the rest of the
operator uses (`v1alpha1.LLMDeploymentSpec`, `v1alpha1.Phase`, ...).
"""

from __future__ import annotations

from llm_operator.api.v1alpha1 import common, engine, model, operations, placement, scaling
from llm_operator.api.v1alpha1 import spec as spec_module
from llm_operator.api.v1alpha1 import status as status_module

API_GROUP = common.API_GROUP
API_VERSION = common.API_VERSION
KIND = common.KIND
PLURAL = common.PLURAL
SINGULAR = common.SINGULAR
SHORT_NAMES = common.SHORT_NAMES
QUANTITY_PATTERN = common.QUANTITY_PATTERN
MODEL_URI_PATTERN = common.MODEL_URI_PATTERN
DNS_LABEL_PATTERN = common.DNS_LABEL_PATTERN
Model = common.Model
Quantity = common.Quantity
IntOrPercent = common.IntOrPercent
FreeForm = common.FreeForm

SecretKeyRef = model.SecretKeyRef
Architecture = model.Architecture
ModelSource = model.ModelSource
Quantization = model.Quantization

EnvVar = engine.EnvVar
Engine = engine.Engine

Resources = placement.Resources
Toleration = placement.Toleration
Scheduling = placement.Scheduling

AutoscalingProvider = scaling.AutoscalingProvider
AutoscalingMode = scaling.AutoscalingMode
AutoscalingMetric = scaling.AutoscalingMetric
DEFAULT_QUEUE_TARGET = scaling.DEFAULT_TARGETS[scaling.AutoscalingMetric.QUEUE_DEPTH]
Autoscaling = scaling.Autoscaling

GatewaySettings = operations.GatewaySettings
ModelCache = operations.ModelCache
Rollout = operations.Rollout
Disruption = operations.Disruption
Observability = operations.Observability

LLMDeploymentSpec = spec_module.LLMDeploymentSpec
CRD_DEFAULTED_OBJECTS = spec_module.CRD_DEFAULTED_OBJECTS
parse_spec = spec_module.parse_spec

ConditionStatus = status_module.ConditionStatus
Condition = status_module.Condition
Phase = status_module.Phase
AutoscalerStatus = status_module.AutoscalerStatus
LLMDeploymentStatus = status_module.LLMDeploymentStatus
