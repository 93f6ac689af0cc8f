// Writes deploy/kubernetes/prometheusrule.yaml from config/monitoring/prometheus-alerts.yaml: the
// shipped alert rules as a Prometheus Operator PrometheusRule (test/unit/deploy.test.ts keeps the two
// equal). Run: npm run deploy:rules
import { readFileSync, writeFileSync } from "node:fs";
import { parse, stringify } from "yaml";

const root = new URL("../", import.meta.url);
const rules = parse(readFileSync(new URL("config/monitoring/prometheus-alerts.yaml", root), "utf8")) as unknown;
const head =
  "# The shipped alert rules (config/monitoring/prometheus-alerts.yaml) as a Prometheus Operator\n" +
  "# PrometheusRule; test/unit/deploy.test.ts keeps the two equal. Regenerate: npm run deploy:rules\n";
const doc = {
  apiVersion: "monitoring.coreos.com/v1",
  kind: "PrometheusRule",
  metadata: { name: "switchyard", labels: { "app.kubernetes.io/name": "switchyard" } },
  spec: rules,
};
writeFileSync(new URL("deploy/kubernetes/prometheusrule.yaml", root), head + stringify(doc, { lineWidth: 0 }));
