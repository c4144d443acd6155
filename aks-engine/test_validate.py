# Why: proves the committed ClusterDefinition.json passes and that validate.py + vlabs.schema.json reject each documented mistake.
"""Tests for validate.py (and vlabs.schema.json) against the committed ClusterDefinition.json.

Run from the repository root, with the jsonschema that scripts/install-lint-tools.sh installs:
    .tools/aks-engine/bin/python -m unittest discover -s aks-engine -p 'test_*.py' -v

Every negative case mutates a deep copy of the committed definition, so each
test proves that one specific mistake is caught on an otherwise good file.
"""

import copy
import importlib.util
import json
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
VALIDATOR = HERE / "validate.py"
DEFINITION = HERE / "ClusterDefinition.json"

# Load validate.py by path: "aks-engine" is not an importable package name.
_spec = importlib.util.spec_from_file_location("aks_engine_validate", VALIDATOR)
validate_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(validate_module)
validate = validate_module.validate

with DEFINITION.open(encoding="utf-8") as _handle:
    COMMITTED = json.load(_handle)


def committed():
    return copy.deepcopy(COMMITTED)


def props(doc):
    return doc["properties"]


def kube_config(doc):
    return doc["properties"]["orchestratorProfile"]["kubernetesConfig"]


def autoscaler(doc):
    return next(a for a in kube_config(doc)["addons"] if a["name"] == "cluster-autoscaler")


class ValidatorTestCase(unittest.TestCase):
    def assertRejected(self, doc, expected):
        """doc has an error containing `expected`."""
        errors, _ = validate(doc)
        self.assertTrue(
            any(expected in error for error in errors),
            f"expected an error containing {expected!r}, got {errors}",
        )

    def assertNoError(self, doc, about=""):
        """doc has no error (mentioning `about`, if given)."""
        errors, _ = validate(doc)
        self.assertEqual([e for e in errors if about in e], [])


class CommittedDefinition(ValidatorTestCase):
    def test_has_no_errors(self):
        errors, warnings = validate(committed())
        self.assertEqual(errors, [])
        # The only expected warning is the reminder to replace the placeholder key.
        self.assertEqual([w for w in warnings if "placeholder" not in w], [])

    def test_has_what_the_issue_asks_for(self):
        doc = committed()
        orchestrator = props(doc)["orchestratorProfile"]
        self.assertEqual(orchestrator["orchestratorVersion"], "1.24.17")
        self.assertEqual(props(doc)["masterProfile"]["count"], 3)
        self.assertIn(kube_config(doc)["networkPolicy"], ("azure", "calico"))
        self.assertEqual(kube_config(doc)["networkPlugin"], "azure")
        self.assertTrue(kube_config(doc)["enableRbac"])
        pool_names = {pool["name"] for pool in props(doc)["agentPoolProfiles"]}
        self.assertGreaterEqual(len(pool_names), 2)
        self.assertEqual({p["name"] for p in autoscaler(doc)["pools"]}, pool_names)
        for profile in [props(doc)["masterProfile"], *props(doc)["agentPoolProfiles"]]:
            self.assertEqual(profile["availabilityZones"], ["1", "2", "3"])
        self.assertNotIn("servicePrincipalProfile", props(doc))


class Schema(ValidatorTestCase):
    def test_is_valid_json_schema_2020_12(self):
        validate_module.jsonschema.Draft202012Validator.check_schema(validate_module.SCHEMA)

    def test_alone_accepts_the_committed_definition(self):
        # What an editor or another tool sees with the schema alone (no key renaming, no rules).
        errors = list(validate_module.VALIDATOR.iter_errors(committed()))
        self.assertEqual([e.message for e in errors], [])

    def test_a_value_of_the_wrong_type_gets_one_error(self):
        doc = committed()
        props(doc)["masterProfile"]["count"] = "3"
        errors, _ = validate(doc)
        self.assertEqual([e for e in errors if "masterProfile.count" in e],
                         ['properties.masterProfile.count: must be a JSON integer, got string "3"'])

    def test_null_is_absent_as_in_go(self):
        doc = committed()
        props(doc)["masterProfile"]["osDiskSizeGB"] = None
        props(doc)["masterProfile"]["ipAddressCount"] = None
        self.assertEqual(validate(doc)[0], [])

    def test_a_null_pool_is_an_error(self):
        doc = committed()
        props(doc)["agentPoolProfiles"].append(None)
        self.assertRejected(doc, "agentPoolProfiles[2]: must be a JSON object, got null")


