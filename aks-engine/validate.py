#!/usr/bin/env python3
"""Validate aks-engine "vlabs" cluster definitions (apimodels) without aks-engine.

AKS Engine is retired for public Azure (last release v0.79.0, Kubernetes 1.24 the
last version it creates), so nobody should have to install it just to find out
that a definition would be rejected. This file re-implements, with the Python
standard library only:

- the load-time checks of pkg/api/apiloader.go: apiVersion must be "vlabs", and
  an unknown key anywhere in a struct is an error (keys are matched
  case-insensitively, like Go's encoding/json; map fields accept any key);
- the `validate:"..."` tags of pkg/api/vlabs/types.go (required fields, ranges);
- the rules of pkg/api/vlabs/validate.go that apply to a Linux cluster on
  public Azure (versions, names, pools, network plugin/policy pairs, load
  balancer, addons, zones, identity);
- project policies, marked "project policy" in their messages: 3+ masters,
  2+ agent pools, cluster-autoscaler and RBAC on, a real network policy
  engine, a vmSize allowlist, Linux only, no committed secrets.

The schema below is the subset of vlabs fields this project accepts. A field
that aks-engine knows but that is missing here is reported as unknown: add it
to the schema (with its Go type) when you need it.

Usage: python3 aks-engine/validate.py FILE...
Prints "OK FILE" or one "FILE: path: message" line per error and exits 1 if
any file has an error. Warnings are printed ("FILE: warning: ...") but pass.
"""

import base64
import binascii
import ipaddress
import json
import re
import sys

# --------------------------------------------------------------------------
# Schema: the vlabs Go structs, as JSON key -> type.


class Struct:
    """A vlabs Go struct. Keys match case-insensitively; unknown keys are errors."""

    def __init__(self, name, fields):
        self.name = name
        self.fields = fields
        self.by_lower = {key.lower(): key for key in fields}


class ListOf:
    """A Go slice."""

    def __init__(self, item):
        self.item = item


STR, INT, BOOL, FLOAT = "string", "integer", "boolean", "number"
# map[string]string: any key is accepted, but every value must be a JSON string,
# because Go refuses to unmarshal 3 into a string. That is why the autoscaler's
# "min-nodes": 3 fails while "min-nodes": "3" works.
STRMAP = "map[string]string"

