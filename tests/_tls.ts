/**
 * Test certificates made with openssl, for the tests of TLS on the proxy
 * port, the client, and the gateway's own HTTPS and WSS: a CA, a server
 * certificate for 127.0.0.1 and localhost signed by it, a stranger CA, and
 * self-signed certificates for the same names. Tests that need them are
 * ignored, saying so in their names, where openssl is missing.
 *
 * @module
 */

import { decoder, installed } from "./_helpers.ts";

/** The files {@linkcode makeTestCertificates} makes, all PEM. */
export interface TestCertificates {
  /** The directory they are in (with `san.cnf`, a file of no PEM data); remove it when done. */
  dir: string;
  /** The CA that signed `cert`. */
  ca: string;
  /** A server certificate for 127.0.0.1 and localhost, signed by `ca`. */
  cert: string;
  /** The key of `cert`. */
  key: string;
  /** A CA that signed nothing here. */
  otherCa: string;
  /** A self-signed server certificate marked `CA:FALSE`, what `--ca` takes. */
  leaf: { cert: string; key: string };
  /** A self-signed server certificate as plain `openssl req -x509` makes it (`CA:TRUE`). */
  selfCa: { cert: string; key: string };
}

/** Ends the name of a test that needs openssl: why it is ignored, where it is. */
export const SKIPPED_WITHOUT_OPENSSL = " (skipped: openssl is not installed)";

/**
 * Makes the test certificates in a new temporary directory.
 *
 * @returns Their paths, or null when openssl cannot be run.
 */
export async function makeTestCertificates(): Promise<TestCertificates | null> {
  if (!await installed("openssl", ["version"])) return null;
  const dir = await Deno.makeTempDir({ prefix: "socketproxy-tls-" });
  const run = async (...args: string[]) => {
    const output = await new Deno.Command("openssl", {
      args,
      cwd: dir,
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!output.success) throw new Error(`openssl ${args[0]}: ${decoder.decode(output.stderr)}`);
  };
  const selfSigned = (name: string, subject: string, ...extensions: string[]) =>
    run(
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "2",
      "-subj",
      subject,
      ...extensions.flatMap((extension) => ["-addext", extension]),
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.pem`,
    );
  const names = "subjectAltName=IP:127.0.0.1,DNS:localhost";
  await selfSigned("ca", "/CN=socketproxy test ca");
  await selfSigned("other", "/CN=socketproxy test other");
  await selfSigned("leaf", "/CN=localhost", names, "basicConstraints=critical,CA:FALSE");
  await selfSigned("selfca", "/CN=localhost", names);
  await Deno.writeTextFile(`${dir}/san.cnf`, `${names}\n`);
  await run(
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-subj",
    "/CN=localhost",
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
  );
  await run(
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-days",
    "2",
    "-extfile",
    "san.cnf",
    "-out",
    "server.pem",
  );
  return {
    dir,
    ca: `${dir}/ca.pem`,
    cert: `${dir}/server.pem`,
    key: `${dir}/server.key`,
    otherCa: `${dir}/other.pem`,
    leaf: { cert: `${dir}/leaf.pem`, key: `${dir}/leaf.key` },
    selfCa: { cert: `${dir}/selfca.pem`, key: `${dir}/selfca.key` },
  };
}