class LoadRules(ValidatorTestCase):
    def test_api_version_must_be_vlabs(self):
        doc = committed()
        doc["apiVersion"] = "2017-07-01"
        self.assertRejected(doc, 'apiVersion: must be "vlabs"')

    def test_misspelled_top_level_key(self):
        doc = committed()
        props(doc)["mastrProfile"] = props(doc).pop("masterProfile")
        self.assertRejected(doc, "properties.mastrProfile: unknown key 'mastrProfile'")
        self.assertRejected(doc, "properties.masterProfile: is required")

    def test_misspelled_nested_key(self):
        doc = committed()
        config = kube_config(doc)
        config["networkPolcy"] = config.pop("networkPolicy")
        self.assertRejected(doc, "kubernetesConfig.networkPolcy: unknown key 'networkPolcy'")

    def test_misspelled_key_inside_a_list(self):
        doc = committed()
        props(doc)["agentPoolProfiles"][1]["avilabilityZones"] = ["1"]
        self.assertRejected(doc, "agentPoolProfiles[1].avilabilityZones: unknown key")

    def test_keys_match_case_insensitively_like_aks_engine(self):
        doc = committed()
        props(doc)["MasterProfile"] = props(doc).pop("masterProfile")
        kube_config(doc)["NETWORKPOLICY"] = kube_config(doc).pop("networkPolicy")
        self.assertEqual(validate(doc)[0], [])

    def test_two_spellings_of_one_key(self):
        doc = committed()
        props(doc)["masterprofile"] = copy.deepcopy(props(doc)["masterProfile"])
        self.assertRejected(doc, "duplicate key")

    def test_map_fields_accept_any_key(self):
        doc = committed()
        kube_config(doc)["kubeletConfig"] = {"--max-pods": "30", "--anything-at-all": "x"}
        autoscaler(doc)["config"]["expendable-pods-priority-cutoff"] = "-10"
        self.assertEqual(validate(doc)[0], [])

    def test_wrong_json_type(self):
        doc = committed()
        props(doc)["masterProfile"]["count"] = "3"
        self.assertRejected(doc, "masterProfile.count: must be a JSON integer")


class OrchestratorRules(ValidatorTestCase):
    def set_versions(self, release=None, version=None):
        doc = committed()
        orchestrator = props(doc)["orchestratorProfile"]
        for key, value in (("orchestratorRelease", release), ("orchestratorVersion", version)):
            if value is None:
                orchestrator.pop(key)
            else:
                orchestrator[key] = value
        return doc

    def test_versions_aks_engine_cannot_create(self):
        for version in ("1.25.0", "1.24.16", "1.19.16"):
            with self.subTest(version=version):
                doc = self.set_versions(release=None, version=version)
                self.assertRejected(doc, f"Kubernetes {version} cannot be created")

    def test_release_it_cannot_create(self):
        self.assertRejected(self.set_versions(release="1.25"), "release 1.25 cannot be created")

    def test_release_and_version_disagree(self):
        doc = self.set_versions(release="1.23", version="1.24.17")
        self.assertRejected(doc, "orchestratorRelease '1.23' and orchestratorVersion '1.24.17' disagree")

    def test_accepted_version_spellings(self):
        for release, version in (("1.24", None), (None, "1.24.17"), (None, "v1.24.17"), (None, None)):
            with self.subTest(release=release, version=version):
                self.assertNoError(self.set_versions(release, version))

    def test_orchestrator_type_dcos(self):
        doc = committed()
        props(doc)["orchestratorProfile"]["orchestratorType"] = "DCOS"
        self.assertRejected(doc, "orchestratorType: must be Kubernetes")

    def test_orchestrator_type_any_case(self):
        doc = committed()
        props(doc)["orchestratorProfile"]["orchestratorType"] = "kubernetes"
        self.assertNoError(doc)


