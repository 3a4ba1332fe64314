import { describe, expect, test } from "bun:test";
import { parsePublish } from "../../src/net/ports.ts";
import { parseSubnet } from "../../src/net/subnet.ts";

describe("subnets", () => {
  test("gateway and broadcast", () => {
    expect(parseSubnet("10.88.0.0/16")).toMatchObject({ cidr: "10.88.0.0/16", gateway: "10.88.0.1", broadcast: "10.88.255.255", prefix: 16 });
  });
  test("bad subnets", () => {
    expect(() => parseSubnet("10.88.0.0/33")).toThrow(/invalid subnet/);
    expect(() => parseSubnet("300.1.1.0/24")).toThrow(/invalid subnet/);
    expect(() => parseSubnet("10.88.0.1/16")).toThrow(/host bits/);
    expect(() => parseSubnet("127.0.0.0/8")).toThrow(/reserved/);
  });
});

describe("published ports", () => {
  test("docker's forms", () => {
    expect(parsePublish("8080:80")).toEqual({ hostIp: "", hostPort: 8080, containerPort: 80, protocol: "tcp" });
    expect(parsePublish("127.0.0.1:53:53/udp")).toEqual({ hostIp: "127.0.0.1", hostPort: 53, containerPort: 53, protocol: "udp" });
  });
  test("ports outside 1-65535 and bad forms", () => {
    expect(() => parsePublish("0:80")).toThrow(/outside 1-65535/);
    expect(() => parsePublish("70000:80")).toThrow(/outside 1-65535/);
    expect(() => parsePublish("80")).toThrow(/HOSTPORT:CONTAINERPORT/);
    expect(() => parsePublish("80:80/sctp")).toThrow(/tcp or udp/);
  });
});
