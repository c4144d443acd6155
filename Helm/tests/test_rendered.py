"""Unit tests over the rendered chart: what a reviewer would check by hand in every pod and policy.

Run from the repository root (scripts/check-helm.sh does):
    .tools/kv-current/bin/python -m unittest discover -s Helm/tests -p 'test_*.py'
The chart is rendered with .tools/bin/helm (or $HELM); PyYAML comes with kubernetes-validate.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import re
import subprocess
import sys
import unittest
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the work tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import chart_checks  # noqa: E402  (the render helper, next to this file)
import yaml  # noqa: E402  (chart_checks exits with a hint when PyYAML is missing)

CHART = chart_checks.CHART
REPO = chart_checks.REPO
PROD = ["-f", str(chart_checks.production_values())]  # after the release step
OLD = ["--kube-version", "1.24.17"]
ALT = ["-f", str(CHART / "tests" / "alternative-values.yaml")]
APP_COMPONENTS = ["publisher", "aggregator", "bitcoin-api", "rest-api"]
LINK_LOCAL = ipaddress.ip_network("169.254.0.0/16")

_cache: dict[tuple[str, ...], list[dict]] = {}


def render(*args: str) -> list[dict]:
    if args not in _cache:
        _cache[args] = chart_checks.render(*args)
    return _cache[args]


def renders(alternatives: bool = True):
    """The value sets the structural tests run over; without the alternatives (which switch off
    NetworkPolicies, the Ingress, HPAs and a PDB) for the tests of those objects."""
    sets = {"defaults": render(), "production": render(*PROD), "defaults-1.24": render(*OLD)}
    if alternatives:
        sets["alternatives"] = render(*ALT)
    return sets


def of_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def component(doc) -> str:
    return doc["metadata"]["labels"].get("app.kubernetes.io/component", "")


def pod_specs(docs):
    """(name, pod spec, pod metadata) of every Deployment's template and every bare Pod."""
    for d in docs:
        if d["kind"] == "Deployment":
            yield d["metadata"]["name"], d["spec"]["template"]["spec"], d["spec"]["template"]["metadata"]
        elif d["kind"] == "Pod":
            yield d["metadata"]["name"], d["spec"], d["metadata"]


def containers(spec):
    return [*spec.get("initContainers", []), *spec["containers"], *spec.get("ephemeralContainers", [])]


def env_of(container) -> dict:
    return {e["name"]: e for e in container.get("env", [])}