class MasterRules(ValidatorTestCase):
    def test_master_count_2(self):
        doc = committed()
        props(doc)["masterProfile"]["count"] = 2
        self.assertRejected(doc, "masterProfile.count must be 1, 3 or 5, got 2")

    def test_one_master_is_a_vlabs_warning_and_a_project_error(self):
        doc = committed()
        props(doc)["masterProfile"]["count"] = 1
        errors, warnings = validate(doc)
        self.assertTrue(any("no redundancy" in w for w in warnings), warnings)
        self.assertTrue(any("project policy: at least 3 masters" in e for e in errors), errors)

    def test_bad_dns_prefixes(self):
        for prefix in ("ab", "-abc", "abc-", "a" * 46, "a_b", "1abc"):
            with self.subTest(prefix=prefix):
                doc = committed()
                props(doc)["masterProfile"]["dnsPrefix"] = prefix
                self.assertRejected(doc, f"dnsPrefix '{prefix}' is invalid")

    def test_dns_prefix_length_boundaries(self):
        for prefix in ("abc", "a" * 45, "A-b-9"):
            with self.subTest(prefix=prefix):
                doc = committed()
                props(doc)["masterProfile"]["dnsPrefix"] = prefix
                self.assertNoError(doc, "dnsPrefix")

    def test_missing_master_vm_size(self):
        doc = committed()
        del props(doc)["masterProfile"]["vmSize"]
        self.assertRejected(doc, "masterProfile.vmSize: is required")

    def test_vm_size_outside_allowlist(self):
        doc = committed()
        props(doc)["masterProfile"]["vmSize"] = "Standard_D2s_v9"
        self.assertRejected(doc, "vmSize 'Standard_D2s_v9' is not in the allowlist")


class PoolRules(ValidatorTestCase):
    def pool(self, doc, index=0):
        return props(doc)["agentPoolProfiles"][index]

    def test_bad_pool_names(self):
        for name in ("Agent1", "agentpool12345", "1pool", "pool-1"):
            with self.subTest(name=name):
                doc = committed()
                self.pool(doc)["name"] = name
                self.assertRejected(doc, f"pool name '{name}' is invalid")

    def test_duplicate_pool_name(self):
        doc = committed()
        self.pool(doc, 1)["name"] = self.pool(doc, 0)["name"]
        self.assertRejected(doc, "pool name 'system' is used twice")

    def test_missing_pool_vm_size(self):
        doc = committed()
        del self.pool(doc, 1)["vmSize"]
        self.assertRejected(doc, "agentPoolProfiles[1].vmSize: is required")

    def test_pool_count_range(self):
        doc = committed()
        self.pool(doc)["count"] = 1001
        self.assertRejected(doc, "agentPoolProfiles[0].count: must be between 1 and 1000")

    def test_mixed_availability_profiles(self):
        doc = committed()
        self.pool(doc, 1)["availabilityProfile"] = "AvailabilitySet"
        self.assertRejected(doc, "mixed availability profiles are not allowed")

    def test_pool_dns_prefix_and_ports_must_be_empty(self):
        doc = committed()
        self.pool(doc)["dnsPrefix"] = "agents"
        self.pool(doc)["ports"] = [80]
        self.assertRejected(doc, "agentPoolProfiles[0].dnsPrefix: must be empty")
        self.assertRejected(doc, "agentPoolProfiles[0].ports: must be empty")

    def test_vmss_with_storage_account(self):
        doc = committed()
        self.pool(doc)["storageProfile"] = "StorageAccount"
        self.assertRejected(doc, "do not support StorageAccount disks")

    def test_eviction_policy_with_regular_priority(self):
        doc = committed()
        self.pool(doc)["scaleSetPriority"] = "Regular"
        self.pool(doc)["scaleSetEvictionPolicy"] = "Delete"
        self.assertRejected(doc, "must be empty when scaleSetPriority is Regular")

    def test_too_many_data_disks(self):
        doc = committed()
        self.pool(doc)["diskSizesGB"] = [128] * 5
        self.assertRejected(doc, "at most 4 data disks")

    def test_windows_pool(self):
        doc = committed()
        self.pool(doc)["osType"] = "Windows"
        self.assertRejected(doc, "project policy: Linux pools only")

    def test_one_pool_is_not_enough(self):
        doc = committed()
        del props(doc)["agentPoolProfiles"][1]
        autoscaler(doc)["pools"].pop()
        self.assertRejected(doc, "project policy: at least 2 agent pools")


