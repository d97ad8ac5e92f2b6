/**
 * The Kubernetes example (deploy/kubernetes/): valid objects by the
 * Kubernetes schemas (kubernetes-models), and in step with the code: every
 * flag and SOCKETPROXY_* variable is one the command has, with a value it
 * accepts; the probes ask paths the servers answer; the ports agree between
 * containers, probes, Services and scrape annotations; the gateways know
 * every server pod by the node name it gives itself; and a pod's grace
 * period outlasts its drain.
 */

import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { StatefulSet } from "kubernetes-models/apps/v1/StatefulSet";
import { Service } from "kubernetes-models/v1/Service";
import type { IContainer } from "kubernetes-models/v1/Container";
import type { IPodTemplateSpec } from "kubernetes-models/v1/PodTemplateSpec";
import type { IProbe } from "kubernetes-models/v1/Probe";
import { parseServerArgs, SERVER_COMMAND } from "../lib/commands/server.ts";
import { parseWebArgs, WEB_COMMAND } from "../lib/commands/web.ts";
import {
  commandFlags,
  type CommandSpec,
  CONFIG_VARIABLE,
  environmentOf,
  variableName,
} from "../lib/commands/settings.ts";
import { gatewayHandler } from "../lib/gateway/mod.ts";
import { NODE_PATTERN } from "../lib/proxy/credentials.ts";
import { formatHostPort } from "../lib/address.ts";
import { VERSION } from "../lib/version.ts";
import { echoDestination, LogCapture, startService } from "./_helpers.ts";

const DIR = new URL("../deploy/kubernetes/", import.meta.url);
const CONTAINERFILE = new URL("../Containerfile", import.meta.url);

/** What a manifest holds, loosely: its kind, and the rest as the schemas check it. */
interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  // deno-lint-ignore no-explicit-any
  spec: any;
}

/** Every object of every manifest but the kustomization, with the file it is in. */
function manifests(): { file: string; object: KubeObject }[] {
  const found: { file: string; object: KubeObject }[] = [];
  for (const entry of [...Deno.readDirSync(DIR)].sort((a, b) => a.name.localeCompare(b.name))) {
    if (!entry.name.endsWith(".yaml") || entry.name === "kustomization.yaml") continue;
    const text = Deno.readTextFileSync(new URL(entry.name, DIR));
    for (const document of parseAllDocuments(text)) {
      assert.deepEqual(document.errors, [], entry.name);
      found.push({ file: entry.name, object: document.toJS() });
    }
  }
  return found;
}

function only(kind: string): KubeObject {
  const objects = manifests().filter(({ object }) => object.kind === kind);
  assert.equal(objects.length, 1, `one ${kind}`);
  return (objects[0] as { object: KubeObject }).object;
}

/** The socketproxy commands the example runs, by the container's first argument. */
const COMMANDS: Record<string, CommandSpec> = { server: SERVER_COMMAND, web: WEB_COMMAND };

/** A pod of a workload as Kubernetes makes it: its name, namespace and labels. */
interface Pod {
  name: string;
  namespace: string;
  labels: Record<string, string>;
}

/** The n-th pod of the StatefulSet, as Kubernetes 1.28 and later label it. */
function statefulPod(set: KubeObject, index: number): Pod {
  return {
    name: `${set.metadata.name}-${index}`,
    namespace: "games",
    labels: {
      ...set.spec.template.metadata.labels,
      "statefulset.kubernetes.io/pod-name": `${set.metadata.name}-${index}`,
      "apps.kubernetes.io/pod-index": String(index),
    },
  };
}

/** Kubernetes' `$(NAME)` expansion: the variables defined before, else left as is. */
function expand(text: string, variables: Readonly<Record<string, string>>): string {
  return text.replace(
    /\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g,
    (whole, name: string) => Object.hasOwn(variables, name) ? variables[name] ?? "" : whole,
  );
}

