/**
 * Packets no ordinary client sends, from a lab namespace, with python3's sockets (no scapy here):
 * a forged VXLAN datagram (an Ethernet frame for an overlay task, wrapped for UDP 4789), a raw ESP
 * packet (IP protocol 50: this kernel lacks the AEAD cipher Docker's encrypted overlays use, so no
 * real IPsec can be set up), a UDP datagram; and a watcher that reports which of them were
 * delivered to a namespace (raw sockets get their copy after netfilter's INPUT, so a dropped packet
 * is never seen). Every packet carries a token, so a watcher counts only the test's own.
 */
import type { ChildProcess } from "node:child_process";
import { ProcessRunner } from "../../src/exec/runner.js";
import { sleep } from "./lab.js";

const runner = new ProcessRunner();

const PY = String.raw`
import socket, struct, sys

def checksum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff

def mac(text): return bytes(int(x, 16) for x in text.split(":"))

cmd = sys.argv[1]
if cmd == "vxlan":
    dst, vni, inner_mac, inner_dst, inner_src, dport, token = sys.argv[2:9]
    payload = token.encode()
    udp = struct.pack("!HHHH", 40000, int(dport), 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, socket.inet_aton(inner_src), socket.inet_aton(inner_dst))
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    frame = mac(inner_mac) + mac("02:42:c6:13:14:fe") + b"\x08\x00" + ip + udp
    vxlan = struct.pack("!II", 0x08000000, int(vni) << 8)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(vxlan + frame, (dst, 4789))
elif cmd == "esp":
    dst, token = sys.argv[2:4]
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 50)
    s.sendto(struct.pack("!II", 0x0d0c0b0a, 1) + token.encode(), (dst, 0))
elif cmd == "udp":
    dst, port, token = sys.argv[2:5]
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(token.encode(), (dst, int(port)))
elif cmd == "watch":
    import select
    socks = {socket.socket(socket.AF_INET, socket.SOCK_RAW, p): p for p in (17, 50)}
    print("ready", flush=True)
    while True:
        for s in select.select(list(socks), [], [])[0]:
            data, addr = s.recvfrom(65535)
            ihl = (data[0] & 0x0f) * 4
            body = data[ihl:]
            at = body.find(b"dwtok-")
            if at < 0: continue
            token = body[at:].split(b"\0")[0].decode(errors="replace").split()[0]
            dport = struct.unpack("!H", body[2:4])[0] if socks[s] == 17 else 0
            print("%s %s %d %s" % ("esp" if socks[s] == 50 else "udp", addr[0], dport, token), flush=True)
`;

let counter = 0;
/** A token no other packet of the run carries. */
export function token(what: string): string {
  return `dwtok-${what}-${process.pid}-${++counter}`;
}

async function python(ns: string, args: string[]): Promise<void> {
  const r = await runner.run("ip", ["netns", "exec", ns, "python3", "-c", PY, ...args]);
  if (r.code !== 0) throw new Error(`python3 ${args[0]} in ${ns}: ${r.stderr.trim()}`);
}

export const send = {
  vxlan: (ns: string, dst: string, vni: number, inner: { mac: string; ip: string; src: string; port: number }, tok: string) =>
    python(ns, ["vxlan", dst, String(vni), inner.mac, inner.ip, inner.src, String(inner.port), tok]),
  esp: (ns: string, dst: string, tok: string) => python(ns, ["esp", dst, tok]),
  udp: (ns: string, dst: string, port: number, tok: string) => python(ns, ["udp", dst, String(port), tok]),
};

/** What a watcher saw delivered: "esp SRC 0 TOKEN" or "udp SRC DPORT TOKEN" lines. */
export class DeliveryWatcher {
  readonly seen: string[] = [];

  private constructor(private readonly child: ChildProcess) {
    let buffer = "";
    child.stdout!.on("data", (d: Buffer) => {
      buffer += d.toString();
      const lines = buffer.split("\n");
      buffer = lines.pop()!;
      this.seen.push(...lines.filter((l) => l !== "ready"));
    });
  }

  /** `spawn` is the lab's spawnIn, so the watcher is ended with the lab. */
  static async start(spawn: (cmd: string, args: string[], stdio: "pipe") => ChildProcess): Promise<DeliveryWatcher> {
    const child = spawn("python3", ["-u", "-c", PY, "watch"], "pipe");
    const ready = new Promise<void>((resolve, reject) => {
      child.stdout!.once("data", () => resolve());
      child.on("exit", (code) => reject(new Error(`the delivery watcher exited (${code})`)));
    });
    const watcher = new DeliveryWatcher(child);
    await ready;
    return watcher;
  }

  delivered(tok: string): boolean {
    return this.seen.some((l) => l.endsWith(` ${tok}`));
  }

  /** Waits until `tok` was delivered (a marker sent after the packets under test), or throws. */
  async waitDelivered(tok: string, ms = 5000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!this.delivered(tok)) {
      if (Date.now() > deadline) throw new Error(`the marker ${tok} was never delivered; seen: ${this.seen.join("; ")}`);
      await sleep(50);
    }
  }

  stop(): void {
    this.child.kill();
  }
}