class LinuxProfileRules(ValidatorTestCase):
    def keys(self, doc):
        return props(doc)["linuxProfile"]["ssh"]["publicKeys"]

    def test_empty_key_data(self):
        doc = committed()
        self.keys(doc)[0]["keyData"] = ""
        self.assertRejected(doc, "KeyData in LinuxProfile.SSH.PublicKeys cannot be empty string")

    def test_empty_public_keys(self):
        doc = committed()
        self.keys(doc).clear()
        self.assertRejected(doc, "ssh.publicKeys: is required and needs at least one key")

    def test_key_data_that_is_not_a_key(self):
        for key in ("not-a-key", "ssh-dss AAAAB3NzaC1kc3M=", "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAI"):
            with self.subTest(key=key):
                doc = committed()
                self.keys(doc)[0]["keyData"] = key
                self.assertRejected(doc, "keyData")

    def test_missing_linux_profile(self):
        doc = committed()
        del props(doc)["linuxProfile"]
        self.assertRejected(doc, "properties.linuxProfile: is required")

    def test_missing_admin_username(self):
        doc = committed()
        del props(doc)["linuxProfile"]["adminUsername"]
        self.assertRejected(doc, "linuxProfile.adminUsername: is required")


class NetworkRules(ValidatorTestCase):
    def test_cilium_plugin_with_calico_policy(self):
        doc = committed()
        kube_config(doc).update(networkPlugin="cilium", networkPolicy="calico")
        self.assertRejected(doc, "networkPolicy 'calico' is not supported with networkPlugin 'cilium'")

    def test_empty_network_policy(self):
        doc = committed()
        del kube_config(doc)["networkPolicy"]
        self.assertRejected(doc, "NetworkPolicies are silently ignored")

    def test_azure_policy_is_allowed(self):
        doc = committed()
        kube_config(doc)["networkPolicy"] = "azure"
        self.assertNoError(doc)

    def test_standard_lb_without_excluding_masters(self):
        doc = committed()
        del kube_config(doc)["excludeMasterFromStandardLB"]
        self.assertRejected(doc, "set excludeMasterFromStandardLB to true")

    def test_basic_lb_with_zones(self):
        doc = committed()
        kube_config(doc)["loadBalancerSku"] = "Basic"
        self.assertRejected(doc, "availability zones need the Standard load balancer")

    def test_dns_service_ip_outside_service_cidr(self):
        doc = committed()
        kube_config(doc).update(serviceCidr="10.0.0.0/16", dnsServiceIP="10.1.0.10")
        self.assertRejected(doc, "is not within serviceCidr")

    def test_dns_service_ip_is_first_address(self):
        doc = committed()
        kube_config(doc).update(serviceCidr="10.0.0.0/16", dnsServiceIP="10.0.0.0")
        self.assertRejected(doc, "cannot be the first or broadcast address")

    def test_unknown_container_runtime(self):
        doc = committed()
        kube_config(doc)["containerRuntime"] = "cri-o"
        self.assertRejected(doc, "containerRuntime 'cri-o' is not one of")


class ClusterRules(ValidatorTestCase):
    def test_rbac_disabled(self):
        doc = committed()
        kube_config(doc)["enableRbac"] = False
        self.assertRejected(doc, "RBAC is required for Kubernetes 1.15 and later")

    def test_rbac_left_to_default(self):
        doc = committed()
        del kube_config(doc)["enableRbac"]
        self.assertRejected(doc, "project policy: set enableRbac to true")

    def test_service_principal_needed_without_managed_identity(self):
        doc = committed()
        kube_config(doc)["useManagedIdentity"] = False
        self.assertRejected(doc, "servicePrincipalProfile: is required when useManagedIdentity is false")

    def test_committed_client_secret(self):
        doc = committed()
        kube_config(doc)["useManagedIdentity"] = False
        props(doc)["servicePrincipalProfile"] = {"clientId": "x", "secret": "hunter2"}
        self.assertRejected(doc, "never commit a client secret")

    def test_kube_dns_and_coredns(self):
        doc = committed()
        kube_config(doc)["addons"] += [
            {"name": "kube-dns", "enabled": True},
            {"name": "coredns", "enabled": True},
        ]
        self.assertRejected(doc, "kube-dns and coredns are both enabled")

    def test_missing_zones_are_only_a_warning(self):
        doc = committed()
        del props(doc)["agentPoolProfiles"][1]["availabilityZones"]
        errors, warnings = validate(doc)
        self.assertEqual(errors, [])
        self.assertTrue(any("agentPoolProfiles[1].availabilityZones: not set" in w for w in warnings), warnings)

    def test_unknown_zone(self):
        doc = committed()
        props(doc)["masterProfile"]["availabilityZones"] = ["1", "2", "4"]
        self.assertRejected(doc, "zones must be distinct values")