/** A container's environment in a pod: values, the pod's own fields, `$(NAME)` expanded in order. */
function environment(container: IContainer, pod: Pod): Record<string, string> {
  const variables: Record<string, string> = {};
  for (const variable of container.env ?? []) {
    const field = variable.valueFrom?.fieldRef?.fieldPath;
    let value: string;
    if (variable.value !== undefined) value = expand(variable.value, variables);
    else if (field === "metadata.name") value = pod.name;
    else if (field === "metadata.namespace") value = pod.namespace;
    else {
      const label = /^metadata\.labels\['([^']+)'\]$/.exec(field ?? "")?.[1];
      assert.ok(label !== undefined, `${variable.name}: a value or a field this test knows`);
      value = pod.labels[label] ?? "";
      assert.notEqual(value, "", `${variable.name}: the pod has the label ${label}`);
    }
    variables[variable.name] = value;
  }
  return variables;
}

/** A container's arguments in a pod, `$(NAME)` expanded. */
function argumentsOf(container: IContainer, pod: Pod): string[] {
  const variables = environment(container, pod);
  return (container.args ?? []).map((arg) => expand(arg, variables));
}

/** Every variable a command reads: its settings', their `-file` forms, `--config`, the positional, aliases. */
function knownVariables(spec: CommandSpec): Set<string> {
  const names = commandFlags(spec)
    .filter((flag) => flag.role !== "help" && flag.role !== "check")
    .map((flag) => variableName(spec.command, flag.name));
  if (spec.positional?.configurable) names.push(variableName(spec.command, spec.positional.name));
  for (const setting of spec.settings) names.push(...setting.aliases ?? []);
  return new Set([...names, CONFIG_VARIABLE]);
}

function containerOf(template: IPodTemplateSpec, name: string): IContainer {
  const container = template.spec?.containers.find((candidate) => candidate.name === name);
  assert.ok(container, `a container ${name}`);
  return container;
}

/** A probe's or Service's port, named or numbered, as the container's port number. */
function containerPort(container: IContainer, port: string | number | undefined): number {
  const found = container.ports?.find((candidate) =>
    candidate.name === port || candidate.containerPort === port
  );
  assert.ok(found, `${container.name} opens port ${port}`);
  return found.containerPort;
}

function probeOf(container: IContainer, which: "readinessProbe" | "livenessProbe"): IProbe {
  const probe = container[which];
  assert.ok(probe?.httpGet, `${container.name}: an HTTP ${which}`);
  return probe;
}

/** The JSON array after an instruction of the Containerfile (`ENTRYPOINT [...]`). */
function containerfileArray(instruction: RegExp): string[] {
  const text = Deno.readTextFileSync(CONTAINERFILE).replaceAll("\\\n", " ");
  const match = new RegExp(`^${instruction.source}\\s*(\\[.*\\])\\s*$`, "m").exec(text);
  assert.ok(match?.[1], `${instruction} in the Containerfile`);
  return JSON.parse(match[1]);
}

const set = (): KubeObject => only("StatefulSet");
const deployment = (): KubeObject => only("Deployment");
const serverContainer = (): IContainer => containerOf(set().spec.template, "server");
const webContainer = (): IContainer => containerOf(deployment().spec.template, "web");

/** The server's configuration in its n-th pod. */
function serverConfig(index: number) {
  const pod = statefulPod(set(), index);
  const container = serverContainer();
  const [command, ...args] = argumentsOf(container, pod);
  assert.equal(command, "server");
  const config = parseServerArgs(args, { env: environmentOf(environment(container, pod)) });
  assert.notEqual(config, "help");
  return config as Exclude<typeof config, "help">;
}

/** The gateway's configuration in any of its pods. */
function webConfig() {
  const pod = { name: "socketproxy-web-abc12", namespace: "games", labels: {} };
  const container = webContainer();
  const [command, ...args] = argumentsOf(container, pod);
  assert.equal(command, "web");
  const config = parseWebArgs(args, { env: environmentOf(environment(container, pod)) });
  assert.notEqual(config, "help");
  return config as Exclude<typeof config, "help">;
}