PUBLIC_KEY = Struct("PublicKey", {"keyData": STR})
KEYVAULT_SECRETS = Struct(
    "KeyVaultSecrets",
    {
        "sourceVault": Struct("KeyVaultID", {"id": STR}),
        "vaultCertificates": ListOf(
            Struct("KeyVaultCertificate", {"certificateUrl": STR, "certificateStore": STR})
        ),
    },
)
LINUX_PROFILE = Struct(
    "LinuxProfile",
    {
        "adminUsername": STR,
        "ssh": Struct("SSH", {"publicKeys": ListOf(PUBLIC_KEY)}),
        "secrets": ListOf(KEYVAULT_SECRETS),
        "scriptroot": STR,
        "customSearchDomain": Struct(
            "CustomSearchDomain", {"name": STR, "realmUser": STR, "realmPassword": STR}
        ),
        "customNodesDNS": Struct("CustomNodesDNS", {"dnsServer": STR}),
    },
)
KEYVAULT_SECRET_REF = Struct(
    "KeyvaultSecretRef", {"vaultID": STR, "secretName": STR, "version": STR}
)
SERVICE_PRINCIPAL_PROFILE = Struct(
    "ServicePrincipalProfile",
    {"clientId": STR, "secret": STR, "objectId": STR, "keyvaultSecretRef": KEYVAULT_SECRET_REF},
)
AAD_PROFILE = Struct(
    "AADProfile", {"clientAppID": STR, "serverAppID": STR, "tenantID": STR, "adminGroupID": STR}
)
FEATURE_FLAGS = Struct(
    "FeatureFlags",
    {
        "enableCSERunInBackground": BOOL,
        "blockOutboundInternet": BOOL,
        "enableIPv6DualStack": BOOL,
        "enableTelemetry": BOOL,
        "enableIPv6Only": BOOL,
    },
)
IMAGE_REFERENCE = Struct(
    "ImageReference",
    {"name": STR, "resourceGroup": STR, "subscriptionId": STR, "gallery": STR, "version": STR},
)
EXTENSION = Struct("Extension", {"name": STR, "singleOrAll": STR, "template": STR})
EXTENSION_PROFILE = Struct(
    "ExtensionProfile",
    {
        "name": STR,
        "version": STR,
        "extensionParameters": STR,
        "parametersKeyvaultSecretRef": KEYVAULT_SECRET_REF,
        "rootURL": STR,
        "script": STR,
        "urlQuery": STR,
    },
)
CONTAINER_SPEC = Struct(
    "KubernetesContainerSpec",
    {
        "name": STR,
        "image": STR,
        "cpuRequests": STR,
        "memoryRequests": STR,
        "cpuLimits": STR,
        "memoryLimits": STR,
    },
)
ADDON = Struct(
    "KubernetesAddon",
    {
        "name": STR,
        "enabled": BOOL,
        "mode": STR,
        "containers": ListOf(CONTAINER_SPEC),
        "config": STRMAP,
        "pools": ListOf(Struct("AddonNodePoolsConfig", {"name": STR, "config": STRMAP})),
        "data": STR,
    },
)
COMPONENT = Struct(
    "KubernetesComponent",
    {
        "name": STR,
        "enabled": BOOL,
        "containers": ListOf(CONTAINER_SPEC),
        "config": STRMAP,
        "data": STR,
    },
)
PRIVATE_CLUSTER = Struct(
    "PrivateCluster",
    {
        "enabled": BOOL,
        "jumpboxProfile": Struct(
            "PrivateJumpboxProfile",
            {
                "name": STR,
                "vmSize": STR,
                "osDiskSizeGB": INT,
                "username": STR,
                "publicKey": STR,
                "storageProfile": STR,
            },
        ),
    },
)
KUBERNETES_CONFIG = Struct(
    "KubernetesConfig",
    {
        **dict.fromkeys(
            [
                "kubernetesImageBase", "kubernetesImageBaseType", "mcrKubernetesImageBase",
                "clusterSubnet", "dnsServiceIP", "serviceCidr", "networkPolicy",
                "networkPlugin", "networkMode", "containerRuntime", "dockerBridgeSubnet",
                "userAssignedID", "customHyperkubeImage", "customKubeAPIServerImage",
                "customKubeControllerManagerImage", "customKubeProxyImage",
                "customKubeSchedulerImage", "customKubeBinaryURL", "mobyVersion",
                "containerdVersion", "customCcmImage", "etcdVersion", "etcdDiskSizeGB",
                "etcdEncryptionKey", "kubeReservedCgroup", "cloudProviderBackoffMode",
                "loadBalancerSku", "azureCNIVersion", "azureCNIURLLinux", "keyVaultSku",
                "kubeProxyMode", "privateAzureRegistryServer",
            ],
            STR,
        ),
        **dict.fromkeys(
            [
                "useManagedIdentity", "useCloudControllerManager", "useInstanceMetadata",
                "enableRbac", "enableSecureKubelet", "enableAggregatedAPIs",
                "enableDataEncryptionAtRest", "enableEncryptionWithExternalKms",
                "enablePodSecurityPolicy", "cloudProviderBackoff", "cloudProviderRateLimit",
                "cloudProviderDisableOutboundSNAT", "excludeMasterFromStandardLB",
            ],
            BOOL,
        ),
        **dict.fromkeys(
            [
                "maxPods", "gchighthreshold", "gclowthreshold", "cloudProviderBackoffRetries",
                "cloudProviderBackoffDuration", "cloudProviderRateLimitBucket",
                "cloudProviderRateLimitBucketWrite", "loadBalancerOutboundIPs",
                "maximumLoadBalancerRuleCount", "outboundRuleIdleTimeoutInMinutes",
                "etcdStorageLimitGB",
            ],
            INT,
        ),
        **dict.fromkeys(
            [
                "cloudProviderBackoffJitter", "cloudProviderBackoffExponent",
                "cloudProviderRateLimitQPS", "cloudProviderRateLimitQPSWrite",
            ],
            FLOAT,
        ),
        **dict.fromkeys(
            [
                "containerRuntimeConfig", "kubeletConfig", "controllerManagerConfig",
                "cloudControllerManagerConfig", "apiServerConfig", "schedulerConfig",
            ],
            STRMAP,
        ),
        "privateCluster": PRIVATE_CLUSTER,
        "addons": ListOf(ADDON),
        "components": ListOf(COMPONENT),
    },
)
# Fields that masterProfile and agentPoolProfiles share.
_VM_PROFILE_FIELDS = {
    "vmSize": STR,
    "osDiskSizeGB": INT,
    "vnetSubnetID": STR,
    "ipAddressCount": INT,
    "storageProfile": STR,
    "distro": STR,
    "kubernetesConfig": KUBERNETES_CONFIG,
    "imageReference": IMAGE_REFERENCE,
    "availabilityProfile": STR,
    "availabilityZones": ListOf(STR),
    "singlePlacementGroup": BOOL,
    "platformFaultDomainCount": INT,
    "platformUpdateDomainCount": INT,
    "auditDEnabled": BOOL,
    "customVMTags": STRMAP,
    "sysctldConfig": STRMAP,
    "ultraSSDEnabled": BOOL,
    "encryptionAtHost": BOOL,
    "proximityPlacementGroupID": STR,
    "osDiskCachingType": STR,
    "preProvisionExtension": EXTENSION,
    "extensions": ListOf(EXTENSION),
    "fqdn": STR,
}
MASTER_PROFILE = Struct(
    "MasterProfile",
    {
        **_VM_PROFILE_FIELDS,
        "count": INT,
        "dnsPrefix": STR,
        "subjectAltNames": ListOf(STR),
        "vnetCidr": STR,
        "agentVnetSubnetID": STR,
        "firstConsecutiveStaticIP": STR,
        "HTTPSourceAddressPrefix": STR,
        "oauthEnabled": BOOL,
        "customFiles": ListOf(Struct("CustomFile", {"source": STR, "dest": STR})),
        "agentSubnet": STR,
        "cosmosEtcd": BOOL,
    },
)
AGENT_POOL_PROFILE = Struct(
    "AgentPoolProfile",
    {
        **_VM_PROFILE_FIELDS,
        "name": STR,
        "count": INT,
        "dnsPrefix": STR,
        "osType": STR,
        "ports": ListOf(INT),
        "scaleSetPriority": STR,
        "scaleSetEvictionPolicy": STR,
        "spotMaxPrice": FLOAT,
        "diskSizesGB": ListOf(INT),
        "role": STR,
        "acceleratedNetworkingEnabled": BOOL,
        "acceleratedNetworkingEnabledWindows": BOOL,
        "vmssOverProvisioningEnabled": BOOL,
        "diskEncryptionSetID": STR,
        "customNodeLabels": STRMAP,
        "enableVMSSNodePublicIP": BOOL,
        "loadBalancerBackendAddressPoolIDs": ListOf(STR),
        "dataDiskCachingType": STR,
    },
)
ORCHESTRATOR_PROFILE = Struct(
    "OrchestratorProfile",
    {
        "orchestratorType": STR,
        "orchestratorRelease": STR,
        "orchestratorVersion": STR,
        "kubernetesConfig": KUBERNETES_CONFIG,
    },
)
# windowsProfile, certificateProfile and customCloudProfile (Azure Stack) are
# deliberately absent: this project runs Linux nodes on public Azure and lets
# aks-engine generate the certificates.
PROPERTIES = Struct(
    "Properties",
    {
        "provisioningState": STR,
        "orchestratorProfile": ORCHESTRATOR_PROFILE,
        "masterProfile": MASTER_PROFILE,
        "agentPoolProfiles": ListOf(AGENT_POOL_PROFILE),
        "linuxProfile": LINUX_PROFILE,
        "extensionProfiles": ListOf(EXTENSION_PROFILE),
        "servicePrincipalProfile": SERVICE_PRINCIPAL_PROFILE,
        "aadProfile": AAD_PROFILE,
        "featureFlags": FEATURE_FLAGS,
        "telemetryProfile": Struct("TelemetryProfile", {"applicationInsightsKey": STR}),
    },
)
# apiloader.go checks the top level against ContainerService plus TypeMeta
# (which contributes apiVersion).
CONTAINER_SERVICE = Struct(
    "ContainerService",
    {
        "apiVersion": STR,
        "id": STR,
        "location": STR,
        "name": STR,
        "plan": Struct(
            "ResourcePurchasePlan",
            {"name": STR, "product": STR, "promotionCode": STR, "publisher": STR},
        ),
        "tags": STRMAP,
        "type": STR,
        "properties": PROPERTIES,
    },
)

# --------------------------------------------------------------------------
# Rule data (from aks-engine v0.79.0 unless marked as project policy).

# common/versions.go: the versions marked creatable on public Azure.
CREATABLE_VERSIONS = {
    "1.20": "1.20.15",
    "1.21": "1.21.14",
    "1.22": "1.22.17",
    "1.23": "1.23.17",
    "1.24": "1.24.17",
}
DEFAULT_RELEASE = "1.23"  # what aks-engine picks when release and version are both empty

