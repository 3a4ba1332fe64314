/**
 * rtnetlink messages, built and read in TypeScript and sent by the helper
 * (nsb_netlink in csrc/helper.c), in the host's network namespace or a
 * container's. Only what nsbox needs: links (bridge, veth), addresses, routes.
 * nsbox never needs the `ip` binary.
 */
import { call, F } from "../native/helper.ts";
import { strerror } from "../native/libc.ts";

const RTM = { NEWLINK: 16, DELLINK: 17, GETLINK: 18, NEWADDR: 20, NEWROUTE: 24 } as const;
const NLM_F = { REQUEST: 1, ACK: 4, DUMP: 0x300, EXCL: 0x200, CREATE: 0x400 } as const;
const IFLA = { ADDRESS: 1, IFNAME: 3, MTU: 4, LINK: 5, MASTER: 10, LINKINFO: 18, NET_NS_FD: 28, EXT_MASK: 29 } as const;
/** IFLA_EXT_MASK: leave the counters out of link replies (a dump stays small) */
const RTEXT_FILTER_SKIP_STATS = 8;
const IFLA_INFO = { KIND: 1, DATA: 2 } as const;
const VETH_INFO_PEER = 1;
const IFA = { ADDRESS: 1, LOCAL: 2, BROADCAST: 4 } as const;
const RTA = { DST: 1, OIF: 4, GATEWAY: 5 } as const;
const AF_INET = 2;
const AF_UNSPEC = 0;
export const IFF_UP = 1;

let seq = 1;

