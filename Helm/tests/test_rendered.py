# Why: what a reviewer checks by hand in every rendered pod and policy (and checkov does not), over every values set, as unit tests.
"""Unit tests over the rendered chart: what a reviewer would check by hand in every pod and policy.

Run from the repository root (scripts/check-helm.sh does):
    .tools/kv-current/bin/python -m unittest discover -s Helm/tests -p 'test_*.py'
The chart is rendered with .tools/bin/helm (or $HELM); PyYAML comes with kubernetes-validate.
"""

from __future__ import annotations

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
# As scripts/check-helm.sh renders production: after the release step, in a cluster that serves
# cert-manager and the Prometheus operator.
MONITORING_API = ["--api-versions", "monitoring.coreos.com/v1"]
PROD = ["-f", str(chart_checks.production_values()), "--api-versions", "cert-manager.io/v1", *MONITORING_API]
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
    """(name, pod spec, pod metadata) of every Deployment's and Job's template and every bare Pod."""
    for d in docs:
        if d["kind"] in ("Deployment", "Job"):
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

    def test_every_field_ref_names_its_api_version(self):
        # The API server fills in apiVersion v1; without it in the chart, a server-side apply after Helm
        # (Argo CD's ServerSideApply=true) conflicts on each such field.
        def field_refs(node, path=""):
            if isinstance(node, dict):
                for k, v in node.items():
                    if k == "fieldRef":
                        yield path, v
                    yield from field_refs(v, f"{path}.{k}")
            elif isinstance(node, list):
                for i, v in enumerate(node):
                    yield from field_refs(v, f"{path}[{i}]")

        for label, docs in renders().items():
            refs = [(f"{d['kind']}/{d['metadata']['name']}{p}", ref) for d in docs for p, ref in field_refs(d)]
            self.assertGreaterEqual(len(refs), 9, label)  # two per Deployment, CONSUMER_NAME in the aggregator
            for where, ref in refs:
                with self.subTest(render=label, at=where):
                    self.assertEqual(ref.get("apiVersion"), "v1")

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

    def test_no_secret_is_in_the_environment(self):
        # checkov CKV_K8S_35: secrets as files, never as variables.
        for label, docs in renders().items():
            for name, spec, _ in pod_specs(docs):
                for c in containers(spec):
                    with self.subTest(render=label, pod=name, container=c["name"]):
                        self.assertFalse([e for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})])
                        self.assertFalse([e for e in c.get("envFrom", []) if "secretRef" in e])

    def test_each_role_reads_only_its_own_password_from_a_read_only_file(self):
        docs = render()
        secret = by_name(docs, "Secret", "-nats")
        for comp, role in (("publisher", "publisher"), ("aggregator", "aggregator"), ("bitcoin-api", "frontend")):
            cm, env = self.env(docs, comp)
            self.assertNotIn("NATS_PASSWORD", cm)
            self.assertNotIn("NATS_PASSWORD", env)
            self.assertEqual(cm["NATS_USER"], role)
            self.assertEqual(cm["NATS_PASSWORD_FILE"], "/etc/nats-auth/password")
            # Its own reply subjects: the permissions let each user read no other inbox.
            self.assertEqual(cm["NATS_INBOX_PREFIX"], f"_INBOX_{role}")
            spec = by_name(docs, "Deployment", f"-{comp}")["spec"]["template"]["spec"]
            (volume,) = [v for v in spec["volumes"] if v["name"] == "nats-auth"]
            self.assertEqual(volume["secret"]["secretName"], secret["metadata"]["name"])
            self.assertEqual(volume["secret"]["items"], [{"key": f"{role}-password", "path": "password"}])
            self.assertEqual(volume["secret"]["defaultMode"], 0o440)
            self.assertIn(f"{role}-password", secret["data"])
            self.assertIn({"name": "nats-auth", "mountPath": "/etc/nats-auth", "readOnly": True},
                          spec["containers"][0]["volumeMounts"])
        # The services' Secret holds no admin credential: only the setup Job's own Secret does.
        self.assertEqual(set(secret["data"]), {"publisher-password", "aggregator-password", "frontend-password"})

    def test_existing_secret_replaces_the_chart_secrets(self):
        docs = render(*PROD)
        self.assertEqual(of_kind(docs, "Secret"), [])
        for comp, role in (("publisher", "publisher"), ("bitcoin-api", "frontend")):
            spec = by_name(docs, "Deployment", f"-{comp}")["spec"]["template"]["spec"]
            (volume,) = [v for v in spec["volumes"] if v["name"] == "nats-auth"]
            self.assertEqual(volume["secret"]["secretName"], "btc-price-nats")
            self.assertEqual(volume["secret"]["items"], [{"key": f"{role}-password", "path": "password"}])
        job = by_name(docs, "Job", "-nats-setup")["spec"]["template"]["spec"]
        (volume,) = [v for v in job["volumes"] if v["name"] == "nats-auth"]
        self.assertEqual(volume["secret"], {"secretName": "btc-price-nats", "defaultMode": 0o440,
                                            "items": [{"key": "admin-password", "path": "password"}]})

    def test_jwt_credentials_files_instead_of_passwords(self):
        docs = render("--set", "nats.auth.mode=creds", "--set", "nats.auth.existingSecret=btc-nats-creds")
        for comp, role in (("publisher", "publisher"), ("aggregator", "aggregator"), ("bitcoin-api", "frontend")):
            cm, _ = self.env(docs, comp)
            self.assertEqual(cm["NATS_CREDS"], "/etc/nats-auth/nats.creds")
            self.assertNotIn("NATS_USER", cm)
            self.assertNotIn("NATS_PASSWORD_FILE", cm)
            self.assertEqual(cm["NATS_INBOX_PREFIX"], f"_INBOX_{role}")
            spec = by_name(docs, "Deployment", f"-{comp}")["spec"]["template"]["spec"]
            (volume,) = [v for v in spec["volumes"] if v["name"] == "nats-auth"]
            self.assertEqual(volume["secret"]["items"], [{"key": f"{role}.creds", "path": "nats.creds"}])
        job = by_name(docs, "Job", "-nats-setup")["spec"]["template"]["spec"]
        self.assertIn({"name": "NATS_CREDS", "value": "/etc/nats-auth/nats.creds"}, job["containers"][0]["env"])
        self.assertEqual(of_kind(docs, "Secret"), [])
        # Credentials files do not belong in values: creds mode needs a Secret of the operator's.
        with self.assertRaises(subprocess.CalledProcessError) as refused:
            chart_checks.render("--set", "nats.auth.mode=creds")
        self.assertIn("existingSecret", refused.exception.stderr)

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