DNS_PREFIX_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,43}[A-Za-z0-9]$")  # common/helper.go
POOL_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,11}$")  # it becomes part of the VM names
LABEL_KEY_RE = re.compile(
    r"^(([a-zA-Z0-9-]+[.])*[a-zA-Z0-9-]+[/])?([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$"
)
LABEL_VALUE_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$")
SSH_KEY_RE = re.compile(
    r"^(ssh-(rsa|ed25519)|ecdsa-sha2-nistp(256|384|521)) ([A-Za-z0-9+/=]+)( .*)?$"
)
SUBNET_ID_RE = re.compile(
    r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\.Network"
    r"/virtualNetworks/([^/]+)/subnets/([^/]+)$",
    re.IGNORECASE,
)

DISTROS = {
    "", "ubuntu", "ubuntu-18.04", "ubuntu-18.04-gen2", "ubuntu-20.04",
    "ubuntu-20.04-gen2", "flatcar", "aks-ubuntu-16.04", "aks-ubuntu-18.04",
    "aks-ubuntu-20.04", "acc-16.04",
}
UBUNTU_DISTROS = DISTROS - {"", "flatcar"}
CACHING_TYPES = {"", "None", "ReadOnly", "ReadWrite"}
AVAILABILITY_SET, VMSS = "AvailabilitySet", "VirtualMachineScaleSets"
AVAILABILITY_PROFILES = {"", AVAILABILITY_SET, VMSS}
MASTER_STORAGE_PROFILES = {"", "StorageAccount", "ManagedDisks"}
POOL_STORAGE_PROFILES = {"", "StorageAccount", "ManagedDisks", "Ephemeral"}
OS_TYPES = {"", "Linux", "Windows"}
SCALE_SET_PRIORITIES = {"", "Regular", "Low", "Spot"}
EVICTION_POLICIES = {"", "Delete", "Deallocate"}

NETWORK_PLUGINS = {"", "kubenet", "azure", "cilium", "antrea"}
NETWORK_POLICIES = {"", "calico", "cilium", "antrea", "azure", "none"}
# validate.go networkPluginPlusPolicyAllowed (flannel is only accepted on upgrade).
NETWORK_PAIRS = {
    ("", ""), ("azure", ""), ("azure", "azure"), ("kubenet", ""), ("cilium", "cilium"),
    ("kubenet", "calico"), ("azure", "calico"), ("", "calico"), ("", "cilium"),
    ("antrea", "antrea"), ("azure", "antrea"), ("", "antrea"), ("", "azure"), ("", "none"),
}
# Project policy: an engine that enforces NetworkPolicy objects. With no engine
# the API server still accepts NetworkPolicies and nothing enforces them.
ENFORCING_POLICIES = {"azure", "calico"}
NETWORK_MODES = {"", "bridge", "transparent"}
CONTAINER_RUNTIMES = {"", "docker", "containerd"}
PROXY_MODES = {"", "iptables", "ipvs"}
ADDON_MODES = {"", "EnsureExists", "Reconcile"}
MAX_OUTBOUND_IPS = 16
MIN_MAX_PODS = 5

# Project policy, not a vlabs rule. aks-engine checks vmSize only against the
# ARM template's allowedValues at deploy time, so a typo costs a failed
# deployment. These sizes have at least 2 vCPUs (aks-engine's minimum) and
# premium storage. Add a size here when you need it.
ALLOWED_VM_SIZES = {
    "Standard_D2s_v3", "Standard_D4s_v3", "Standard_D8s_v3", "Standard_D16s_v3",
    "Standard_DS2_v2", "Standard_DS3_v2", "Standard_DS4_v2",
    "Standard_E2s_v3", "Standard_E4s_v3", "Standard_E8s_v3",
    "Standard_F2s_v2", "Standard_F4s_v2", "Standard_F8s_v2",
}
AZURE_ZONES = {"1", "2", "3"}
MASTER_MIN_OS_DISK_GB = 100  # aks-engine docs: masters need a 100 GB disk

# --------------------------------------------------------------------------
# Collecting errors and warnings.


class Issues:
    def __init__(self):
        self.errors = []
        self.warnings = []

    def error(self, path, message):
        self.errors.append(f"{path}: {message}")

    def warn(self, path, message):
        self.warnings.append(f"{path}: {message}")


def join(path, key):
    return f"{path}.{key}" if path else key