/** A growing little-endian buffer with 4-byte aligned rtattr nesting. */
class Writer {
  buf = new Uint8Array(256);
  len = 0;
  private ensure(n: number) {
    if (this.len + n <= this.buf.length) return;
    const b = new Uint8Array(Math.max(this.buf.length * 2, this.len + n));
    b.set(this.buf.subarray(0, this.len));
    this.buf = b;
  }
  private dv() {
    return new DataView(this.buf.buffer);
  }
  u8(v: number) {
    this.ensure(1);
    this.buf[this.len++] = v;
  }
  u16(v: number) {
    this.ensure(2);
    this.dv().setUint16(this.len, v, true);
    this.len += 2;
  }
  u32(v: number) {
    this.ensure(4);
    this.dv().setUint32(this.len, v >>> 0, true);
    this.len += 4;
  }
  bytes(b: Uint8Array) {
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  align() {
    while (this.len % 4) this.u8(0);
  }
  patch32(at: number, v: number) {
    this.dv().setUint32(at, v, true);
  }
  patch16(at: number, v: number) {
    this.dv().setUint16(at, v, true);
  }
  /** An rtattr whose body is written by fn (nested attributes or a value). */
  attr(type: number, fn: () => void) {
    const at = this.len;
    this.u16(0);
    this.u16(type);
    fn();
    this.patch16(at, this.len - at);
    this.align();
  }
  str(type: number, s: string) {
    this.attr(type, () => this.bytes(new TextEncoder().encode(`${s}\0`)));
  }
  attr32(type: number, v: number) {
    this.attr(type, () => this.u32(v));
  }
  ip(type: number, addr: string) {
    this.attr(type, () => {
      for (const p of addr.split(".")) this.u8(Number(p));
    });
  }
}

function message(type: number, flags: number, body: (w: Writer) => void): Uint8Array {
  const w = new Writer();
  w.u32(0); // length
  w.u16(type);
  w.u16(flags | NLM_F.REQUEST | NLM_F.ACK);
  w.u32(seq++);
  w.u32(0); // port id: the kernel's
  body(w);
  w.align();
  w.patch32(0, w.len);
  return w.buf.slice(0, w.len);
}

function ifinfo(w: Writer, index = 0, flags = 0, change = 0) {
  w.u8(AF_UNSPEC);
  w.u8(0);
  w.u16(0);
  w.u32(index);
  w.u32(flags);
  w.u32(change);
}

export const newBridge = (name: string) =>
  message(RTM.NEWLINK, NLM_F.CREATE | NLM_F.EXCL, (w) => {
    ifinfo(w);
    w.str(IFLA.IFNAME, name);
    w.attr(IFLA.LINKINFO, () => w.str(IFLA_INFO.KIND, "bridge"));
  });

/** A veth pair: `host` stays here, `peer` is created directly in the namespace netnsFd. */
export const newVeth = (host: string, peer: string, netnsFd: number, mtu?: number) =>
  message(RTM.NEWLINK, NLM_F.CREATE | NLM_F.EXCL, (w) => {
    ifinfo(w);
    w.str(IFLA.IFNAME, host);
    if (mtu) w.attr32(IFLA.MTU, mtu);
    w.attr(IFLA.LINKINFO, () => {
      w.str(IFLA_INFO.KIND, "veth");
      w.attr(IFLA_INFO.DATA, () =>
        w.attr(VETH_INFO_PEER, () => {
          ifinfo(w);
          w.str(IFLA.IFNAME, peer);
          w.attr32(IFLA.NET_NS_FD, netnsFd);
          if (mtu) w.attr32(IFLA.MTU, mtu);
        }),
      );
    });
  });

export const setLink = (index: number, opts: { up?: boolean; master?: number }) =>
  message(RTM.NEWLINK, 0, (w) => {
    ifinfo(w, index, opts.up ? IFF_UP : 0, opts.up !== undefined ? IFF_UP : 0);
    if (opts.master !== undefined) w.attr32(IFLA.MASTER, opts.master);
  });

export const delLink = (index: number) => message(RTM.DELLINK, 0, (w) => ifinfo(w, index));

export const getLink = (name: string) =>
  message(RTM.GETLINK, 0, (w) => {
    ifinfo(w);
    w.str(IFLA.IFNAME, name);
  });

/** A dump of the links whose master is `master` (the kernel filters on IFLA_MASTER). */
const getPortsOf = (master: number) =>
  message(RTM.GETLINK, NLM_F.DUMP, (w) => {
    ifinfo(w);
    w.attr32(IFLA.MASTER, master);
    w.attr32(IFLA.EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  });

export const newAddr = (index: number, addr: string, prefix: number, broadcast?: string) =>
  message(RTM.NEWADDR, NLM_F.CREATE | NLM_F.EXCL, (w) => {
    w.u8(AF_INET);
    w.u8(prefix);
    w.u8(0);
    w.u8(0); // scope universe
    w.u32(index);
    w.ip(IFA.LOCAL, addr);
    w.ip(IFA.ADDRESS, addr);
    if (broadcast) w.ip(IFA.BROADCAST, broadcast);
  });

export const defaultRoute = (gateway: string, oif: number) =>
  message(RTM.NEWROUTE, NLM_F.CREATE | NLM_F.EXCL, (w) => {
    w.u8(AF_INET);
    w.u8(0); // dst_len: default route
    w.u8(0);
    w.u8(0);
    w.u8(254); // RT_TABLE_MAIN
    w.u8(3); // RTPROT_BOOT
    w.u8(0); // RT_SCOPE_UNIVERSE
    w.u8(1); // RTN_UNICAST
    w.u32(0);
    w.ip(RTA.GATEWAY, gateway);
    w.attr32(RTA.OIF, oif);
  });

export interface Reply {
  type: number;
  seq: number;
  /** for NLMSG_ERROR: 0 (ack) or -errno */
  error?: number;
  body: Uint8Array;
}

function parseReplies(buf: Uint8Array): Reply[] {
  const out: Reply[] = [];
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  for (let p = 0; p + 16 <= buf.length; ) {
    const len = dv.getUint32(p, true);
    if (len < 16) break;
    const type = dv.getUint16(p + 4, true);
    const s = dv.getUint32(p + 8, true);
    const body = buf.subarray(p + 16, p + len);
    out.push({ type, seq: s, error: type === 2 ? dv.getInt32(p + 16, true) : undefined, body });
    p += (len + 3) & ~3;
  }
  return out;
}

export class NetlinkError extends Error {
  constructor(
    message: string,
    readonly errno: number,
  ) {
    super(message);
  }
}

/**
 * Sends messages (in order) in the network namespace netnsFd (-1: the host's);
 * returns every reply (up to replyBytes of them). Throws NetlinkError for the first one the kernel refused,
 * with `what[i]` naming it.
 */
export function talk(netnsFd: number, msgs: Uint8Array[], what: string[], replyBytes = 65536): Reply[] {
  const total = msgs.reduce((n, m) => n + m.length, 0);
  const req = new Uint8Array(total);
  let off = 0;
  for (const m of msgs) {
    req.set(m, off);
    off += m.length;
  }
  const out = new Uint8Array(replyBytes);
  const n = call(F.NETLINK, netnsFd, req, req.length, out, out.length);
  if (n < 0) throw new NetlinkError(`netlink: ${strerror(-n).toLowerCase()}`, -n);
  const replies = parseReplies(out.subarray(0, n));
  msgs.forEach((m, i) => {
    const s = new DataView(m.buffer, m.byteOffset).getUint32(8, true);
    const ack = replies.find((r) => r.seq === s && r.type === 2);
    if (ack?.error) throw new NetlinkError(`cannot ${what[i] ?? "configure the network"}: ${strerror(-ack.error).toLowerCase()}`, -ack.error);
  });
  return replies;
}

/** Attributes of a link reply (RTM_NEWLINK): index, IFLA_LINK (a veth's peer index), the name, IFLA_MASTER (its bridge). */
export function linkInfo(r: Reply): { index: number; link?: number; name?: string; master?: number } {
  const dv = new DataView(r.body.buffer, r.body.byteOffset, r.body.byteLength);
  const index = dv.getInt32(4, true);
  let link: number | undefined;
  let name: string | undefined;
  let master: number | undefined;
  for (let p = 16; p + 4 <= r.body.length; ) {
    const len = dv.getUint16(p, true);
    const type = dv.getUint16(p + 2, true) & 0x3fff;
    if (len < 4) break;
    if (type === IFLA.LINK) link = dv.getUint32(p + 4, true);
    if (type === IFLA.IFNAME) name = new TextDecoder().decode(r.body.subarray(p + 4, p + len - 1));
    if (type === IFLA.MASTER) master = dv.getUint32(p + 4, true);
    p += (len + 3) & ~3;
  }
  return { index, link, name, master };
}

/**
 * The names of the interfaces plugged into the bridge `master` (its ports), in
 * the namespace netnsFd: what the kernel says, whoever plugged them in (any
 * nsbox state, or a person). Asked through rtnetlink, not /sys/class/net/BR/brif,
 * because nsbox may run in a network namespace (nsenter --net) whose /sys is
 * another namespace's. The master is checked here too, in case a kernel does not filter.
 */
export function bridgePorts(netnsFd: number, master: number): string[] {
  // room for about a thousand ports (replies that do not fit are dropped by the helper)
  return talk(netnsFd, [getPortsOf(master)], ["list the interfaces of the bridge"], 1 << 20)
    .filter((r) => r.type === RTM.NEWLINK)
    .map(linkInfo)
    .filter((l) => l.master === master && l.index !== master)
    .map((l) => l.name ?? `#${l.index}`)
    .sort();
}

export function linkByName(netnsFd: number, name: string): { index: number; link?: number } | undefined {
  try {
    const replies = talk(netnsFd, [getLink(name)], [`find the link ${name}`]);
    const r = replies.find((x) => x.type === RTM.NEWLINK);
    return r ? linkInfo(r) : undefined;
  } catch (e) {
    if (e instanceof NetlinkError && e.errno === 19 /* ENODEV */) return undefined;
    throw e;
  }
}
