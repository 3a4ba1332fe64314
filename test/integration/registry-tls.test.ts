/**
 * TLS to a registry, in a network namespace this test makes (lo up, with
 * 10.99.0.1, an address nsbox does not treat as local): docker-registry serves
 * HTTPS with a certificate made by openssl here, and plain http on another port.
 *  - https with a certificate the system does not trust: refused, with the fix named;
 *  - the same with SSL_CERT_FILE naming the certificate: verified and pulled;
 *  - --tls-verify=false: pulled without verification; and over plain http;
 *  - plain http without --tls-verify=false: refused.
 */
import { beforeAll, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { NSBOX, useNsbox } from "../helpers/nsbox.ts";
import { buildTestLayout, missingTools, sh } from "../helpers/registry.ts";

const ctx = useNsbox("registry-tls");
let layout: string;
let certDir: string;

beforeAll(() => {
  const missing = missingTools();
  if (missing.length) throw new Error(`missing ${missing.join(", ")}: run .ci/setup --test`);
  layout = buildTestLayout(ctx.mkdir("images"), ctx.rootfs, { many: false }).dir;
  certDir = ctx.mkdir("tls");
  sh([
    "openssl",
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    join(certDir, "key.pem"),
    "-out",
    join(certDir, "cert.pem"),
    "-days",
    "2",
    "-subj",
    "/CN=10.99.0.1",
    "-addext",
    "subjectAltName=IP:10.99.0.1",
  ]);
  const storage = ctx.mkdir("storage");
  const conf = (port: number, tls: boolean) =>
    `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${storage}\nhttp:\n  addr: 10.99.0.1:${port}\n${tls ? `  tls:\n    certificate: ${join(certDir, "cert.pem")}\n    key: ${join(certDir, "key.pem")}\n` : ""}`;
  writeFileSync(join(certDir, "https.yml"), conf(5000, true));
  writeFileSync(join(certDir, "http.yml"), conf(5001, false));
}, 60000);

test("https verified against the CA store (or SSL_CERT_FILE), --tls-verify=false, plain http", async () => {
  const img = "10.99.0.1:5000/test/base:1";
  const plain = "10.99.0.1:5001/test/base:1";
  const script = `
set -u
ip link set lo up && ip addr add 10.99.0.1/32 dev lo || exit 99
docker-registry serve ${certDir}/https.yml 2>/dev/null & a=$!
docker-registry serve ${certDir}/http.yml 2>/dev/null & b=$!
trap 'kill $a $b' EXIT
i=0; until skopeo copy --quiet --dest-tls-verify=false oci:${layout}:base docker://${plain} 2>/dev/null; do i=$((i+1)); [ $i -gt 100 ] && exit 98; sleep 0.1; done
i=0; until skopeo inspect --tls-verify=false docker://${img} >/dev/null 2>&1; do i=$((i+1)); [ $i -gt 100 ] && exit 97; sleep 0.1; done
n() { "${NSBOX}" "$@"; echo "rc=$?"; }
echo "== untrusted"; n pull -q ${img} 2>&1
echo "== trusted"; SSL_CERT_FILE=${certDir}/cert.pem n pull -q ${img} 2>&1
echo "== no-verify"; n pull -q --tls-verify=false ${img} 2>&1
echo "== http"; n pull -q ${plain} 2>&1
echo "== http-no-verify"; n pull -q --tls-verify=false ${plain} 2>&1
`;
  const p = Bun.spawn(["unshare", "--net", "sh", "-c", script], { env: ctx.env(), stdout: "pipe", stderr: "pipe" });
  const [code, out, err] = await Promise.all([p.exited, new Response(p.stdout).text(), new Response(p.stderr).text()]);
  expect(err).toBe("");
  expect(code).toBe(0);
  const part = (name: string) => `${(out.split(`== ${name}\n`)[1] ?? "").split("\n==")[0]}`.trimEnd();
  expect(part("untrusted")).toMatch(
    /^nsbox: cannot reach registry 10\.99\.0\.1:5000: .*(certificate|CERT).*\(a registry without a valid certificate, or on plain http, needs --tls-verify=false\)\nrc=125$/,
  );
  expect(part("trusted")).toMatch(/^sha256:[a-f0-9]{64}\nrc=0$/);
  expect(part("no-verify")).toMatch(/^sha256:[a-f0-9]{64}\nrc=0$/);
  expect(part("http")).toMatch(/^nsbox: cannot reach registry 10\.99\.0\.1:5001: .*needs --tls-verify=false\)\nrc=125$/);
  expect(part("http-no-verify")).toMatch(/^sha256:[a-f0-9]{64}\nrc=0$/);
}, 60000);