def describe(value):
    """'number 3', 'string "x"', 'null': used in type errors."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {json.dumps(value)}"
    if isinstance(value, (int, float)):
        return f"number {json.dumps(value)}"
    if isinstance(value, str):
        return f"string {json.dumps(value)}"
    return "array" if isinstance(value, list) else "object"


# --------------------------------------------------------------------------
# Load step: strict keys and JSON types, as aks-engine's loader does.

_SCALAR_TYPES = {
    STR: lambda v: isinstance(v, str),
    INT: lambda v: isinstance(v, int) and not isinstance(v, bool),
    BOOL: lambda v: isinstance(v, bool),
    FLOAT: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}


def normalize(value, kind, path, issues):
    """Check value against the schema and return it with every struct key renamed
    to its vlabs spelling, so the rules below can use plain dict lookups.
    Values of the wrong JSON type are reported and dropped (returned as None)."""
    if value is None:
        return None  # null is a nil pointer or zero value in Go: same as absent
    if isinstance(kind, Struct):
        return _normalize_struct(value, kind, path, issues)
    if isinstance(kind, ListOf):
        return _normalize_list(value, kind, path, issues)
    if kind == STRMAP:
        return _normalize_string_map(value, path, issues)
    if not _SCALAR_TYPES[kind](value):
        issues.error(path, f"must be a JSON {kind}, got {describe(value)}")
        return None
    return value


def _normalize_struct(value, kind, path, issues):
    if not isinstance(value, dict):
        issues.error(path, f"must be a JSON object, got {describe(value)}")
        return None
    out = {}
    for key, item in value.items():
        canonical = kind.by_lower.get(key.lower())
        if canonical is None:
            issues.error(
                join(path, key),
                f"unknown key '{key}': not a field of vlabs {kind.name} "
                "(aks-engine rejects unknown keys when it loads the file)",
            )
            continue
        if canonical in out:
            # Go would silently keep whichever spelling came last.
            issues.error(join(path, key), f"duplicate key: '{key}' is a second spelling of '{canonical}'")
            continue
        normalized = normalize(item, kind.fields[canonical], join(path, canonical), issues)
        if normalized is not None:
            out[canonical] = normalized
    return out


def _normalize_list(value, kind, path, issues):
    if not isinstance(value, list):
        issues.error(path, f"must be a JSON array, got {describe(value)}")
        return None
    out = []
    for index, item in enumerate(value):
        item_path = f"{path}[{index}]"
        if item is None and isinstance(kind.item, Struct):
            issues.error(item_path, "must be an object, got null")
            continue
        normalized = normalize(item, kind.item, item_path, issues)
        if normalized is not None:
            out.append(normalized)
    return out


def _normalize_string_map(value, path, issues):
    if not isinstance(value, dict):
        issues.error(path, f"must be a JSON object, got {describe(value)}")
        return None
    out = {}
    for key, item in value.items():
        if not isinstance(item, str):
            issues.error(
                join(path, key),
                f"must be a JSON string (vlabs declares this map as {STRMAP}), "
                f"got {describe(item)}; write {json.dumps(json.dumps(item))}",
            )
            # Keep the JSON text, so later rules judge the value itself
            # instead of also reporting the key as missing.
            item = json.dumps(item)
        out[key] = item
    return out


# --------------------------------------------------------------------------
# Rules. Every check takes the normalized properties and an Issues collector.

P = "properties"
OP = f"{P}.orchestratorProfile"
KC = f"{OP}.kubernetesConfig"
MP = f"{P}.masterProfile"
LP = f"{P}.linuxProfile"


def pool_path(index, key=None):
    path = f"{P}.agentPoolProfiles[{index}]"
    return join(path, key) if key else path


def kubernetes_config(props):
    return props.get("orchestratorProfile", {}).get("kubernetesConfig", {})


def pools(props):
    return props.get("agentPoolProfiles", [])


def check_api_version(doc, issues):
    api_version = doc.get("apiVersion")
    if api_version != "vlabs":
        issues.error("apiVersion", f'must be "vlabs", got {describe(api_version)}')


def check_required(props, issues):
    """The validate:"required" tags of vlabs/types.go. In Go, "required" on an
    int or string means non-zero / non-empty."""
    for key in ("orchestratorProfile", "masterProfile", "linuxProfile"):
        if key not in props:
            issues.error(join(P, key), "is required")
    master = props.get("masterProfile")
    if master is not None:
        for key in ("count", "dnsPrefix", "vmSize"):
            if not master.get(key):
                issues.error(join(MP, key), "is required")
    for index, pool in enumerate(pools(props)):
        for key in ("name", "count", "vmSize"):
            if not pool.get(key):
                issues.error(pool_path(index, key), "is required")
    linux = props.get("linuxProfile")
    if linux is not None:
        if not linux.get("adminUsername"):
            issues.error(join(LP, "adminUsername"), "is required")
        if not linux.get("ssh", {}).get("publicKeys"):
            issues.error(join(LP, "ssh.publicKeys"), "is required and needs at least one key")


def strip_v(version):
    return version[1:] if version[:1] in ("v", "V") else version


def resolve_version(props, issues):
    """Return the Kubernetes version aks-engine would create, or None if it
    would refuse. Mirrors common.RationalizeReleaseAndVersion for create."""
    orchestrator = props.get("orchestratorProfile")
    if orchestrator is None:
        return None
    release = strip_v(orchestrator.get("orchestratorRelease", ""))
    version = strip_v(orchestrator.get("orchestratorVersion", ""))
    creatable = ", ".join(CREATABLE_VERSIONS.values())
    if not release and not version:
        return CREATABLE_VERSIONS[DEFAULT_RELEASE]
    if version:
        if version not in CREATABLE_VERSIONS.values():
            issues.error(
                join(OP, "orchestratorVersion"),
                f"Kubernetes {version} cannot be created by aks-engine v0.79.0 "
                f"(the last release); creatable versions: {creatable}",
            )
            return None
        if release and version.rsplit(".", 1)[0] != release:
            issues.error(
                OP,
                f"orchestratorRelease '{release}' and orchestratorVersion '{version}' "
                "disagree; set one of them, or make the version a patch of the release",
            )
            return None
        return version
    if release not in CREATABLE_VERSIONS:
        issues.error(
            join(OP, "orchestratorRelease"),
            f"release {release} cannot be created by aks-engine v0.79.0; "
            f"creatable releases: {', '.join(CREATABLE_VERSIONS)}",
        )
        return None
    return CREATABLE_VERSIONS[release]


def check_orchestrator_type(props, issues):
    orchestrator = props.get("orchestratorProfile")
    if orchestrator is None:
        return
    kind = orchestrator.get("orchestratorType", "")
    if kind and kind.lower() != "kubernetes":
        issues.error(
            join(OP, "orchestratorType"),
            f"must be Kubernetes (or empty), got '{kind}'; "
            "aks-engine v0.79.0 creates nothing else",
        )


def check_vm_size(path, vm_size, issues):
    if vm_size and vm_size not in ALLOWED_VM_SIZES:
        issues.error(
            path,
            f"project policy: vmSize '{vm_size}' is not in the allowlist "
            f"({', '.join(sorted(ALLOWED_VM_SIZES))}); add it to validate.py if you need it",
        )


def check_enum(path, value, allowed, issues, what="value"):
    if value not in allowed:
        shown = ", ".join(repr(v) for v in sorted(allowed))
        issues.error(path, f"{what} '{value}' is not one of {shown}")


def check_range(path, value, low, high, issues):
    if value is not None and not low <= value <= high:
        issues.error(path, f"must be between {low} and {high}, got {value}")


def check_image_reference(path, profile, issues):
    image = profile.get("imageReference")
    if image and bool(image.get("name")) != bool(image.get("resourceGroup")):
        issues.error(join(path, "imageReference"), "name and resourceGroup must be set together")


def check_master(props, issues):
    master = props.get("masterProfile")
    if master is None:
        return
    count = master.get("count")
    if count and count not in (1, 3, 5):
        issues.error(join(MP, "count"), f"masterProfile.count must be 1, 3 or 5, got {count}")
    elif count == 1:
        issues.warn(join(MP, "count"), "1 control plane VM has no redundancy; use 3 or 5")
    dns_prefix = master.get("dnsPrefix", "")
    if dns_prefix and not DNS_PREFIX_RE.match(dns_prefix):
        issues.error(
            join(MP, "dnsPrefix"),
            f"dnsPrefix '{dns_prefix}' is invalid: it must be 3-45 characters, start with "
            "a letter, end with a letter or digit, and contain only letters, digits and '-'",
        )
    check_vm_size(join(MP, "vmSize"), master.get("vmSize"), issues)
    check_range(join(MP, "osDiskSizeGB"), master.get("osDiskSizeGB"), 0, 2048, issues)
    check_range(join(MP, "ipAddressCount"), master.get("ipAddressCount"), 0, 256, issues)
    check_enum(join(MP, "storageProfile"), master.get("storageProfile", ""), MASTER_STORAGE_PROFILES, issues)
    check_enum(join(MP, "osDiskCachingType"), master.get("osDiskCachingType", ""), CACHING_TYPES, issues)
    check_enum(join(MP, "distro"), master.get("distro", ""), DISTROS, issues, "distro")
    check_enum(
        join(MP, "availabilityProfile"),
        master.get("availabilityProfile", ""),
        AVAILABILITY_PROFILES,
        issues,
    )
    if master.get("auditDEnabled") and master.get("distro", "") not in UBUNTU_DISTROS | {""}:
        issues.error(join(MP, "auditDEnabled"), "auditd needs an Ubuntu-based distro")
    if "singlePlacementGroup" in master and master.get("availabilityProfile") == AVAILABILITY_SET:
        issues.error(join(MP, "singlePlacementGroup"), "is only supported with VirtualMachineScaleSets")
    check_image_reference(MP, master, issues)
    if master.get("osDiskSizeGB", 0) < MASTER_MIN_OS_DISK_GB:
        issues.warn(
            join(MP, "osDiskSizeGB"),
            f"aks-engine recommends at least {MASTER_MIN_OS_DISK_GB} GB for masters (etcd lives there)",
        )
    if master.get("availabilityProfile") == VMSS:
        check_vmss_master(props, master, issues)


def check_vmss_master(props, master, issues):
    if any(pool.get("availabilityProfile") == AVAILABILITY_SET for pool in pools(props)):
        issues.error(
            join(MP, "availabilityProfile"),
            "VirtualMachineScaleSets masters need VirtualMachineScaleSets agent pools",
        )
    config = kubernetes_config(props)
    if config.get("useManagedIdentity", True) and not config.get("userAssignedID"):
        issues.error(
            join(KC, "userAssignedID"),
            "VirtualMachineScaleSets masters with managed identity need a userAssignedID",
        )
    if master.get("vnetSubnetID") and master.get("firstConsecutiveStaticIP"):
        issues.error(
            join(MP, "firstConsecutiveStaticIP"),
            "must be empty for VirtualMachineScaleSets masters in a custom VNET",
        )


def check_pools(props, issues):
    seen = set()
    all_pools = pools(props)
    for index, pool in enumerate(all_pools):
        name = pool.get("name", "")
        if name and not POOL_NAME_RE.match(name):
            issues.error(
                pool_path(index, "name"),
                f"pool name '{name}' is invalid: it must start with a lowercase letter, "
                "be at most 12 characters and contain only a-z and 0-9",
            )
        if name and name in seen:
            issues.error(
                pool_path(index, "name"),
                f"pool name '{name}' is used twice; pool names must be unique",
            )
        seen.add(name)
        check_pool(props, index, pool, issues)
    # aks-engine compares the raw strings before defaults: "" and
    # "VirtualMachineScaleSets" count as mixed too.
    profiles = {pool.get("availabilityProfile", "") for pool in all_pools}
    if len(profiles) > 1:
        issues.error(
            f"{P}.agentPoolProfiles",
            "mixed availability profiles are not allowed "
            f"({', '.join(repr(p) for p in sorted(profiles))}); use one value for every pool",
        )


def check_pool(props, index, pool, issues):
    path = pool_path(index)
    count = pool.get("count")
    if count:
        check_range(join(path, "count"), count, 1, 1000, issues)
    check_vm_size(join(path, "vmSize"), pool.get("vmSize"), issues)
    check_range(join(path, "osDiskSizeGB"), pool.get("osDiskSizeGB"), 0, 2048, issues)
    check_range(join(path, "ipAddressCount"), pool.get("ipAddressCount"), 0, 256, issues)
    check_enum(join(path, "osType"), pool.get("osType", ""), OS_TYPES, issues, "osType")
    if pool.get("osType") == "Windows":
        issues.error(
            join(path, "osType"),
            "project policy: Linux pools only (Windows needs a windowsProfile)",
        )
    profile = pool.get("availabilityProfile", "")
    check_enum(
        join(path, "availabilityProfile"),
        profile,
        AVAILABILITY_PROFILES,
        issues,
        "availabilityProfile",
    )
    check_enum(join(path, "distro"), pool.get("distro", ""), DISTROS, issues, "distro")
    if pool.get("dnsPrefix"):
        issues.error(join(path, "dnsPrefix"), "must be empty for Kubernetes")
    if pool.get("ports"):
        issues.error(join(path, "ports"), "must be empty for Kubernetes")
    if pool.get("role"):
        issues.error(join(path, "role"), "must be empty")
    check_scale_set_priority(path, pool, issues)
    check_pool_storage(path, pool, issues)
    check_pool_vmss_features(props, path, pool, issues)
    check_node_labels(path, pool.get("customNodeLabels", {}), issues)
    check_image_reference(path, pool, issues)
    if any(not pool_id for pool_id in pool.get("loadBalancerBackendAddressPoolIDs", [])):
        issues.error(join(path, "loadBalancerBackendAddressPoolIDs"), "must not contain empty strings")


def check_scale_set_priority(path, pool, issues):
    priority = pool.get("scaleSetPriority", "")
    eviction = pool.get("scaleSetEvictionPolicy", "")
    check_enum(join(path, "scaleSetPriority"), priority, SCALE_SET_PRIORITIES, issues)
    check_enum(join(path, "scaleSetEvictionPolicy"), eviction, EVICTION_POLICIES, issues)
    if priority == "Regular" and eviction:
        issues.error(join(path, "scaleSetEvictionPolicy"), "must be empty when scaleSetPriority is Regular")


def check_pool_storage(path, pool, issues):
    storage = pool.get("storageProfile", "")
    profile = pool.get("availabilityProfile", "")
    check_enum(join(path, "storageProfile"), storage, POOL_STORAGE_PROFILES, issues, "storageProfile")
    if profile != AVAILABILITY_SET and storage == "StorageAccount":
        issues.error(
            join(path, "storageProfile"),
            "VirtualMachineScaleSets do not support StorageAccount disks; use ManagedDisks",
        )
    for key in ("osDiskCachingType", "dataDiskCachingType"):
        check_enum(join(path, key), pool.get(key, ""), CACHING_TYPES, issues, key)
    if storage == "Ephemeral" and pool.get("osDiskCachingType", "") not in ("", "ReadOnly"):
        issues.error(join(path, "osDiskCachingType"), "Ephemeral OS disks need ReadOnly caching")
    disks = pool.get("diskSizesGB", [])
    if not disks:
        return
    if len(disks) > 4:
        issues.error(join(path, "diskSizesGB"), f"at most 4 data disks, got {len(disks)}")
    for i, size in enumerate(disks):
        check_range(f"{join(path, 'diskSizesGB')}[{i}]", size, 1, 32767, issues)
    if storage not in ("StorageAccount", "ManagedDisks"):
        issues.error(
            join(path, "storageProfile"),
            "must be StorageAccount or ManagedDisks when diskSizesGB is set",
        )
    if profile not in (VMSS, AVAILABILITY_SET):
        issues.error(join(path, "availabilityProfile"), "must be set explicitly when diskSizesGB is set")


def check_pool_vmss_features(props, path, pool, issues):
    is_availability_set = pool.get("availabilityProfile") == AVAILABILITY_SET
    if pool.get("extensions") and not is_availability_set:
        issues.error(join(path, "extensions"), "extensions are not supported with VirtualMachineScaleSets")
    if pool.get("vmssOverProvisioningEnabled") and is_availability_set:
        issues.error(join(path, "vmssOverProvisioningEnabled"), "needs VirtualMachineScaleSets")
    if "singlePlacementGroup" in pool and is_availability_set:
        issues.error(join(path, "singlePlacementGroup"), "is only supported with VirtualMachineScaleSets")
    if pool.get("enableVMSSNodePublicIP"):
        if is_availability_set:
            issues.error(join(path, "enableVMSSNodePublicIP"), "needs VirtualMachineScaleSets")
        if kubernetes_config(props).get("loadBalancerSku", "").lower() != "basic":
            issues.error(join(path, "enableVMSSNodePublicIP"), "needs the Basic load balancer")
    if pool.get("acceleratedNetworkingEnabledWindows"):
        issues.error(
            join(path, "acceleratedNetworkingEnabledWindows"),
            "is unstable in aks-engine; set it to false",
        )


def check_node_labels(path, labels, issues):
    for key, value in labels.items():
        label_path = join(join(path, "customNodeLabels"), key)
        prefix = key.split("/")[0] if "/" in key else ""
        if not LABEL_KEY_RE.match(key) or len(prefix) > 253:
            issues.error(label_path, f"'{key}' is not a valid Kubernetes label key")
        if value and not LABEL_VALUE_RE.match(value):
            issues.error(label_path, f"'{value}' is not a valid Kubernetes label value")


def check_vnet(props, issues):
    """A custom VNET is all or nothing, and one VNET for everything."""
    master = props.get("masterProfile")
    if master is None:
        return
    subnet_ids = [(MP, master.get("vnetSubnetID", ""))] + [
        (pool_path(i), pool.get("vnetSubnetID", "")) for i, pool in enumerate(pools(props))
    ]
    if not any(subnet for _, subnet in subnet_ids):
        return
    vnets = set()
    for path, subnet in subnet_ids:
        match = SUBNET_ID_RE.match(subnet)
        if not match:
            issues.error(
                join(path, "vnetSubnetID"),
                "with a custom VNET, the master and every pool need a subnet ID "
                "(/subscriptions/.../resourceGroups/.../providers/Microsoft.Network"
                "/virtualNetworks/.../subnets/...)",
            )
            continue
        vnets.add(tuple(part.lower() for part in match.groups()[:3]))
    if len(vnets) > 1:
        issues.error(P, "the master and all pools must use subnets of the same VNET")
    if master.get("availabilityProfile") != VMSS:
        try:
            ipaddress.ip_address(master.get("firstConsecutiveStaticIP", ""))
        except ValueError:
            issues.error(
                join(MP, "firstConsecutiveStaticIP"),
                "must be a valid IP address with a custom VNET",
            )


def check_linux_profile(props, issues):
    linux = props.get("linuxProfile")
    if linux is None:
        return
    for index, key in enumerate(linux.get("ssh", {}).get("publicKeys", [])):
        path = f"{LP}.ssh.publicKeys[{index}].keyData"
        check_ssh_key(path, key.get("keyData", ""), issues)
    for index, secret in enumerate(linux.get("secrets", [])):
        path = f"{LP}.secrets[{index}]"
        if not secret.get("vaultCertificates"):
            issues.error(join(path, "vaultCertificates"), "must not be empty")
        if not secret.get("sourceVault", {}).get("id"):
            issues.error(join(path, "sourceVault.id"), "is required")


def check_ssh_key(path, key_data, issues):
    if not key_data:
        # aks-engine's message. (`aks-engine deploy` would generate a key for an
        # empty first keyData, but then nobody has the private half.)
        issues.error(path, "KeyData in LinuxProfile.SSH.PublicKeys cannot be empty string")
        return
    match = SSH_KEY_RE.match(key_data)
    if not match:
        issues.error(
            path,
            "must look like 'ssh-ed25519 AAAA... comment' (ssh-rsa, ssh-ed25519 or ecdsa-sha2-nistp*)",
        )
        return
    # Stricter than aks-engine: the base64 blob starts with the key type again,
    # which catches truncated or mangled copy-pastes.
    key_type, blob = match.group(1), match.group(4)
    try:
        raw = base64.b64decode(blob, validate=True)
        length = int.from_bytes(raw[:4], "big")
        embedded = raw[4 : 4 + length].decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        embedded = None
    if embedded != key_type:
        issues.error(path, f"the base64 part is not a {key_type} public key (truncated or mangled?)")
    elif "placeholder" in key_data.lower():
        issues.warn(
            path,
            "this is the repository's placeholder key; put your own public key here before deploying",
        )


def check_kubernetes_config(props, version, issues):
    config = kubernetes_config(props)
    check_network(config, issues)
    check_load_balancer(config, issues)
    check_cidrs(config, issues)
    check_config_limits(config, issues)
    check_rbac(config, version, issues)
    check_enum(
        join(KC, "containerRuntime"),
        config.get("containerRuntime", ""),
        CONTAINER_RUNTIMES,
        issues,
        "containerRuntime",
    )
    check_enum(
        join(KC, "kubeProxyMode"),
        config.get("kubeProxyMode", ""),
        PROXY_MODES,
        issues,
        "kubeProxyMode",
    )


def check_network(config, issues):
    plugin = config.get("networkPlugin", "")
    policy = config.get("networkPolicy", "")
    mode = config.get("networkMode", "")
    check_enum(join(KC, "networkPlugin"), plugin, NETWORK_PLUGINS, issues, "networkPlugin")
    check_enum(join(KC, "networkPolicy"), policy, NETWORK_POLICIES, issues, "networkPolicy")
    if (plugin, policy) not in NETWORK_PAIRS:
        issues.error(KC, f"networkPolicy '{policy}' is not supported with networkPlugin '{plugin}'")
    if policy not in ENFORCING_POLICIES:
        issues.error(
            join(KC, "networkPolicy"),
            f"project policy: networkPolicy must be azure or calico, got '{policy}'; "
            "without a policy engine, NetworkPolicies are silently ignored",
        )
    check_enum(join(KC, "networkMode"), mode, NETWORK_MODES, issues, "networkMode")
    if mode and plugin != "azure":
        issues.error(join(KC, "networkMode"), "networkMode needs networkPlugin 'azure'")
    if mode and policy == "calico" and mode != "transparent":
        issues.error(
            join(KC, "networkMode"),
            f"networkMode '{mode}' is not supported by calico; use transparent",
        )


def check_load_balancer(config, issues):
    sku = config.get("loadBalancerSku", "")
    if sku and sku.lower() not in ("standard", "basic"):
        issues.error(
            join(KC, "loadBalancerSku"),
            f"'{sku}' is invalid; only Standard and Basic are supported",
        )
    if sku.lower() == "standard" and not config.get("excludeMasterFromStandardLB"):
        issues.error(
            join(KC, "excludeMasterFromStandardLB"),
            "a Standard loadBalancerSku must exclude the masters: set excludeMasterFromStandardLB to true",
        )
    outbound_ips = config.get("loadBalancerOutboundIPs")
    if outbound_ips is not None:
        if sku.lower() == "basic":
            issues.error(join(KC, "loadBalancerOutboundIPs"), "needs the Standard load balancer")
        check_range(join(KC, "loadBalancerOutboundIPs"), outbound_ips, 0, MAX_OUTBOUND_IPS, issues)
    idle = config.get("outboundRuleIdleTimeoutInMinutes", 0)
    if idle and sku.lower() != "basic":
        check_range(join(KC, "outboundRuleIdleTimeoutInMinutes"), idle, 4, 120, issues)
    if config.get("maximumLoadBalancerRuleCount", 0) < 0:
        issues.error(join(KC, "maximumLoadBalancerRuleCount"), "must not be negative")


def parse_network(path, cidr, issues):
    try:
        return ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        issues.error(path, f"'{cidr}' is not a valid CIDR")
        return None


def check_cidrs(config, issues):
    cluster_subnet = config.get("clusterSubnet", "")
    if cluster_subnet:
        if "," in cluster_subnet:
            issues.error(join(KC, "clusterSubnet"), "must be a single CIDR (dual stack is not used here)")
        else:
            network = parse_network(join(KC, "clusterSubnet"), cluster_subnet, issues)
            # Azure CNI gives pods VNET addresses: the subnet must hold the nodes' pods.
            host_bits = network.max_prefixlen - network.prefixlen if network else None
            if host_bits is not None and config.get("networkPlugin") == "azure" and host_bits <= 8:
                issues.error(
                    join(KC, "clusterSubnet"),
                    f"'{cluster_subnet}' must leave at least 9 host bits for Azure CNI",
                )
    if config.get("dockerBridgeSubnet"):
        parse_network(join(KC, "dockerBridgeSubnet"), config["dockerBridgeSubnet"], issues)
    check_service_cidr(config, issues)


def check_service_cidr(config, issues):
    dns_ip, service_cidr = config.get("dnsServiceIP", ""), config.get("serviceCidr", "")
    if not dns_ip and not service_cidr:
        return
    if not dns_ip or not service_cidr:
        issues.error(KC, "serviceCidr and dnsServiceIP must be set together")
        return
    network = parse_network(join(KC, "serviceCidr"), service_cidr, issues)
    try:
        address = ipaddress.ip_address(dns_ip)
    except ValueError:
        issues.error(join(KC, "dnsServiceIP"), f"'{dns_ip}' is not a valid IP address")
        return
    if network is None:
        return
    if address not in network:
        issues.error(join(KC, "dnsServiceIP"), f"'{dns_ip}' is not within serviceCidr '{service_cidr}'")
    elif address in (network.network_address, network.broadcast_address):
        issues.error(
            join(KC, "dnsServiceIP"),
            f"'{dns_ip}' cannot be the first or broadcast address of '{service_cidr}'",
        )


def check_config_limits(config, issues):
    max_pods = config.get("maxPods", 0)
    if max_pods and max_pods < MIN_MAX_PODS:
        issues.error(join(KC, "maxPods"), f"must be at least {MIN_MAX_PODS}, got {max_pods}")
    etcd_limit = config.get("etcdStorageLimitGB", 0)
    if etcd_limit and etcd_limit < 2:
        issues.error(join(KC, "etcdStorageLimitGB"), f"must be at least 2, got {etcd_limit}")
    key = config.get("etcdEncryptionKey", "")
    if key:
        try:
            base64.b64decode(key, validate=True)
        except binascii.Error:
            issues.error(join(KC, "etcdEncryptionKey"), "must be base64")


def check_rbac(config, version, issues):
    rbac = config.get("enableRbac")
    if rbac is False and version:
        issues.error(
            join(KC, "enableRbac"),
            f"RBAC is required for Kubernetes 1.15 and later (this is {version})",
        )
    elif rbac is not True:
        issues.error(join(KC, "enableRbac"), "project policy: set enableRbac to true")
    for feature in ("enableAggregatedAPIs", "enablePodSecurityPolicy"):
        if config.get(feature) and not rbac:
            issues.error(join(KC, feature), "needs enableRbac")


def check_identity(props, issues):
    """Managed identity unless useManagedIdentity is explicitly false; then a
    service principal with exactly one of secret / keyvaultSecretRef."""
    config = kubernetes_config(props)
    principal = props.get("servicePrincipalProfile")
    path = f"{P}.servicePrincipalProfile"
    if principal and principal.get("secret"):
        issues.error(
            join(path, "secret"),
            "project policy: never commit a client secret; use managed identity or keyvaultSecretRef",
        )
    if config.get("useManagedIdentity", True):
        return
    if principal is None:
        issues.error(path, "is required when useManagedIdentity is false")
        return
    if not principal.get("clientId"):
        issues.error(join(path, "clientId"), "is required when useManagedIdentity is false")
    if bool(principal.get("secret")) == ("keyvaultSecretRef" in principal):
        issues.error(path, "set exactly one of secret and keyvaultSecretRef")
    reference = principal.get("keyvaultSecretRef")
    if reference is not None and not (reference.get("vaultID") and reference.get("secretName")):
        issues.error(join(path, "keyvaultSecretRef"), "needs vaultID and secretName")


def check_addons(props, issues):
    enabled = set()
    for index, addon in enumerate(kubernetes_config(props).get("addons", [])):
        path = f"{KC}.addons[{index}]"
        name = addon.get("name", "")
        check_addon_data(path, addon, issues)
        check_enum(join(path, "mode"), addon.get("mode", ""), ADDON_MODES, issues, "mode")
        if addon.get("enabled") is True:
            enabled.add(name)
            check_enabled_addon(props, path, addon, issues)
        elif addon.get("enabled") is False and name == "azure-cloud-provider":
            issues.error(
                join(path, "enabled"),
                "the azure-cloud-provider addon is required and cannot be disabled",
            )
    if {"kube-dns", "coredns"} <= enabled:
        issues.error(f"{KC}.addons", "kube-dns and coredns are both enabled; enable only one")
    if "cluster-autoscaler" not in enabled:
        issues.error(f"{KC}.addons", "project policy: enable the cluster-autoscaler addon")


def check_addon_data(path, addon, issues):
    data = addon.get("data", "")
    if not data:
        return
    if addon.get("config") or addon.get("containers"):
        issues.error(path, "config and containers must be empty when data is set")
    try:
        base64.b64decode(data, validate=True)
    except binascii.Error:
        issues.error(join(path, "data"), "must be base64")


def check_enabled_addon(props, path, addon, issues):
    name = addon.get("name", "")
    if name == "cluster-autoscaler":
        check_autoscaler(props, path, addon, issues)
    elif name == "rescheduler":
        issues.error(path, "the rescheduler addon is no longer available")
    elif name == "aad" and not props.get("aadProfile", {}).get("adminGroupID"):
        issues.error(path, "the aad addon needs aadProfile.adminGroupID")


def check_autoscaler(props, path, addon, issues):
    by_name = {pool.get("name"): pool for pool in pools(props)}
    if any(pool.get("availabilityProfile") == AVAILABILITY_SET for pool in pools(props)):
        issues.error(
            path,
            "cluster-autoscaler addon can only be used with VirtualMachineScaleSets; "
            'set "availabilityProfile": "VirtualMachineScaleSets" on every pool',
        )
    listed = set()
    for index, entry in enumerate(addon.get("pools", [])):
        entry_path = f"{path}.pools[{index}]"
        name = entry.get("name", "")
        if not name:
            issues.error(join(entry_path, "name"), "must name a pool of agentPoolProfiles")
            continue
        if name not in by_name:
            issues.error(
                join(entry_path, "name"),
                f"cluster-autoscaler pool '{name}' does not match any agentPoolProfiles name",
            )
            continue
        listed.add(name)
        check_autoscaler_bounds(entry_path, entry.get("config", {}), by_name[name], issues)
    for name in by_name.keys() - listed:
        issues.warn(f"{path}.pools", f"pool '{name}' is not listed, so the autoscaler keeps it at its count")


def check_autoscaler_bounds(path, config, pool, issues):
    """min-nodes / max-nodes are strings holding ints (aks-engine Atoi()s them).
    Project policy: both set explicitly, rather than defaulting to the count."""
    bounds = {}
    for key in ("min-nodes", "max-nodes"):
        text = config.get(key)
        key_path = join(join(path, "config"), key)
        if text is None:
            issues.error(key_path, f"project policy: set {key} explicitly (as a string, e.g. \"3\")")
        elif not re.fullmatch(r"[0-9]+", text):
            issues.error(key_path, f"must be a string holding a non-negative integer, got {json.dumps(text)}")
        else:
            bounds[key] = int(text)
    if len(bounds) < 2:
        return
    low, high = bounds["min-nodes"], bounds["max-nodes"]
    if low > high:
        issues.error(join(path, "config"), f"min-nodes {low} is greater than max-nodes {high}")
    elif high < 1:
        issues.error(join(path, "config.max-nodes"), "must be at least 1")
    elif not low <= pool.get("count", 0) <= high:
        issues.warn(
            join(path, "config"),
            f"pool count {pool.get('count')} is outside [{low}, {high}]; the autoscaler will move it",
        )


def check_zones(props, issues):
    master = props.get("masterProfile")
    if master is None:
        return
    profiles = [(MP, master)] + [(pool_path(i), pool) for i, pool in enumerate(pools(props))]
    for path, profile in profiles:
        zones = profile.get("availabilityZones", [])
        if any(zone not in AZURE_ZONES for zone in zones) or len(set(zones)) != len(zones):
            issues.error(
                join(path, "availabilityZones"),
                f'zones must be distinct values out of "1", "2", "3", got {zones}',
            )
    without = [path for path, profile in profiles if not profile.get("availabilityZones")]
    if without:
        for path in without:
            issues.warn(
                join(path, "availabilityZones"),
                "not set: masters and all pools should be spread over zones",
            )
        return
    for index, pool in enumerate(pools(props)):
        if pool.get("availabilityProfile") == AVAILABILITY_SET:
            issues.error(
                pool_path(index, "availabilityProfile"),
                "availability zones are not supported with an AvailabilitySet",
            )
    sku = kubernetes_config(props).get("loadBalancerSku", "")
    if sku and sku.lower() != "standard":
        issues.error(join(KC, "loadBalancerSku"), "availability zones need the Standard load balancer")


def check_project_sizes(props, issues):
    master = props.get("masterProfile", {})
    count = master.get("count", 0)
    if count and count < 3:
        issues.error(
            join(MP, "count"),
            f"project policy: at least 3 masters (etcd quorum across zones), got {count}",
        )
    if len(pools(props)) < 2:
        issues.error(
            f"{P}.agentPoolProfiles",
            f"project policy: at least 2 agent pools, got {len(pools(props))}",
        )


def validate(doc):
    """Validate a parsed cluster definition. Returns (errors, warnings), each a
    list of "path: message" strings; the definition is acceptable if errors is empty."""
    issues = Issues()
    if not isinstance(doc, dict):
        issues.error("(root)", f"must be a JSON object, got {describe(doc)}")
        return issues.errors, issues.warnings
    normalized = normalize(doc, CONTAINER_SERVICE, "", issues)
    check_api_version(normalized, issues)
    props = normalized.get("properties")
    if props is None:
        issues.error(P, "is required")
        return issues.errors, issues.warnings
    check_required(props, issues)
    check_orchestrator_type(props, issues)
    version = resolve_version(props, issues)
    check_master(props, issues)
    check_pools(props, issues)
    check_vnet(props, issues)
    check_linux_profile(props, issues)
    if "orchestratorProfile" in props:
        check_kubernetes_config(props, version, issues)
        check_identity(props, issues)
        check_addons(props, issues)
    check_zones(props, issues)
    check_project_sizes(props, issues)
    return issues.errors, issues.warnings


# --------------------------------------------------------------------------
# Command line.


def _reject_duplicate_keys(pairs):
    keys = [key for key, _ in pairs]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        # json.load would keep the last one silently, and so would Go.
        raise ValueError(f"duplicate key(s) {', '.join(duplicates)}")
    return dict(pairs)


def validate_file(path):
    """Returns (errors, warnings) for one file, including JSON syntax errors."""
    try:
        with open(path, encoding="utf-8") as handle:
            doc = json.load(handle, object_pairs_hook=_reject_duplicate_keys)
    except (OSError, ValueError) as exc:  # JSONDecodeError is a ValueError
        return [f"(file): cannot load: {exc}"], []
    return validate(doc)


def main(argv):
    if not argv:
        print("usage: validate.py CLUSTER_DEFINITION.json...", file=sys.stderr)
        return 2
    failed = False
    for path in argv:
        errors, warnings = validate_file(path)
        for warning in warnings:
            print(f"{path}: warning: {warning}")
        for error in errors:
            print(f"{path}: {error}")
        if errors:
            failed = True
        else:
            print(f"OK {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
