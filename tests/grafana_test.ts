/**
 * The Grafana dashboard in deploy/grafana/: every metric its expressions
 * name is one a running server or gateway exports, with the type the
 * expression treats it as, and every server figure follows the choice of
 * nodes.
 */

import assert from "node:assert/strict";
import { GatewayMetrics } from "../lib/gateway/mod.ts";
import { echoDestination, startService } from "./_helpers.ts";

const DASHBOARD = new URL("../deploy/grafana/socketproxy.json", import.meta.url);

interface Panel {
  id: number;
  title: string;
  datasource: { uid: string };
  targets: { expr: string; refId: string }[];
}

/** Metric names and types from `# TYPE` lines of an exposition text. */
function typesOf(text: string): Map<string, string> {
  const types = new Map<string, string>();
  for (const match of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    types.set(match[1] ?? "", match[2] ?? "");
  }
  return types;
}

Deno.test("every metric the Grafana dashboard uses is exported, as the type it uses it as", async () => {
  await using destination = echoDestination();
  await using service = await startService(destination.port);
  const scraped = await (await fetch(`${service.admin}/metrics`)).text();
  const exported = new Map([...typesOf(scraped), ...typesOf(new GatewayMetrics().format())]);
  const dashboard = JSON.parse(await Deno.readTextFile(DASHBOARD));
  const panels: Panel[] = dashboard.panels;
  assert.ok(panels.length >= 10, "a dashboard worth opening");
  assert.equal(new Set(panels.map((panel) => panel.id)).size, panels.length, "unique panel ids");
  const used = new Set<string>();
  for (const panel of panels) {
    assert.equal(panel.datasource.uid, "${datasource}", `${panel.title}: the chosen data source`);
    assert.ok(panel.targets.length > 0, `${panel.title}: has queries`);
    for (const { expr } of panel.targets) {
      const names = [...expr.matchAll(/\b((?:socketproxy|process)_[a-z_]+)\b/g)].map((m) => m[1]);
      assert.ok(names.length > 0, `${panel.title}: ${expr} names a metric`);
      for (const name of names) {
        if (name === undefined) continue;
        used.add(name);
        const histogram = /^(.*)_(bucket|sum|count)$/.exec(name)?.[1];
        if (histogram !== undefined && exported.get(histogram) === "histogram") {
          if (name.endsWith("_bucket")) {
            assert.match(expr, /histogram_quantile\(/, `${panel.title}: buckets as quantiles`);
          }
          continue;
        }
        const type = exported.get(name);
        assert.ok(type, `${panel.title}: ${name} is not exported`);
        if (/\brate\(/.test(expr) && new RegExp(`rate\\(${name}\\b`).test(expr)) {
          assert.equal(type, "counter", `${panel.title}: rate() of ${name}, a ${type}`);
        }
      }
    }
  }
  // One chooses the nodes: every server figure is joined to socketproxy_info
  // (which carries the node name) and filtered by the choice.
  const variables: { name: string; query?: string | { query: string } }[] =
    dashboard.templating.list;
  const queryOf = (variable: (typeof variables)[number]): string =>
    typeof variable.query === "string" ? variable.query : variable.query?.query ?? "";
  const node = variables.find((variable) => variable.name === "node");
  assert.ok(node, "a node variable");
  assert.equal(queryOf(node), 'label_values(socketproxy_info{job=~"$job"}, node)');
  for (const variable of variables) {
    for (const [name] of queryOf(variable).matchAll(/\bsocketproxy_[a-z_]+/g)) {
      assert.ok(exported.has(name), `the ${variable.name} variable: ${name} is not exported`);
    }
  }
  const serverOnly = new Set(typesOf(scraped).keys());
  for (const panel of panels) {
    for (const { expr } of panel.targets) {
      const server = [...expr.matchAll(/\b((?:socketproxy|process)_[a-z_]+)\b/g)]
        .map((m) => (m[1] ?? "").replace(/_(bucket|sum|count)$/, ""))
        .some((name) => name !== "socketproxy_info" && serverOnly.has(name));
      if (!server) continue;
      assert.ok(
        expr.includes('* on (job, instance) group_left (node) socketproxy_info{node=~"$node"}') ||
          expr.includes('socketproxy_info{job=~"$job", node=~"$node"}'),
        `${panel.title}: ${expr} follows the node choice`,
      );
    }
  }
  // The figures operators look at first are all on it.
  for (
    const name of [
      "socketproxy_sessions",
      "socketproxy_resume_duration_seconds_bucket",
      "socketproxy_auth_failures_total",
      "socketproxy_web_requests_total",
      "socketproxy_web_request_duration_seconds_bucket",
      "socketproxy_draining",
      "process_resident_memory_bytes",
    ]
  ) assert.ok(used.has(name), `the dashboard shows ${name}`);
});