class AutoscalerRules(ValidatorTestCase):
    def test_pool_that_does_not_exist(self):
        doc = committed()
        autoscaler(doc)["pools"][0]["name"] = "nosuchpool"
        self.assertRejected(doc, "cluster-autoscaler pool 'nosuchpool' does not match any agentPoolProfiles name")

    def test_min_greater_than_max(self):
        doc = committed()
        autoscaler(doc)["pools"][0]["config"] = {"min-nodes": "5", "max-nodes": "3"}
        self.assertRejected(doc, "min-nodes 5 is greater than max-nodes 3")

    def test_min_nodes_as_a_number(self):
        doc = committed()
        autoscaler(doc)["pools"][0]["config"]["min-nodes"] = 3
        self.assertRejected(doc, "config.min-nodes: must be a JSON string")

    def test_min_nodes_not_an_integer(self):
        doc = committed()
        autoscaler(doc)["pools"][0]["config"]["min-nodes"] = "three"
        self.assertRejected(doc, "must be a string holding a non-negative integer")

    def test_cluster_wide_config_as_a_number(self):
        doc = committed()
        autoscaler(doc)["config"]["scan-interval"] = 60
        self.assertRejected(doc, "config.scan-interval: must be a JSON string")

    def test_availability_set_pools(self):
        doc = committed()
        for pool in props(doc)["agentPoolProfiles"]:
            pool["availabilityProfile"] = "AvailabilitySet"
        self.assertRejected(doc, "cluster-autoscaler addon can only be used with VirtualMachineScaleSets")

    def test_autoscaler_disabled(self):
        doc = committed()
        autoscaler(doc)["enabled"] = False
        self.assertRejected(doc, "project policy: enable the cluster-autoscaler addon")

    def test_unlisted_pool_is_a_warning(self):
        doc = committed()
        autoscaler(doc)["pools"].pop()
        errors, warnings = validate(doc)
        self.assertEqual(errors, [])
        self.assertTrue(any("pool 'workload' is not listed" in w for w in warnings), warnings)


class CommandLine(unittest.TestCase):
    def run_cli(self, *paths):
        return subprocess.run(
            [sys.executable, str(VALIDATOR), *map(str, paths)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def write_temp(self, text):
        handle = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8")
        with handle:
            handle.write(text)
        self.addCleanup(Path(handle.name).unlink)
        return handle.name

    def test_committed_file_exits_0(self):
        result = self.run_cli(DEFINITION)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn(f"OK {DEFINITION}", result.stdout)

    def test_bad_file_exits_1_with_one_line_per_error(self):
        doc = committed()
        props(doc)["masterProfile"]["count"] = 2
        path = self.write_temp(json.dumps(doc))
        result = self.run_cli(path)
        self.assertEqual(result.returncode, 1)
        self.assertIn(f"{path}: properties.masterProfile.count: masterProfile.count must be 1, 3 or 5", result.stdout)
        self.assertNotIn(f"OK {path}", result.stdout)

    def test_invalid_json_exits_1(self):
        path = self.write_temp('{"apiVersion": "vlabs",')
        result = self.run_cli(path)
        self.assertEqual(result.returncode, 1)
        self.assertIn(f"{path}: (file): cannot load", result.stdout)

    def test_duplicate_json_key_exits_1(self):
        path = self.write_temp('{"apiVersion": "vlabs", "apiVersion": "vlabs", "properties": {}}')
        result = self.run_cli(path)
        self.assertEqual(result.returncode, 1)
        self.assertIn("duplicate key(s) apiVersion", result.stdout)

    def test_no_arguments_is_a_usage_error(self):
        self.assertEqual(self.run_cli().returncode, 2)


if __name__ == "__main__":
    unittest.main()