Deno.test("every manifest is a valid Kubernetes object by its schema, and the kustomization lists every file", () => {
  const models: Record<string, new (data: never) => { validate(): void }> = {
    "v1/Service": Service,
    "apps/v1/StatefulSet": StatefulSet,
    "apps/v1/Deployment": Deployment,
  };
  const objects = manifests();
  assert.deepEqual(
    objects.map(({ object }) => object.kind).sort(),
    ["Deployment", "Service", "Service", "StatefulSet"],
  );
  for (const { file, object } of objects) {
    const Model = models[`${object.apiVersion}/${object.kind}`];
    assert.ok(Model, `${file}: ${object.apiVersion} ${object.kind} is one this test validates`);
    assert.doesNotThrow(() => new Model(object as never).validate(), `${file}: ${object.kind}`);
  }
  const kustomization = parseAllDocuments(
    Deno.readTextFileSync(new URL("kustomization.yaml", DIR)),
  )[0]?.toJS();
  assert.deepEqual(
    [...kustomization.resources].sort(),
    [...new Set(objects.map(({ file }) => file))].sort(),
  );
  // The schemas catch what a typo would be.
  const broken = structuredClone(set());
  broken.spec.template.spec.containers[0].ports[0].containerPort = "9009";
  assert.throws(() => new StatefulSet(broken as never).validate(), /containerPort must be integer/);
});

Deno.test("the containers use only flags and SOCKETPROXY_* variables their commands have, with values they accept", () => {
  for (const container of [serverContainer(), webContainer()]) {
    const command = container.args?.[0] ?? "";
    const spec = COMMANDS[command];
    assert.ok(spec, `${container.name}: runs a socketproxy command, not "${command}"`);
    const flags = new Set(commandFlags(spec).map((flag) => flag.name));
    for (const arg of container.args?.slice(1) ?? []) {
      const name = /^--(?:no-)?([a-z-]+)(=|$)/.exec(arg)?.[1];
      assert.ok(
        name !== undefined && flags.has(name),
        `${container.name}: ${command} takes ${arg}`,
      );
    }
    const known = knownVariables(spec);
    for (const variable of container.env ?? []) {
      if (!variable.name.startsWith("SOCKETPROXY_")) continue;
      assert.ok(known.has(variable.name), `${container.name}: ${command} reads ${variable.name}`);
    }
    assert.equal(container.image, `socketproxy:${VERSION}`, "the image of this version");
  }
  // Each server pod names itself from its ordinal; every value parses.
  const replicas: number = set().spec.replicas;
  for (let index = 0; index < replicas; index++) {
    const config = serverConfig(index);
    assert.equal(config.node, `n${index}`);
    assert.match(config.node ?? "", NODE_PATTERN);
    assert.deepEqual(formatHostPort(config.proxy), "0.0.0.0:9009");
  }
  assert.equal(webConfig().nodes.length, replicas);
});

Deno.test("the probes ask paths the admin port and the gateway answer, on ports the containers open", async () => {
  const server = serverContainer();
  const config = serverConfig(0);
  const readiness = probeOf(server, "readinessProbe").httpGet;
  const liveness = probeOf(server, "livenessProbe").httpGet;
  assert.deepEqual([readiness?.path, liveness?.path], ["/ready", "/health"]);
  for (const probe of [readiness, liveness]) {
    assert.equal(containerPort(server, probe?.port), config.admin?.port, "the admin port");
  }
  {
    await using destination = echoDestination();
    await using service = await startService(destination.port);
    for (const path of [readiness?.path, liveness?.path]) {
      const response = await fetch(`${service.admin}${path}`);
      await response.body?.cancel();
      assert.equal(response.status, 200, `the admin port answers ${path}`);
    }
  }
  const web = webContainer();
  const gateway = webConfig();
  const handler = gatewayHandler({
    proxy: gateway.proxy,
    logger: new LogCapture().logger,
  });
  for (const which of ["readinessProbe", "livenessProbe"] as const) {
    const probe = probeOf(web, which).httpGet;
    assert.equal(containerPort(web, probe?.port), gateway.listen.port, "the gateway's port");
    // The kubelet sends the pod's address as Host, which the gateway answers for /health.
    const response = await handler(new Request(`http://10.244.1.7:8080${probe?.path}`));
    await response.body?.cancel();
    assert.equal(response.status, 200, `the gateway answers ${probe?.path}`);
  }
});