def by_name(docs, kind, suffix):
    found = [d for d in of_kind(docs, kind) if d["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, f"{kind} *{suffix}: {len(found)} found"
    return found[0]


class PodSecurity(unittest.TestCase):
    def test_every_pod_meets_pss_restricted(self):
        for label, docs in renders().items():
            for name, spec, _ in pod_specs(docs):
                with self.subTest(render=label, pod=name):
                    psc = spec.get("securityContext", {})
                    self.assertFalse(spec.get("hostNetwork", False))
                    self.assertFalse(spec.get("hostPID", False))
                    self.assertFalse(spec.get("hostIPC", False))
                    for v in spec.get("volumes", []):
                        self.assertNotIn("hostPath", v, v["name"])
                        allowed = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                                   "persistentVolumeClaim", "projected", "secret"}
                        self.assertTrue(set(v) - {"name"} <= allowed, v)
                    self.assertEqual(psc.get("seccompProfile", {}).get("type"), "RuntimeDefault")
                    self.assertTrue(psc.get("runAsNonRoot"))
                    self.assertNotEqual(psc.get("runAsUser"), 0)
                    for c in containers(spec):
                        sc = c.get("securityContext", {})
                        self.assertIs(sc.get("allowPrivilegeEscalation"), False, c["name"])
                        self.assertIs(sc.get("privileged", False), False, c["name"])
                        self.assertEqual(sc.get("capabilities", {}).get("drop"), ["ALL"], c["name"])
                        self.assertFalse(set(sc.get("capabilities", {}).get("add", [])) - {"NET_BIND_SERVICE"})
                        self.assertNotEqual(sc.get("runAsUser", psc.get("runAsUser")), 0)
                        self.assertIn(sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type"),
                                      ("RuntimeDefault", "Localhost"))
                        self.assertNotIn("hostPort", str(c.get("ports", [])))

    def test_root_filesystem_is_read_only_with_an_in_memory_tmp(self):
        for label, docs in renders().items():
            for name, spec, _ in pod_specs(docs):
                with self.subTest(render=label, pod=name):
                    for c in containers(spec):
                        self.assertIs(c["securityContext"].get("readOnlyRootFilesystem"), True)
                        self.assertIn("/tmp", [m["mountPath"] for m in c.get("volumeMounts", [])])
                    tmp = [v for v in spec["volumes"] if v["name"] == "tmp"][0]
                    self.assertEqual(tmp["emptyDir"].get("medium"), "Memory")
                    self.assertTrue(tmp["emptyDir"].get("sizeLimit"))

    def test_no_service_account_token_is_mounted(self):
        for label, docs in renders().items():
            for name, spec, _ in pod_specs(docs):
                with self.subTest(render=label, pod=name):
                    self.assertIs(spec.get("automountServiceAccountToken"), False)
            for sa in of_kind(docs, "ServiceAccount"):
                self.assertIs(sa.get("automountServiceAccountToken"), False)

    def test_every_container_has_requests_and_limits(self):
        for label, docs in renders().items():
            for name, spec, _ in pod_specs(docs):
                for c in containers(spec):
                    with self.subTest(render=label, pod=name):
                        for kind in ("requests", "limits"):
                            self.assertTrue({"cpu", "memory"} <= set(c["resources"][kind]), c["resources"])


class Images(unittest.TestCase):
    def test_images_are_pinned(self):
        for label, docs in renders().items():
            for name, spec, _ in pod_specs(docs):
                for c in containers(spec):
                    with self.subTest(render=label, pod=name):
                        image = c["image"]
                        ref = image.split("@", 1)[0]
                        tag = ref.rsplit(":", 1)[1] if ":" in ref.rsplit("/", 1)[-1] else ""
                        self.assertTrue(tag or "@sha256:" in image, f"{image}: neither tag nor digest")
                        self.assertNotEqual(tag, "latest", image)
                        if "@" in image:
                            self.assertRegex(image, r"@sha256:[0-9a-f]{64}$")

    def test_production_and_the_test_pod_pin_by_digest(self):
        for name, spec, _ in pod_specs(render(*PROD)):
            for c in containers(spec):
                self.assertRegex(c["image"], r"@sha256:[0-9a-f]{64}$", name)
        test_pod = by_name(render(), "Pod", "-test")
        self.assertRegex(test_pod["spec"]["containers"][0]["image"], r"^busybox:1\.36\.1@sha256:[0-9a-f]{64}$")

    def test_latest_is_refused(self):
        with self.assertRaises(subprocess.CalledProcessError):
            chart_checks.render("--set", "tests.image.tag=", "--set", "tests.image.digest=")

    def test_each_deployment_runs_its_own_binary(self):
        for d in of_kind(render(), "Deployment"):
            c = d["spec"]["template"]["spec"]["containers"][0]
            self.assertEqual(c["command"], [f"/usr/local/bin/{component(d)}"])


class Probes(unittest.TestCase):
    def test_liveness_and_readiness_probe_different_paths(self):
        for label, docs in renders().items():
            for d in of_kind(docs, "Deployment"):
                c = d["spec"]["template"]["spec"]["containers"][0]
                with self.subTest(render=label, deployment=d["metadata"]["name"]):
                    live = c["livenessProbe"]["httpGet"]["path"]
                    ready = c["readinessProbe"]["httpGet"]["path"]
                    self.assertEqual(live, "/liveness")
                    self.assertEqual(ready, "/readiness")
                    self.assertNotEqual(live, ready)
                    self.assertEqual(c["startupProbe"]["httpGet"]["path"], "/liveness")
                    self.assertGreater(c["livenessProbe"]["failureThreshold"],
                                       c["readinessProbe"]["failureThreshold"])
                    # Frontends are probed on the port that serves their traffic; workers have only ops.
                    port = "http" if component(d) in ("bitcoin-api", "rest-api") else "ops"
                    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                        self.assertEqual(c[probe]["httpGet"]["port"], port, probe)

    def test_liveness_threshold_not_above_readiness_is_refused(self):
        with self.assertRaises(subprocess.CalledProcessError):
            chart_checks.render("--set", "probes.liveness.failureThreshold=3")

    def test_grace_period_covers_the_shutdown_delay_and_drain(self):
        for d in of_kind(render(), "Deployment"):
            spec = d["spec"]["template"]["spec"]
            self.assertGreaterEqual(spec["terminationGracePeriodSeconds"], 5 + 10 + 10)

    def test_nothing_kubernetes_1_24_lacks(self):
        for label, docs in renders().items():
            text = yaml.safe_dump_all(docs)
            with self.subTest(render=label):
                for field in ("sleep:", "matchLabelKeys", "unhealthyPodEvictionPolicy", "minDomains"):
                    self.assertNotIn(field, text)


class Configuration(unittest.TestCase):
    def env(self, docs, comp):
        cm = by_name(docs, "ConfigMap", f"-{comp}")["data"]
        c = by_name(docs, "Deployment", f"-{comp}")["spec"]["template"]["spec"]["containers"][0]
        return cm, env_of(c)

    def test_aggregator_consumer_name_is_the_pod_name(self):
        for label, docs in renders().items():
            _, env = self.env(docs, "aggregator")
            with self.subTest(render=label):
                self.assertEqual(env["CONSUMER_NAME"]["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name")

    def test_pods_know_their_name_from_the_downward_api(self):
        for label, docs in renders().items():
            for comp in ("publisher", "aggregator", "bitcoin-api", "rest-api"):
                _, env = self.env(docs, comp)
                with self.subTest(render=label, component=comp):
                    # apiVersion explicit: the API server adds it, and a GitOps diff would flap without it.
                    self.assertEqual(env["POD_NAME"]["valueFrom"]["fieldRef"],
                                     {"apiVersion": "v1", "fieldPath": "metadata.name"})
                    for var in env.values():
                        if "fieldRef" in var.get("valueFrom", {}):
                            self.assertEqual(var["valueFrom"]["fieldRef"]["apiVersion"], "v1")

    def test_service_settings(self):
        docs = render()
        pub, _ = self.env(docs, "publisher")
        self.assertEqual(pub["OPS_ADDR"], "0.0.0.0:9090")
        self.assertEqual(pub["NATS_REPLICAS"], "3")
        self.assertEqual(pub["TICKS_MAX_AGE"], "24h")
        self.assertEqual(pub["TICKS_MAX_BYTES"], "1073741824")
        self.assertEqual(pub["POLL_INTERVAL"], "1s")
        self.assertEqual(pub["ROUND_DEADLINE_FRACTION"], "0.8")
        self.assertEqual(pub["RATE_LIMIT_BACKOFF"], "30s")
        self.assertEqual(pub["LEASE_TTL"], "3s")
        self.assertEqual(pub["QUORUM"], "3")
        self.assertEqual(pub["OUTLIER_THRESHOLD"], "0.02")
        self.assertEqual(pub["LOG_FORMAT"], "json")
        agg, _ = self.env(docs, "aggregator")
        self.assertEqual(agg["OPS_ADDR"], "0.0.0.0:9091")
        self.assertEqual(agg["AVERAGE_WINDOW"], "10m")
        self.assertEqual(agg["MAX_HOLD"], "5s")
        self.assertEqual(agg["NATS_REPLICAS"], "3")
        for comp, port, ops in (("bitcoin-api", 8080, 9092), ("rest-api", 8081, 9093)):
            cm, _ = self.env(docs, comp)
            self.assertEqual(cm["LISTEN_ADDR"], f"0.0.0.0:{port}")
            self.assertEqual(cm["OPS_ADDR"], f"0.0.0.0:{ops}")
            # An outsider's traceparent is only linked unless the operator says otherwise.
            self.assertEqual(cm["TRUST_INCOMING_TRACE_CONTEXT"], "false")
            # Only bitcoin-api serves a price that can turn stale.
            self.assertEqual(cm.get("STALE_AFTER"), "30s" if comp == "bitcoin-api" else None)
            self.assertEqual(cm["SHUTDOWN_DELAY"], "5s")
            self.assertNotIn("NATS_REPLICAS", cm)
            # 0: the binary's own default, one worker per CPU it may use.
            self.assertNotIn("WORKER_THREADS", cm)
        self.assertNotIn("OTEL_EXPORTER_OTLP_ENDPOINT", pub)
        self.assertNotIn("OTEL_EXPORTER_OTLP_PROTOCOL", pub)
        prod_pub, _ = self.env(render(*PROD), "publisher")
        self.assertTrue(prod_pub["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http"))

    def test_rest_api_needs_no_nats(self):
        # Its `/` answers from nothing: no NATS URL, credentials, TLS files or egress to NATS.
        for label, docs in renders().items():
            with self.subTest(render=label):
                cm, env = self.env(docs, "rest-api")
                self.assertFalse([k for k in list(cm) + list(env) if k.startswith("NATS_")], (cm, env))
                spec = next(d for d in of_kind(docs, "Deployment") if component(d) == "rest-api")["spec"]["template"]["spec"]
                self.assertNotIn("nats-tls", [v["name"] for v in spec.get("volumes", [])])
                for policy in of_kind(docs, "NetworkPolicy"):
                    if policy["metadata"]["name"].endswith("-nats"):
                        selector = policy["spec"]["podSelector"]["matchExpressions"][0]["values"]
                        self.assertNotIn("rest-api", selector)

    def test_the_otlp_protocol_is_http_protobuf_or_grpc_and_nothing_else(self):
        for comp in APP_COMPONENTS:
            cm, _ = self.env(render(*PROD), comp)
            self.assertEqual(cm["OTEL_EXPORTER_OTLP_PROTOCOL"], "http/protobuf", comp)
            cm, _ = self.env(render(*PROD, "--set", "tracing.otlpProtocol=grpc"), comp)
            self.assertEqual(cm["OTEL_EXPORTER_OTLP_PROTOCOL"], "grpc", comp)
        # The services would refuse to start with any other value; the schema refuses it first.
        with self.assertRaises(subprocess.CalledProcessError) as refused:
            chart_checks.render(*PROD, "--set", "tracing.otlpProtocol=http/json")
        self.assertIn("otlpProtocol", refused.exception.stderr)

    def test_each_role_reads_its_own_credentials_from_a_secret(self):
        docs = render()
        secret = of_kind(docs, "Secret")[0]
        for comp, role in (("publisher", "publisher"), ("aggregator", "aggregator"),
                           ("bitcoin-api", "frontend")):
            cm, env = self.env(docs, comp)
            self.assertNotIn("NATS_PASSWORD", cm)
            ref = env["NATS_PASSWORD"]["valueFrom"]["secretKeyRef"]
            self.assertEqual(ref["name"], secret["metadata"]["name"])
            self.assertEqual(ref["key"], f"{role}-password")
            self.assertIn(ref["key"], secret["data"])

    def test_existing_secret_replaces_the_chart_secret(self):
        docs = render(*PROD)
        self.assertEqual(of_kind(docs, "Secret"), [])
        _, env = self.env(docs, "publisher")
        self.assertEqual(env["NATS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"], "btc-price-nats")

    def test_pods_carry_a_config_checksum_that_follows_the_config(self):
        def checksums(docs):
            return {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
                    for d in of_kind(docs, "Deployment")}
        for label, docs in renders().items():
            for name, value in checksums(docs).items():
                with self.subTest(render=label, deployment=name):
                    self.assertRegex(value, r"^[0-9a-f]{64}$")
        before = checksums(render())
        after = checksums(render("--set", "publisher.quorum=4"))
        changed = {n for n in before if before[n] != after[n]}
        self.assertEqual(changed, {"btc-price-publisher"})

    def test_every_namespaced_object_has_the_release_namespace(self):
        for label, docs in renders().items():
            for d in docs:
                with self.subTest(render=label, kind=d["kind"], name=d["metadata"]["name"]):
                    self.assertIn(d["kind"], chart_checks.NAMESPACED_KINDS)
                    self.assertEqual(d["metadata"].get("namespace"), "btc")

    def test_standard_labels(self):
        for d in render(*PROD):
            labels = d["metadata"]["labels"]
            for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component",
                        "app.kubernetes.io/version", "app.kubernetes.io/managed-by", "helm.sh/chart"):
                self.assertIn(key, labels, d["metadata"]["name"])


class AlternativeSettings(unittest.TestCase):
    """tests/alternative-values.yaml: the switches the default and production values leave on or off."""

    def test_switched_off_objects_are_gone(self):
        kinds = {d["kind"] for d in render(*ALT)}
        for kind in ("NetworkPolicy", "Ingress", "HorizontalPodAutoscaler", "Secret", "ServiceAccount"):
            self.assertNotIn(kind, kinds)
        self.assertEqual({component(p) for p in of_kind(render(*ALT), "PodDisruptionBudget")},
                         {"aggregator", "bitcoin-api", "rest-api"})

    def test_tls_without_passwords(self):
        docs = render(*ALT)
        for d in of_kind(docs, "Deployment"):
            spec = d["spec"]["template"]["spec"]
            c = spec["containers"][0]
            self.assertNotIn("NATS_PASSWORD", env_of(c))
            self.assertNotIn("checksum/secret", d["spec"]["template"]["metadata"]["annotations"])
            if component(d) == "rest-api":
                continue  # no NATS at all
            self.assertIn({"name": "nats-tls", "mountPath": "/etc/nats-tls", "readOnly": True}, c["volumeMounts"])
            self.assertEqual([v["secret"]["secretName"] for v in spec["volumes"] if v["name"] == "nats-tls"],
                             ["nats-client-tls"])
            self.assertEqual(spec["serviceAccountName"], "default")
            self.assertEqual(spec["imagePullSecrets"], [{"name": "registry-credentials"}])
            self.assertNotIn("topologySpreadConstraints", spec)
            self.assertEqual(d["metadata"]["labels"]["team"], "pricing")
        cm = by_name(docs, "ConfigMap", "btc-bitcoin-api")["data"]
        self.assertEqual((cm["NATS_TLS_CA"], cm["NATS_TLS_CERT"], cm["NATS_TLS_KEY"]),
                         ("/etc/nats-tls/ca.crt", "/etc/nats-tls/tls.crt", "/etc/nats-tls/tls.key"))

    def test_fixed_replicas_and_extra_env(self):
        docs = render(*ALT)
        self.assertEqual(by_name(docs, "Deployment", "btc-bitcoin-api")["spec"]["replicas"], 3)
        pub = by_name(docs, "Deployment", "btc-publisher")["spec"]["template"]["spec"]["containers"][0]
        self.assertEqual(env_of(pub)["TICKS_DUPLICATE_WINDOW"], {"name": "TICKS_DUPLICATE_WINDOW", "value": "1m"})
        self.assertEqual(by_name(docs, "ConfigMap", "btc-publisher")["data"]["SOURCE_URLS"],
                         "kraken=http://kraken-standin:9001")
        self.assertEqual(by_name(docs, "ConfigMap", "btc-bitcoin-api")["data"]["WORKER_THREADS"], "2")

    def test_tls_needs_a_secret_name(self):
        with self.assertRaises(subprocess.CalledProcessError):
            chart_checks.render("--set", "nats.tls.enabled=true")


class Availability(unittest.TestCase):
    def test_every_component_has_a_pdb_that_never_blocks_a_drain(self):
        for label, docs in renders(alternatives=False).items():
            pdbs = {component(p): p for p in of_kind(docs, "PodDisruptionBudget")}
            self.assertEqual(set(pdbs), set(APP_COMPONENTS))
            for comp, pdb in pdbs.items():
                with self.subTest(render=label, pdb=comp):
                    spec = pdb["spec"]
                    if "maxUnavailable" in spec:
                        self.assertGreaterEqual(int(spec["maxUnavailable"]), 1)
                    else:
                        dep = by_name(docs, "Deployment", f"-{comp}")
                        self.assertLess(int(spec["minAvailable"]), dep["spec"].get("replicas", 2))

    def test_frontends_autoscale_from_two(self):
        for label, docs in renders(alternatives=False).items():
            hpas = {component(h): h for h in of_kind(docs, "HorizontalPodAutoscaler")}
            self.assertEqual(set(hpas), {"bitcoin-api", "rest-api"})
            for comp, hpa in hpas.items():
                self.assertEqual(hpa["apiVersion"], "autoscaling/v2")
                self.assertGreaterEqual(hpa["spec"]["minReplicas"], 2)
                self.assertNotIn("replicas", by_name(docs, "Deployment", f"-{comp}")["spec"],
                                 "the HPA owns the replica count")

    def test_pods_spread_over_zones_and_nodes(self):
        for d in of_kind(render(), "Deployment"):
            tsc = d["spec"]["template"]["spec"]["topologySpreadConstraints"]
            self.assertEqual({t["topologyKey"] for t in tsc},
                             {"topology.kubernetes.io/zone", "kubernetes.io/hostname"})
            for t in tsc:
                self.assertEqual(t["maxSkew"], 1)
                self.assertEqual(t["whenUnsatisfiable"], "ScheduleAnyway")
                self.assertEqual(t["labelSelector"]["matchLabels"],
                                 d["spec"]["selector"]["matchLabels"])


class NetworkPolicies(unittest.TestCase):
    def policies(self, docs):
        return of_kind(docs, "NetworkPolicy")

    @staticmethod
    def selects(policy, labels) -> bool:
        sel = policy["spec"]["podSelector"]
        if any(labels.get(k) != v for k, v in sel.get("matchLabels", {}).items()):
            return False
        for e in sel.get("matchExpressions", []):
            assert e["operator"] == "In", e
            if labels.get(e["key"]) not in e["values"]:
                return False
        return True

    def pod_labels(self, docs):
        return {name: meta["labels"] for name, _, meta in pod_specs(docs)}

    def test_default_deny_covers_every_pod(self):
        for label, docs in renders(alternatives=False).items():
            deny = [p for p in self.policies(docs) if p["metadata"]["name"].endswith("-default-deny")]
            self.assertEqual(len(deny), 1)
            spec = deny[0]["spec"]
            self.assertEqual(sorted(spec["policyTypes"]), ["Egress", "Ingress"])
            self.assertNotIn("ingress", spec)
            self.assertNotIn("egress", spec)
            for name, labels in self.pod_labels(docs).items():
                self.assertTrue(self.selects(deny[0], labels), name)

    def test_ingress_controller_rule_is_one_from_element_with_both_selectors(self):
        for label, docs in renders(alternatives=False).items():
            for comp, port, ops in (("bitcoin-api", 8080, 9092), ("rest-api", 8081, 9093)):
                pol = by_name(docs, "NetworkPolicy", f"-{comp}")
                rules = [r for r in pol["spec"]["ingress"]
                         if any(p.get("namespaceSelector", {}).get("matchLabels", {})
                                .get("kubernetes.io/metadata.name") == "ingress-nginx" for p in r["from"])]
                with self.subTest(render=label, component=comp):
                    self.assertEqual(len(rules), 1)
                    self.assertEqual(len(rules[0]["from"]), 1, "namespace and pods must be ANDed in ONE element")
                    peer = rules[0]["from"][0]
                    self.assertEqual(peer["podSelector"]["matchLabels"], {"app.kubernetes.io/name": "ingress-nginx"})
                    self.assertEqual(rules[0]["ports"], [{"port": "http", "protocol": "TCP"}])
                    dep = by_name(docs, "Deployment", f"-{comp}")
                    ports = dep["spec"]["template"]["spec"]["containers"][0]["ports"]
                    self.assertEqual(ports, [{"name": "http", "containerPort": port, "protocol": "TCP"},
                                             {"name": "ops", "containerPort": ops, "protocol": "TCP"}])

    def test_no_from_element_mixes_a_namespace_with_the_whole_of_ours(self):
        """Every peer that names a namespace also narrows to pods, except Prometheus when told so."""
        for pol in self.policies(render()):
            for rule in pol["spec"].get("ingress", []) + pol["spec"].get("egress", []):
                for peer in rule.get("from", []) + rule.get("to", []):
                    if "namespaceSelector" in peer:
                        self.assertIn("podSelector", peer, pol["metadata"]["name"])

    def test_dns_egress_on_53_udp_and_tcp_for_every_pod(self):
        for label, docs in renders(alternatives=False).items():
            dns = by_name(docs, "NetworkPolicy", "-dns")
            rule = dns["spec"]["egress"][0]
            with self.subTest(render=label):
                self.assertEqual(sorted((p["port"], p["protocol"]) for p in rule["ports"]),
                                 [(53, "TCP"), (53, "UDP")])
                peer = rule["to"][0]
                self.assertEqual(peer["namespaceSelector"]["matchLabels"], {"kubernetes.io/metadata.name": "kube-system"})
                self.assertEqual(peer["podSelector"]["matchLabels"], {"k8s-app": "kube-dns"})
                for name, labels in self.pod_labels(docs).items():
                    self.assertTrue(self.selects(dns, labels), name)

    def test_nats_egress_on_4222_for_the_services_that_use_nats(self):
        for label, docs in renders(alternatives=False).items():
            nats = by_name(docs, "NetworkPolicy", "-nats")
            rule = nats["spec"]["egress"][0]
            self.assertEqual(rule["ports"], [{"port": 4222, "protocol": "TCP"}])
            self.assertEqual(rule["to"][0]["namespaceSelector"]["matchLabels"], {"kubernetes.io/metadata.name": "nats"})
            labels = self.pod_labels(docs)
            for name, pl in labels.items():
                uses_nats = pl["app.kubernetes.io/component"] in set(APP_COMPONENTS) - {"rest-api"}
                self.assertEqual(self.selects(nats, pl), uses_nats, name)

    def test_only_the_publisher_leaves_the_cluster_and_only_on_443(self):
        for label, docs in renders(alternatives=False).items():
            for pol in self.policies(docs):
                for rule in pol["spec"].get("egress", []):
                    blocks = [p["ipBlock"] for p in rule["to"] if "ipBlock" in p]
                    if not blocks:
                        continue
                    with self.subTest(render=label, policy=pol["metadata"]["name"]):
                        self.assertTrue(pol["metadata"]["name"].endswith("-publisher"))
                        self.assertEqual(rule["ports"], [{"port": 443, "protocol": "TCP"}])
                        self.assertEqual(blocks[0]["except"],
                                         ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"])

    def test_no_egress_reaches_link_local_169_254(self):
        for label, docs in renders(alternatives=False).items():
            for pol in self.policies(docs):
                for rule in pol["spec"].get("egress", []):
                    for peer in rule.get("to", []):
                        if "ipBlock" not in peer:
                            continue
                        block = peer["ipBlock"]
                        cidr = ipaddress.ip_network(block["cidr"])
                        excepted = [ipaddress.ip_network(e) for e in block.get("except", [])]
                        with self.subTest(render=label, policy=pol["metadata"]["name"], cidr=str(cidr)):
                            if cidr.overlaps(LINK_LOCAL):
                                self.assertTrue(any(LINK_LOCAL.subnet_of(e) for e in excepted),
                                                f"{cidr} reaches 169.254.0.0/16 (cloud metadata)")
                    self.assertTrue(rule.get("to"), "an egress rule without `to` allows every address")

    def test_prometheus_reaches_every_ops_port_and_only_it(self):
        for docs in (render(), render(*PROD)):
            for comp in APP_COMPONENTS:
                pol = by_name(docs, "NetworkPolicy", f"-{comp}")
                mon = [r for r in pol["spec"]["ingress"]
                       if r["from"][0].get("namespaceSelector", {}).get("matchLabels", {})
                       .get("kubernetes.io/metadata.name") == "monitoring"]
                self.assertEqual(len(mon), 1, comp)
                self.assertEqual(mon[0]["ports"], [{"port": "ops", "protocol": "TCP"}])
                # Nobody else reaches the ops port, where /metrics is.
                others = [r for r in pol["spec"]["ingress"] if r is not mon[0]]
                self.assertTrue(all(p["port"] == "http" for r in others for p in r["ports"]), comp)
                svc = by_name(docs, "Service", f"-{comp}")
                ports = {p["name"]: (p["port"], p["targetPort"]) for p in svc["spec"]["ports"]}
                frontend = comp in ("bitcoin-api", "rest-api")
                self.assertEqual(sorted(ports), ["http", "ops"] if frontend else ["ops"], comp)
                self.assertEqual(ports["ops"][1], "ops")
                dep = by_name(docs, "Deployment", f"-{comp}")
                declared = {p["name"] for p in dep["spec"]["template"]["spec"]["containers"][0]["ports"]}
                self.assertEqual(declared, set(ports), comp)

    def test_a_frontend_s_ops_port_must_differ_from_its_api_port(self):
        with self.assertRaises(subprocess.CalledProcessError):
            chart_checks.render("--set", "restApi.opsPort=8081")

    def test_the_test_pod_can_reach_both_frontends(self):
        docs = render()
        test_labels = by_name(docs, "Pod", "-test")["metadata"]["labels"]
        egress = by_name(docs, "NetworkPolicy", "-test")
        self.assertTrue(self.selects(egress, test_labels))
        self.assertEqual(sorted(r["ports"][0]["port"] for r in egress["spec"]["egress"]), [8080, 8081])
        for comp in ("bitcoin-api", "rest-api"):
            pol = by_name(docs, "NetworkPolicy", f"-{comp}")
            peers = [r["from"][0] for r in pol["spec"]["ingress"] if "namespaceSelector" not in r["from"][0]]
            self.assertEqual(len(peers), 1)
            self.assertTrue(all(test_labels.get(k) == v for k, v in peers[0]["podSelector"]["matchLabels"].items()))

    def test_otlp_egress_only_when_enabled(self):
        self.assertEqual([p for p in self.policies(render()) if p["metadata"]["name"].endswith("-otlp")], [])
        otlp = by_name(render(*PROD), "NetworkPolicy", "-otlp")
        self.assertEqual(otlp["spec"]["egress"][0]["ports"], [{"port": 4318, "protocol": "TCP"}])


class Exposure(unittest.TestCase):
    def test_ingress_routes_btc_and_root(self):
        for label, docs in renders(alternatives=False).items():
            ing = of_kind(docs, "Ingress")[0]
            with self.subTest(render=label):
                self.assertEqual(ing["apiVersion"], "networking.k8s.io/v1")
                self.assertEqual(ing["spec"]["ingressClassName"], "nginx")
                for rule in ing["spec"]["rules"]:
                    paths = {p["path"]: (p["pathType"], p["backend"]["service"]["name"]) for p in rule["http"]["paths"]}
                    # rest-api's `/` is exact: a Prefix `/` would hand it every other path.
                    self.assertEqual(paths, {"/btc": ("Prefix", "btc-price-bitcoin-api"), "/": ("Exact", "btc-price-rest-api")})
                    ports = {p["backend"]["service"]["port"]["name"] for p in rule["http"]["paths"]}
                    self.assertEqual(ports, {"http"})

    def test_docs_and_specs_are_routed_only_when_asked(self):
        ing = of_kind(render("--set", "ingress.exposeDocs=true"), "Ingress")[0]
        paths = {p["path"]: (p["pathType"], p["backend"]["service"]["name"]) for p in ing["spec"]["rules"][0]["http"]["paths"]}
        btc = "btc-price-bitcoin-api"
        self.assertEqual(paths, {"/btc": ("Prefix", btc), "/": ("Exact", "btc-price-rest-api"), "/docs": ("Prefix", btc),
                                 "/openapi.json": ("Exact", btc), "/openapi.yaml": ("Exact", btc)})

    def test_production_has_tls_by_cert_manager(self):
        ing = of_kind(render(*PROD), "Ingress")[0]
        self.assertEqual(ing["metadata"]["annotations"]["cert-manager.io/cluster-issuer"], "letsencrypt-prod")
        self.assertEqual(ing["spec"]["tls"][0]["hosts"], [r["host"] for r in ing["spec"]["rules"]])

    def test_monitoring_objects_only_when_enabled(self):
        kinds = {d["kind"] for d in render()}
        self.assertFalse(kinds & {"ServiceMonitor", "PrometheusRule"})
        prod = render(*PROD)
        rule = of_kind(prod, "PrometheusRule")[0]
        source = yaml.safe_load((CHART / "files" / "prometheus-rules.yaml").read_text(encoding="utf-8"))
        self.assertEqual(rule["spec"]["groups"], source["groups"])
        dash = [d for d in of_kind(prod, "ConfigMap") if d["metadata"]["labels"].get("grafana_dashboard") == "1"]
        self.assertEqual(len(dash), 1)
        self.assertEqual(dash[0]["data"]["btc-price.json"].strip(),
                         (CHART / "files" / "grafana-dashboard.json").read_text(encoding="utf-8").strip())
        sm = of_kind(prod, "ServiceMonitor")[0]
        self.assertEqual([e["port"] for e in sm["spec"]["endpoints"]], ["ops"])

    def test_every_alert_links_its_runbook_under_the_base_the_values_set(self):
        base = "https://wiki.example.com/btc-price/runbooks"
        source = yaml.safe_load((CHART / "files" / "prometheus-rules.yaml").read_text(encoding="utf-8"))
        rule = of_kind(render(*PROD, "--set", f"metrics.prometheusRule.runbookBaseUrl={base}"), "PrometheusRule")[0]
        alerts = [r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
        self.assertEqual(len(alerts), sum(1 for g in source["groups"] for r in g["rules"] if "alert" in r))
        for alert in alerts:
            self.assertEqual(alert["annotations"]["runbook_url"], f"{base}#{alert['alert'].lower()}")
        # Only the link changed: the rules otherwise are the file's.
        for group in rule["spec"]["groups"]:
            for r in group["rules"]:
                r.get("annotations", {}).pop("runbook_url", None)
        for group in source["groups"]:
            for r in group["rules"]:
                r.get("annotations", {}).pop("runbook_url", None)
        self.assertEqual(rule["spec"]["groups"], source["groups"])

    def test_helm_test_pod_checks_both_frontends(self):
        pod = by_name(render(), "Pod", "-test")
        self.assertEqual(pod["metadata"]["annotations"]["helm.sh/hook"], "test")
        script = pod["spec"]["containers"][0]["command"][-1]
        self.assertIn("http://btc-price-bitcoin-api:8080/btc/USD", script)
        self.assertIn("http://btc-price-rest-api:8081/", script)
        self.assertEqual(pod["spec"]["restartPolicy"], "Never")


class NatsValues(unittest.TestCase):
    """Helm/nats-values.yaml, for the official NATS chart (its values layout: config.*, container.*)."""

    @classmethod
    def setUpClass(cls):
        cls.v = yaml.safe_load((CHART / "nats-values.yaml").read_text(encoding="utf-8"))

    def users(self):
        return {u["user"]: u for u in self.v["config"]["merge"]["authorization"]["users"]}

    def test_three_node_jetstream_cluster_on_pvcs_with_fsync_always(self):
        c = self.v["config"]
        self.assertEqual((c["cluster"]["enabled"], c["cluster"]["replicas"]), (True, 3))
        self.assertTrue(c["jetstream"]["enabled"])
        self.assertTrue(c["jetstream"]["fileStore"]["pvc"]["size"])
        self.assertEqual(c["jetstream"]["merge"]["sync_interval"], "always")
        self.assertTrue(self.v["podDisruptionBudget"]["enabled"])
        tsc = self.v["podTemplate"]["topologySpreadConstraints"]
        self.assertEqual(tsc["topology.kubernetes.io/zone"]["whenUnsatisfiable"], "DoNotSchedule")

    def test_server_version_is_at_least_2_12_3(self):
        tag = self.v["container"]["image"]["tag"]
        version = tuple(int(x) for x in tag.split("-")[0].split("."))
        self.assertGreaterEqual(version, (2, 12, 3))

    def test_one_user_per_role_with_passwords_from_the_environment(self):
        users = self.users()
        self.assertEqual(set(users), {"publisher", "aggregator", "frontend", "admin"})
        env = self.v["container"]["env"]
        for name, u in users.items():
            m = re.fullmatch(r"<< \$([A-Z_]+) >>", u["password"])
            self.assertTrue(m, f"{name}: the password must be a << $VAR >> reference")
            self.assertIn("secretKeyRef", env[m.group(1)]["valueFrom"])
        # the chart's users and these agree
        values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
        for role in ("publisher", "aggregator", "frontend"):
            self.assertIn(values["nats"]["auth"][role]["user"], users)

    def test_least_privilege(self):
        users = self.users()
        allow = {n: set(u["permissions"]["publish"]["allow"]) for n, u in users.items() if "permissions" in u}
        self.assertIn("prices.ticks.>", allow["publisher"])
        # The publisher's only KV subjects are its lease's (set up, read, write); it never consumes.
        lease = {"$JS.API.STREAM.CREATE.KV_publisher_lease", "$JS.API.STREAM.UPDATE.KV_publisher_lease",
                 "$JS.API.STREAM.INFO.KV_publisher_lease", "$JS.API.DIRECT.GET.KV_publisher_lease.>",
                 "$KV.publisher_lease.>"}
        self.assertEqual({s for s in allow["publisher"] if "KV" in s or "CONSUMER" in s}, lease)
        self.assertFalse({s for s in allow["aggregator"] | allow["frontend"] if "publisher_lease" in s})
        self.assertIn("$KV.price_state.>", allow["aggregator"])
        self.assertNotIn("prices.ticks.>", allow["aggregator"])
        self.assertFalse({s for s in allow["frontend"] if s.startswith(("prices.", "$KV."))})
        self.assertEqual(set(users["frontend"]["permissions"]["publish"]["deny"]),
                         {"prices.ticks.>", "$KV.price_state.>", "$KV.publisher_lease.>"})
        for name, subjects in allow.items():
            for s in subjects:
                self.assertNotRegex(
                    s, r"\.(DELETE|PURGE)\.(PRICES|KV_price_state|KV_publisher_lease)$|STREAM\.(DELETE|PURGE)", name)
                self.assertNotIn(s, (">", "$JS.API.>", "$JS.>"), name)
            self.assertEqual(users[name]["permissions"]["subscribe"]["allow"], ["_INBOX.>"])


class ValuesDocumentation(unittest.TestCase):
    def test_the_table_generator_sees_every_leaf_of_values_yaml(self):
        spec = importlib.util.spec_from_file_location("helm_values_table", REPO / "scripts" / "helm-values-table.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        text = (CHART / "values.yaml").read_text(encoding="utf-8")
        rows = {key for key, *_ in mod.parse(text)}

        def leaves(node, prefix=""):
            for k, v in node.items():
                key = f"{prefix}{k}"
                if isinstance(v, dict) and v and key not in rows:
                    yield from leaves(v, key + ".")
                else:
                    yield key
        self.assertEqual(rows, set(leaves(yaml.safe_load(text))))


if __name__ == "__main__":
    unittest.main()
