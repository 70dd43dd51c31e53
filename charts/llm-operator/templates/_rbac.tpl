{{/*
The rules of the operator's namespaced work: exactly the verbs the operator uses.
The children are the kinds of llm_operator.builders.children.CHILD_KINDS; the
operator applies them with server-side apply (create + patch), lists those it owns,
and prunes (delete) those no longer wanted. Deployments are also watched (kopf) and
read. No get on the other kinds, no update, no wildcard, no Secrets (the vLLM Pods
reference Secrets by name; the operator never reads them).
tests/integration/chart/test_rbac.py holds these rules equal to the operator's calls.
*/}}
{{- define "llm-operator.namespacedRules" -}}
- apiGroups: ["llmoperator.io"]
  resources: ["llmdeployments"]
  # watch: kopf; get: reread before writing status; patch: kopf's annotations.
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["llmoperator.io"]
  resources: ["llmdeployments/status"]
  verbs: ["patch"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["serviceaccounts", "configmaps", "persistentvolumeclaims", "services"]
  verbs: ["list", "create", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["list", "create", "patch", "delete"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["list", "create", "patch", "delete"]
- apiGroups: ["keda.sh"]
  resources: ["scaledobjects"]
  verbs: ["list", "create", "patch", "delete"]
- apiGroups: ["monitoring.coreos.com"]
  resources: ["podmonitors", "servicemonitors", "prometheusrules"]
  verbs: ["list", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  # Readiness and scheduling of the replicas, for status.
  verbs: ["list"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{/*
Cluster-wide reads of GPU capacity (rbac.readNodes): the nodes' allocatable GPUs, for
the status of unschedulable replicas, and the Pods bound to them in every namespace,
so the builtin autoscaler adds no more replicas than the free GPUs fit. (In the
cluster-wide mode the namespaced rules already let it list Pods everywhere.)
*/}}
{{- define "llm-operator.nodeRules" -}}
- apiGroups: [""]
  resources: ["nodes"]
  verbs: ["list"]
{{- end }}

{{- define "llm-operator.capacityRules" -}}
{{ include "llm-operator.nodeRules" . }}
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
{{- end }}

{{/* kopf's resource scanning in the cluster-wide mode: notices the CRD being (re)installed. */}}
{{- define "llm-operator.crdRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- end }}