Deno.test("a server pod's grace period outlasts its drain; preStop drains and waits for the exit, with the image's permissions", () => {
  const config = serverConfig(0);
  const grace: number = set().spec.template.spec.terminationGracePeriodSeconds;
  // After the drain timeout the server closes what is left and stops: two seconds at most.
  assert.ok(grace * 1000 > config.drainTimeout + 2000, `${grace} s > ${config.drainTimeout} ms`);
  const hook = serverContainer().lifecycle?.preStop?.exec?.command ?? [];
  const entrypoint = containerfileArray(/ENTRYPOINT/);
  // drain --wait returns once the server has stopped (tests/drain_test.ts).
  assert.deepEqual(hook, [
    ...entrypoint,
    "drain",
    "--wait",
    `--admin=127.0.0.1:${config.admin?.port}`,
  ]);
});

Deno.test("Services select their pods and ports; the gateways know every server pod by its node; scrapes hit the metrics ports", () => {
  const objects = manifests().map(({ object }) => object);
  const workloads = objects.filter((object) => object.kind !== "Service");
  for (const service of objects.filter((object) => object.kind === "Service")) {
    const selected = workloads.filter((workload) =>
      Object.entries(service.spec.selector as Record<string, string>).every(([key, value]) =>
        workload.spec.template.metadata.labels[key] === value
      )
    );
    assert.equal(selected.length, 1, `${service.metadata.name} selects one workload's pods`);
    const workload = selected[0] as KubeObject;
    assert.deepEqual(workload.spec.selector.matchLabels, service.spec.selector);
    const container = workload.spec.template.spec.containers[0] as IContainer;
    for (const port of service.spec.ports) containerPort(container, port.targetPort);
  }
  // The headless Service gives each server pod its name, ready or draining.
  const stateful = set();
  const headless = objects.find((object) =>
    object.kind === "Service" && object.metadata.name === stateful.spec.serviceName
  );
  assert.equal(headless?.spec.clusterIP, "None");
  assert.equal(headless?.spec.publishNotReadyAddresses, true, "a draining pod keeps its name");
  const replicas: number = stateful.spec.replicas;
  const nodes = webConfig().nodes.map((node) => `${node.name}=${formatHostPort(node.address)}`);
  const pods = Array.from({ length: replicas }, (_, index) => {
    const config = serverConfig(index);
    const host = `${stateful.metadata.name}-${index}.${stateful.spec.serviceName}`;
    return `${config.node}=${host}:${config.proxy.port}`;
  });
  assert.deepEqual(nodes, pods);
  // Prometheus' annotations name the port /metrics is on.
  const scrapes: [KubeObject, number | undefined][] = [
    [stateful, serverConfig(0).admin?.port],
    [deployment(), webConfig().metrics?.port],
  ];
  for (const [workload, port] of scrapes) {
    const annotations = workload.spec.template.metadata.annotations;
    assert.equal(annotations["prometheus.io/scrape"], "true");
    assert.equal(annotations["prometheus.io/path"], "/metrics");
    assert.equal(Number(annotations["prometheus.io/port"]), port, workload.metadata.name);
    const container = workload.spec.template.spec.containers[0] as IContainer;
    containerPort(container, port);
  }
});
