#!/usr/bin/env python3
# Why: aks-engine is retired, so nobody should install it to learn that a definition would be rejected; vlabs.schema.json holds the fields, this file the load step and the rules that compare fields.
"""Validate aks-engine "vlabs" cluster definitions (apimodels) without aks-engine.

AKS Engine is retired for public Azure (last release v0.79.0, Kubernetes 1.24 the
last version it creates). Two parts:

- vlabs.schema.json (JSON Schema 2020-12, checked with the `jsonschema` package):
  the vlabs structs of pkg/api/vlabs/types.go that this project accepts, an
  unknown key anywhere being an error (as pkg/api/apiloader.go does), their
  JSON types, the `validate:"..."` tags, and every rule of vlabs/validate.go or
  of this project ("project policy" in its message) that looks at one field;
- this file: what a schema cannot say. Keys match case-insensitively, like Go's
  encoding/json (renamed to the schema's spelling before the schema is applied),
  and the rules that compare two or more fields (versions, pools, network
  plugin/policy pairs, load balancer, addons, zones, identity), plus warnings.

Usage: aks-engine/validate.py FILE...   (with the jsonschema of .tools/aks-engine:
scripts/install-lint-tools.sh installs it from aks-engine/requirements.txt)
Prints "OK FILE" or one "FILE: path: message" line per error and exits 1 if
any file has an error. Warnings are printed ("FILE: warning: ...") but pass.
"""

import base64
import binascii
import ipaddress
import json
import re
import sys
from pathlib import Path

try:
    import jsonschema
except ImportError:
    sys.exit("validate.py needs jsonschema: run scripts/install-lint-tools.sh and use .tools/aks-engine/bin/python")

SCHEMA = json.loads((Path(__file__).resolve().parent / "vlabs.schema.json").read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)

# --------------------------------------------------------------------------
# Rule data (from aks-engine v0.79.0 unless marked as project policy); the
# values a single field may take are in vlabs.schema.json.

# common/versions.go: the versions marked creatable on public Azure.
CREATABLE_VERSIONS = {
    "1.20": "1.20.15",
    "1.21": "1.21.14",
    "1.22": "1.22.17",
    "1.23": "1.23.17",
    "1.24": "1.24.17",
}
DEFAULT_RELEASE = "1.23"  # what aks-engine picks when release and version are both empty

SUBNET_ID_RE = re.compile(
    r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\.Network"
    r"/virtualNetworks/([^/]+)/subnets/([^/]+)$",
    re.IGNORECASE,
)
UBUNTU_DISTROS = {
    "ubuntu", "ubuntu-18.04", "ubuntu-18.04-gen2", "ubuntu-20.04", "ubuntu-20.04-gen2",
    "aks-ubuntu-16.04", "aks-ubuntu-18.04", "aks-ubuntu-20.04", "acc-16.04",
}
AVAILABILITY_SET, VMSS = "AvailabilitySet", "VirtualMachineScaleSets"
# validate.go networkPluginPlusPolicyAllowed (flannel is only accepted on upgrade).
NETWORK_PAIRS = {
    ("", ""), ("azure", ""), ("azure", "azure"), ("kubenet", ""), ("cilium", "cilium"),
    ("kubenet", "calico"), ("azure", "calico"), ("", "calico"), ("", "cilium"),
    ("antrea", "antrea"), ("azure", "antrea"), ("", "antrea"), ("", "azure"), ("", "none"),
}
# Project policy: an engine that enforces NetworkPolicy objects. With no engine
# the API server still accepts NetworkPolicies and nothing enforces them.
ENFORCING_POLICIES = {"azure", "calico"}
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
# Load step: aks-engine's keys (case-insensitive), then the schema.


def resolve(schema):
    """The schema a `$ref` (to #/$defs/NAME, the only kind vlabs.schema.json has) points at."""
    while "$ref" in schema:
        siblings = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**SCHEMA["$defs"][schema["$ref"].rsplit("/", 1)[1]], **siblings}
    return schema