class NatsSetup(unittest.TestCase):
    """The setup Job: the only one that creates and changes the streams and buckets."""

    @staticmethod
    def job(docs):
        return by_name(docs, "Job", "-nats-setup")

    def test_it_runs_as_the_admin_before_every_install_and_upgrade(self):
        for label, docs in renders().items():
            job = self.job(docs)
            with self.subTest(render=label):
                ann = job["metadata"]["annotations"]
                self.assertEqual(ann["helm.sh/hook"], "pre-install,pre-upgrade")
                self.assertEqual(ann["helm.sh/hook-delete-policy"], "before-hook-creation,hook-succeeded")
                c = job["spec"]["template"]["spec"]["containers"][0]
                self.assertEqual(c["command"], ["/usr/local/bin/publisher", "setup"])
                self.assertEqual(job["spec"]["template"]["spec"]["restartPolicy"], "Never")
                self.assertGreater(job["spec"]["activeDeadlineSeconds"], 3 * 120)

    def test_it_sets_up_what_the_services_are_configured_with(self):
        docs = render("--set", "stream.maxAge=12h", "--set", "publisher.leaseTtl=5s", "--set", "nats.replicas=1")
        env = {e["name"]: e.get("value") for e in self.job(docs)["spec"]["template"]["spec"]["containers"][0]["env"]}
        pub = by_name(docs, "ConfigMap", "-publisher")["data"]
        for name in ("NATS_URL", "NATS_REPLICAS", "TICKS_MAX_AGE", "TICKS_MAX_BYTES", "LEASE_TTL"):
            self.assertEqual(env[name], pub[name], name)
        self.assertEqual((env["TICKS_MAX_AGE"], env["LEASE_TTL"], env["NATS_REPLICAS"]), ("12h", "5s", "1"))
        self.assertEqual(env["NATS_USER"], "admin")
        self.assertEqual(env["NATS_PASSWORD_FILE"], "/etc/nats-auth/password")
        self.assertEqual(env["SETUP_TIMEOUT"], "120s")

    def test_what_it_needs_exists_before_it_runs(self):
        # At pre-install no object of the release exists yet: its Secret and NetworkPolicy are hooks
        # of a lower weight, and it uses no ConfigMap and not the chart's ServiceAccount.
        docs = render()
        job = self.job(docs)
        weight = int(job["metadata"]["annotations"]["helm.sh/hook-weight"])
        spec = job["spec"]["template"]["spec"]
        self.assertNotIn("envFrom", spec["containers"][0])
        self.assertEqual(spec["serviceAccountName"], "default")
        self.assertFalse(spec["automountServiceAccountToken"])
        secret = by_name(docs, "Secret", "-nats-setup")
        (volume,) = [v for v in spec["volumes"] if v["name"] == "nats-auth"]
        self.assertEqual(volume["secret"]["secretName"], secret["metadata"]["name"])
        self.assertEqual(volume["secret"]["items"], [{"key": "admin-password", "path": "password"}])
        policy = by_name(docs, "NetworkPolicy", "-nats-setup")
        for hook in (secret, policy):
            ann = hook["metadata"]["annotations"]
            self.assertEqual(ann["helm.sh/hook"], "pre-install,pre-upgrade")
            self.assertLess(int(ann["helm.sh/hook-weight"]), weight)
            # Gone with the Job: the admin's password does not stay in the namespace.
            self.assertIn("hook-succeeded", ann["helm.sh/hook-delete-policy"])
        self.assertEqual(policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"], "nats-setup")
        ports = [p for rule in policy["spec"]["egress"] for p in rule["ports"]]
        self.assertIn({"port": 4222, "protocol": "TCP"}, ports)
        self.assertIn({"port": 53, "protocol": "UDP"}, ports)
        self.assertEqual(set(secret["data"]), {"admin-password"})

    def test_no_service_gets_the_admin_credential(self):
        for label, docs in renders().items():
            for d in of_kind(docs, "Deployment"):
                for v in d["spec"]["template"]["spec"].get("volumes", []):
                    with self.subTest(render=label, deployment=d["metadata"]["name"]):
                        self.assertNotIn("admin", str(v.get("secret", {}).get("items", [])))

    def test_switched_off(self):
        docs = render("--set", "nats.setup.enabled=false")
        self.assertFalse([d for d in docs if component(d) == "nats-setup"])


class NatsTls(unittest.TestCase):
    """TLS to NATS in production: each role's client certificate from cert-manager."""

    ROLES = {"publisher": "publisher", "aggregator": "aggregator", "bitcoin-api": "frontend"}

    def test_production_speaks_mutual_tls_with_one_certificate_per_role(self):
        docs = render(*PROD)
        certs = {c["spec"]["secretName"]: c for c in of_kind(docs, "Certificate")}
        self.assertEqual(set(certs), {f"btc-price-nats-{r}-tls" for r in ("publisher", "aggregator", "frontend", "admin")})
        for cert in certs.values():
            self.assertIn("client auth", cert["spec"]["usages"])
            self.assertEqual(cert["spec"]["issuerRef"], {"kind": "ClusterIssuer", "name": "nats-ca"})
        for comp, role in self.ROLES.items():
            cm = by_name(docs, "ConfigMap", f"-{comp}")["data"]
            self.assertEqual((cm["NATS_TLS_CA"], cm["NATS_TLS_CERT"], cm["NATS_TLS_KEY"]),
                             ("/etc/nats-tls/ca.crt", "/etc/nats-tls/tls.crt", "/etc/nats-tls/tls.key"))
            spec = by_name(docs, "Deployment", f"-{comp}")["spec"]["template"]["spec"]
            (volume,) = [v for v in spec["volumes"] if v["name"] == "nats-tls"]
            self.assertEqual(volume["secret"]["secretName"], f"btc-price-nats-{role}-tls")
            self.assertIn(f"btc-price-nats-{role}-tls", certs)
        # The Job's certificate must exist before the Job: a hook of a lower weight.
        admin = certs["btc-price-nats-admin-tls"]["metadata"]["annotations"]
        job = by_name(docs, "Job", "-nats-setup")
        self.assertLess(int(admin["helm.sh/hook-weight"]), int(job["metadata"]["annotations"]["helm.sh/hook-weight"]))
        (volume,) = [v for v in job["spec"]["template"]["spec"]["volumes"] if v["name"] == "nats-tls"]
        self.assertEqual(volume["secret"]["secretName"], "btc-price-nats-admin-tls")
        for comp in ("publisher", "aggregator"):
            self.assertNotIn("annotations", certs[f"btc-price-nats-{comp}-tls"]["metadata"])

    def test_cert_manager_objects_only_where_cert_manager_is(self):
        without = render("-f", str(CHART / "values-production.yaml"))
        self.assertEqual(of_kind(without, "Certificate"), [])
        # The Secrets keep their names: an operator without cert-manager creates them.
        spec = by_name(without, "Deployment", "-publisher")["spec"]["template"]["spec"]
        self.assertIn("btc-price-nats-publisher-tls", str(spec["volumes"]))
        forced = render("-f", str(CHART / "values-production.yaml"), "--set", "nats.tls.certManager.force=true")
        self.assertEqual(len(of_kind(forced, "Certificate")), 4)

    def test_a_ca_secret_makes_the_chart_render_its_issuer(self):
        docs = render(*PROD, "--set", "nats.tls.certManager.caSecretName=nats-ca-keypair")
        (issuer,) = of_kind(docs, "Issuer")
        self.assertEqual(issuer["spec"], {"ca": {"secretName": "nats-ca-keypair"}})
        self.assertEqual(issuer["metadata"]["annotations"]["helm.sh/hook"], "pre-install,pre-upgrade")
        for cert in of_kind(docs, "Certificate"):
            self.assertEqual(cert["spec"]["issuerRef"], {"kind": "Issuer", "name": issuer["metadata"]["name"]})


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
                    # One prefix per asset of `pairs` (BTC, ETH by default) and `/pairs`.
                    self.assertEqual(paths, {"/btc": ("Prefix", "btc-price-bitcoin-api"),
                                             "/eth": ("Prefix", "btc-price-bitcoin-api"),
                                             "/pairs": ("Exact", "btc-price-bitcoin-api"),
                                             "/": ("Exact", "btc-price-rest-api"),
                                             "/dashboard": ("Prefix", "btc-price-bitcoin-api")})
                    ports = {p["backend"]["service"]["port"]["name"] for p in rule["http"]["paths"]}
                    self.assertEqual(ports, {"http"})

    def test_docs_and_specs_are_routed_only_when_asked(self):
        ing = of_kind(render("--set", "ingress.exposeDocs=true"), "Ingress")[0]
        paths = {p["path"]: (p["pathType"], p["backend"]["service"]["name"]) for p in ing["spec"]["rules"][0]["http"]["paths"]}
        btc = "btc-price-bitcoin-api"
        self.assertEqual(paths, {"/btc": ("Prefix", btc), "/eth": ("Prefix", btc), "/pairs": ("Exact", btc),
                                 "/": ("Exact", "btc-price-rest-api"), "/docs": ("Prefix", btc),
                                 "/openapi.json": ("Exact", btc), "/openapi.yaml": ("Exact", btc),
                                 "/dashboard": ("Prefix", btc)})

    def test_the_live_page_is_routed_unless_turned_off(self):
        ing = of_kind(render("--set", "ingress.exposeDashboard=false"), "Ingress")[0]
        paths = [p["path"] for p in ing["spec"]["rules"][0]["http"]["paths"]]
        self.assertEqual(paths, ["/btc", "/eth", "/pairs", "/"])

    def test_each_asset_of_the_pairs_is_routed_once_and_every_component_but_rest_api_gets_pairs(self):
        docs = render("--set", "pairs=btc-usd\\,BTC-EUR\\,SOL-USD")
        ing = of_kind(docs, "Ingress")[0]
        paths = [p["path"] for p in ing["spec"]["rules"][0]["http"]["paths"]]
        self.assertEqual(paths, ["/btc", "/sol", "/pairs", "/", "/dashboard"])
        data = {d["metadata"]["name"]: d["data"] for d in of_kind(docs, "ConfigMap") if "OPS_ADDR" in d.get("data", {})}
        for name, env in data.items():
            expected = None if name.endswith("rest-api") else "btc-usd,BTC-EUR,SOL-USD"
            self.assertEqual(env.get("PAIRS"), expected, name)
        with self.assertRaises(subprocess.CalledProcessError):
            render("--set", "pairs=BTCUSD")

    def test_production_has_tls_by_cert_manager(self):
        ing, streams = of_kind(render(*PROD), "Ingress")
        self.assertEqual(ing["metadata"]["annotations"]["cert-manager.io/cluster-issuer"], "letsencrypt-prod")
        self.assertEqual(ing["spec"]["tls"][0]["hosts"], [r["host"] for r in ing["spec"]["rules"]])
        # The streams' Ingress serves the same hosts with the same Secret, and leaves cert-manager
        # to the first: two Ingresses asking for one Secret would fight over its Certificate.
        self.assertEqual(streams["spec"]["tls"], ing["spec"]["tls"])
        self.assertNotIn("cert-manager.io/cluster-issuer", streams["metadata"]["annotations"])

    def test_each_pair_s_stream_has_an_ingress_path_without_buffering_and_with_long_timeouts(self):
        docs = render("--set", "pairs=btc-usd\\,BTC-EUR\\,BTC-USD\\,sol-usd", "--set", "ingress.streams.readTimeoutSeconds=600")
        main, streams = of_kind(docs, "Ingress")
        self.assertEqual(streams["metadata"]["name"], "btc-price-streams")
        annotations = streams["metadata"]["annotations"]
        self.assertEqual(annotations["nginx.ingress.kubernetes.io/proxy-buffering"], "off")
        self.assertEqual(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"], "600")
        self.assertEqual(annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"], "600")
        self.assertNotIn("nginx.ingress.kubernetes.io/proxy-buffering", main["metadata"].get("annotations", {}))
        for rule in streams["spec"]["rules"]:
            paths = [(p["path"], p["pathType"], p["backend"]["service"]["name"], p["backend"]["service"]["port"]["name"])
                     for p in rule["http"]["paths"]]
            # As bitcoin-api writes each pair's path (asset lower case, currency upper), each once.
            btc = "btc-price-bitcoin-api"
            self.assertEqual(paths, [("/btc/USD/stream", "Exact", btc, "http"), ("/btc/EUR/stream", "Exact", btc, "http"),
                                     ("/sol/USD/stream", "Exact", btc, "http")])
        with self.assertRaises(subprocess.CalledProcessError):
            render("--set", "ingress.streams.readTimeoutSeconds=5")

    def test_monitoring_objects_only_when_enabled(self):
        kinds = {d["kind"] for d in render(*MONITORING_API)}
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

    def test_monitoring_objects_only_where_the_cluster_serves_the_prometheus_operator_api(self):
        # Enabled, but a cluster without monitoring.coreos.com/v1 would refuse the whole release
        # ("ensure CRDs are installed first"): the chart leaves them out there.
        with_api = {d["kind"] for d in render(*PROD)}
        self.assertTrue({"ServiceMonitor", "PrometheusRule"} <= with_api)
        without = render("-f", str(chart_checks.production_values()), "--api-versions", "cert-manager.io/v1")
        self.assertFalse({d["kind"] for d in without} & {"ServiceMonitor", "PrometheusRule"})
        # Everything else is the same.
        self.assertEqual(len(without), len(render(*PROD)) - 2)

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
        self.assertEqual(set(allow), {"publisher", "aggregator", "frontend"})
        self.assertIn("prices.ticks.>", allow["publisher"])
        # The publisher's only KV subjects are its lease's (open, read, write); it never consumes.
        lease = {"$JS.API.STREAM.INFO.KV_publisher_lease", "$JS.API.DIRECT.GET.KV_publisher_lease.>",
                 "$KV.publisher_lease.>"}
        self.assertEqual({s for s in allow["publisher"] if "KV" in s or "CONSUMER" in s}, lease)
        self.assertFalse({s for s in allow["aggregator"] | allow["frontend"] if "publisher_lease" in s})
        self.assertIn("$KV.price_state.*", allow["aggregator"])
        self.assertNotIn("prices.ticks.>", allow["aggregator"])
        # The internet-facing role creates no consumer at all, and writes nothing.
        self.assertFalse({s for s in allow["frontend"] if "CONSUMER" in s or s.startswith(("prices.", "$KV."))})
        for name, subjects in allow.items():
            for s in subjects:
                # Streams and buckets are the setup step's (the admin's); consumers are deleted by nobody.
                self.assertNotRegex(s, r"STREAM\.(CREATE|UPDATE|DELETE|PURGE)|MSG\.DELETE|CONSUMER\.(DELETE|DURABLE)", name)
                self.assertNotIn(s, (">", "$JS.API.>", "$JS.>", "$JS.API.CONSUMER.CREATE.>"), name)
            # Each reads replies under its own prefix only (the chart's NATS_INBOX_PREFIX).
            inboxes = [s for s in users[name]["permissions"]["subscribe"]["allow"] if "INBOX" in s]
            self.assertEqual(inboxes, [f"_INBOX_{name}.>"], name)
        self.assertEqual(users["frontend"]["permissions"]["subscribe"]["allow"],
                         ["_INBOX_frontend.>", "$KV.price_state.*", "prices.candles.>"])
        # History: batched direct gets of the candle streams and the ticks stream, nothing else.
        history = {f"$JS.API.DIRECT.GET.{s}" for s in ("CANDLES_1M", "CANDLES_5M", "CANDLES_1H", "CANDLES_1D", "PRICES")}
        self.assertEqual({s for s in allow["frontend"] if "KV_price_state" not in s}, history)

    def test_clients_speak_mutual_tls_with_a_certificate_from_cert_manager(self):
        c = self.v["config"]
        self.assertEqual((c["nats"]["tls"]["enabled"], c["nats"]["tls"]["merge"]["verify"]), (True, True))
        self.assertEqual(c["nats"]["tls"]["secretName"], "nats-server-tls")
        self.assertEqual((self.v["tlsCA"]["enabled"], self.v["tlsCA"]["secretName"]), (True, "nats-server-tls"))
        extra = {(r["kind"], r["metadata"]["name"]): r for r in self.v["extraResources"]}
        server = extra[("Certificate", "nats-server-tls")]["spec"]
        self.assertEqual(server["issuerRef"], {"kind": "ClusterIssuer", "name": "nats-ca"})
        self.assertIn("nats.nats.svc.cluster.local", server["dnsNames"])
        self.assertIn("*.nats-headless.nats.svc.cluster.local", server["dnsNames"])
        self.assertIn("server auth", server["usages"])
        # The clients' issuer in the btc-price chart is the same CA.
        values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
        ref = values["nats"]["tls"]["certManager"]["issuerRef"]
        self.assertIn((ref["kind"], ref["name"]), extra)

    def test_network_policy_admits_only_the_release_and_monitoring(self):
        (policy,) = [r for r in self.v["extraResources"] if r["kind"] == "NetworkPolicy"]
        self.assertEqual(policy["spec"]["policyTypes"], ["Ingress"])
        rules = {p["port"]: rule["from"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
        self.assertEqual(set(rules), {4222, 6222, 8222})
        release = rules[4222][0]
        self.assertEqual(release["namespaceSelector"]["matchLabels"], {"kubernetes.io/metadata.name": "btc"})
        self.assertEqual(release["podSelector"]["matchLabels"]["app.kubernetes.io/instance"], "btc-price")
        self.assertEqual(rules[8222], [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}])
        self.assertEqual([list(peer) for peer in rules[6222]], [["podSelector"]])


if __name__ == "__main__":
    unittest.main()