def canonical_keys(value, schema, path, issues):
    """value with every struct key renamed to its vlabs spelling, as Go's encoding/json matches
    them case-insensitively, and without its null fields. Unknown keys stay (the schema reports
    them); a second spelling of a key is reported and dropped, where Go would silently keep the
    last one."""
    schema = resolve(schema)
    if isinstance(value, list) and "items" in schema:
        return [canonical_keys(item, schema["items"], f"{path}[{i}]", issues) for i, item in enumerate(value)]
    if not isinstance(value, dict) or "properties" not in schema:
        return value
    by_lower = {key.lower(): key for key in schema["properties"]}
    out = {}
    for key, item in value.items():
        if item is None:
            continue  # null is a nil pointer or zero value in Go: the same as absent
        canonical = by_lower.get(key.lower(), key)
        if canonical in out:
            issues.error(join(path, key), f"duplicate key: '{key}' is a second spelling of '{canonical}'")
            continue
        sub = schema["properties"].get(canonical)
        out[canonical] = canonical_keys(item, sub, join(path, canonical), issues) if sub else item
    return out


def location(parts):
    """'properties.agentPoolProfiles[1].name' for the jsonschema path of a value."""
    path = ""
    for part in parts:
        path = f"{path}[{part}]" if isinstance(part, int) else join(path, part)
    return path


def schema_issues(doc, issues):
    """Report every schema error; return the errors of the values of the wrong JSON type."""
    errors = list(VALIDATOR.iter_errors(doc))
    wrong_type = [error for error in errors if error.validator == "type"]
    # A value of the wrong type gets that error only: its others (enum, range) follow from it.
    mistyped = {tuple(error.absolute_path) for error in wrong_type}
    for error in errors:
        path = location(error.absolute_path)
        value, keyword = error.instance, error.validator
        if keyword != "type" and tuple(error.absolute_path) in mistyped:
            continue
        if keyword == "required":
            for key in error.validator_value:
                if key not in value:
                    issues.error(join(path, key), "is required")
            continue
        if keyword == "additionalProperties" and error.validator_value is False:
            for key in value.keys() - error.schema.get("properties", {}).keys():
                issues.error(
                    join(path, key),
                    f"unknown key '{key}': not a field of {error.schema.get('title', 'this object')} "
                    "(aks-engine rejects unknown keys when it loads the file)",
                )
            continue
        issues.error(path, message(error, path))
    return wrong_type


def message(error, path):
    """The schema's own x-messages for the keyword, else a plain sentence."""
    value, keyword, expected = error.instance, error.validator, error.validator_value
    template = error.schema.get("x-messages", {}).get(keyword)
    if template:
        return template.format(
            value=value,
            described=describe(value),
            quoted=json.dumps(json.dumps(value)),
            allowed=", ".join(map(str, expected)) if isinstance(expected, list) else expected,
            count=len(value) if isinstance(value, (list, dict, str)) else value,
        )
    name = path.rsplit(".", 1)[-1].split("[")[0] or "value"
    if keyword == "type":
        return f"must be a JSON {expected}, got {describe(value)}"
    if keyword == "enum":
        return f"{name} '{value}' is not one of {', '.join(repr(v) for v in expected)}"
    if keyword == "const":
        return f"must be {json.dumps(expected)}, got {describe(value)}"
    if keyword in ("minimum", "maximum") and {"minimum", "maximum"} <= error.schema.keys():
        return f"must be between {error.schema['minimum']} and {error.schema['maximum']}, got {value}"
    if keyword == "minLength" and expected == 1:
        return "must not be empty"
    return error.message


def drop_wrong_types(doc, errors):
    """Remove the values of the wrong JSON type, so the rules below need not check types again.
    A number (or null) in a map[string]string becomes its JSON text instead, so the rules judge
    the value itself rather than its absence. Last first, so a removed list item leaves the
    indices of the others to remove unchanged (paths that share a prefix differ next in one
    container, so their next parts are both keys or both indices)."""
    for error in sorted(errors, key=lambda e: list(e.absolute_path), reverse=True):
        *parents, last = error.absolute_path
        container = doc
        for part in parents:
            container = container[part]
        if list(error.absolute_schema_path)[-2:-1] == ["additionalProperties"]:
            container[last] = json.dumps(error.instance)
        else:
            del container[last]


# --------------------------------------------------------------------------
# Rules that compare fields. Every check takes the properties (keys in their vlabs spelling,
# values of the schema's JSON types) and an Issues collector.

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


def check_image_reference(path, profile, issues):
    image = profile.get("imageReference")
    if image and bool(image.get("name")) != bool(image.get("resourceGroup")):
        issues.error(join(path, "imageReference"), "name and resourceGroup must be set together")


def check_master(props, issues):
    master = props.get("masterProfile")
    if master is None:
        return
    if master.get("count") == 1:
        issues.warn(join(MP, "count"), "1 control plane VM has no redundancy; use 3 or 5")
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
    check_scale_set_priority(path, pool, issues)
    check_pool_storage(path, pool, issues)
    check_pool_vmss_features(props, path, pool, issues)
    check_image_reference(path, pool, issues)


def check_scale_set_priority(path, pool, issues):
    if pool.get("scaleSetPriority") == "Regular" and pool.get("scaleSetEvictionPolicy"):
        issues.error(join(path, "scaleSetEvictionPolicy"), "must be empty when scaleSetPriority is Regular")


def check_pool_storage(path, pool, issues):
    storage = pool.get("storageProfile", "")
    profile = pool.get("availabilityProfile", "")
    if profile != AVAILABILITY_SET and storage == "StorageAccount":
        issues.error(
            join(path, "storageProfile"),
            "VirtualMachineScaleSets do not support StorageAccount disks; use ManagedDisks",
        )
    if storage == "Ephemeral" and pool.get("osDiskCachingType", "") not in ("", "ReadOnly"):
        issues.error(join(path, "osDiskCachingType"), "Ephemeral OS disks need ReadOnly caching")
    disks = pool.get("diskSizesGB", [])
    if not disks:
        return
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


def check_ssh_key(path, key_data, issues):
    # The schema checks the form (an empty one is aks-engine's error: `aks-engine deploy` would
    # generate a key for it, but then nobody has the private half). Stricter than aks-engine: the
    # base64 blob starts with the key type again, which catches truncated or mangled copy-pastes.
    key_type, _, rest = key_data.partition(" ")
    if not rest:
        return
    blob = rest.split(" ", 1)[0]
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
    check_rbac(config, version, issues)


def check_network(config, issues):
    plugin = config.get("networkPlugin", "")
    policy = config.get("networkPolicy", "")
    mode = config.get("networkMode", "")
    if (plugin, policy) not in NETWORK_PAIRS:
        issues.error(KC, f"networkPolicy '{policy}' is not supported with networkPlugin '{plugin}'")
    if policy not in ENFORCING_POLICIES:
        issues.error(
            join(KC, "networkPolicy"),
            f"project policy: networkPolicy must be azure or calico, got '{policy}'; "
            "without a policy engine, NetworkPolicies are silently ignored",
        )
    if mode and plugin != "azure":
        issues.error(join(KC, "networkMode"), "networkMode needs networkPlugin 'azure'")
    if mode and policy == "calico" and mode != "transparent":
        issues.error(
            join(KC, "networkMode"),
            f"networkMode '{mode}' is not supported by calico; use transparent",
        )


def check_load_balancer(config, issues):
    sku = config.get("loadBalancerSku", "")
    if sku.lower() == "standard" and not config.get("excludeMasterFromStandardLB"):
        issues.error(
            join(KC, "excludeMasterFromStandardLB"),
            "a Standard loadBalancerSku must exclude the masters: set excludeMasterFromStandardLB to true",
        )
    if config.get("loadBalancerOutboundIPs") is not None and sku.lower() == "basic":
        issues.error(join(KC, "loadBalancerOutboundIPs"), "needs the Standard load balancer")
    idle = config.get("outboundRuleIdleTimeoutInMinutes", 0)
    if idle and sku.lower() != "basic" and not 4 <= idle <= 120:
        issues.error(join(KC, "outboundRuleIdleTimeoutInMinutes"), f"must be between 4 and 120, got {idle}")


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
        if addon.get("data") and (addon.get("config") or addon.get("containers")):
            issues.error(path, "config and containers must be empty when data is set")
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
    doc = canonical_keys(doc, SCHEMA, "", issues)
    drop_wrong_types(doc, schema_issues(doc, issues))
    props = doc.get("properties")
    if props is None:
        return issues.errors, issues.warnings
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
