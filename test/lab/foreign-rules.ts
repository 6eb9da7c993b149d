/**
 * Firewalls people run on Docker hosts before dockwall, as the lab loads them (iptables-restore
 * --noflush beside Docker's rules): the tracer is checked against them (trace.test.ts) and the
 * migration guides start from them (migration.test.ts, docs/MIGRATING.md).
 */

export const WRITE_UPS_SET = "trusted";
/** needs 1-2 as the write-ups do it: an ipset of trusted sources, DOCKER-USER and INPUT, IPv4 only. */
export const WRITE_UPS_RULES = `*filter
-I DOCKER-USER 1 -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN
-I DOCKER-USER 2 -i eth0 -p tcp -m conntrack --ctorigdstport 8080 --ctdir ORIGINAL -j RETURN
-I DOCKER-USER 3 -i eth0 -m set ! --match-set ${WRITE_UPS_SET} src -j DROP
-A INPUT -i lo -j ACCEPT
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p tcp -m multiport --dports 22,2222 -j ACCEPT
-A INPUT -m set --match-set ${WRITE_UPS_SET} src -j ACCEPT
-A INPUT -i eth0 -j DROP
COMMIT
`;

/** ufw-docker's DOCKER-USER block (its after.rules), with one `ufw route allow` in ufw-user-forward. */
export const UFW_DOCKER_RULES = `*filter
:ufw-user-forward - [0:0]
:ufw-docker-logging-deny - [0:0]
-A ufw-user-forward -s 198.18.0.30/32 -p tcp -m tcp --dport 8000 -j ACCEPT
-A ufw-docker-logging-deny -m limit --limit 3/min --limit-burst 10 -j LOG --log-prefix "[UFW DOCKER BLOCK] "
-A ufw-docker-logging-deny -j DROP
-I DOCKER-USER 1 -j ufw-user-forward
-I DOCKER-USER 2 -s 10.0.0.0/8 -j RETURN
-I DOCKER-USER 3 -s 172.16.0.0/12 -j RETURN
-I DOCKER-USER 4 -s 192.168.0.0/16 -j RETURN
-I DOCKER-USER 5 -p udp -m udp --sport 53 --dport 1024:65535 -j RETURN
-I DOCKER-USER 6 -d 192.168.0.0/16 -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j ufw-docker-logging-deny
-I DOCKER-USER 7 -d 10.0.0.0/8 -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j ufw-docker-logging-deny
-I DOCKER-USER 8 -d 172.16.0.0/12 -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j ufw-docker-logging-deny
-I DOCKER-USER 9 -d 192.168.0.0/16 -p udp -m udp --dport 0:32767 -j ufw-docker-logging-deny
-I DOCKER-USER 10 -d 10.0.0.0/8 -p udp -m udp --dport 0:32767 -j ufw-docker-logging-deny
-I DOCKER-USER 11 -d 172.16.0.0/12 -p udp -m udp --dport 0:32767 -j ufw-docker-logging-deny
COMMIT
`;

/**
 * What ufw itself does to INPUT on such a host with `ufw default deny incoming` and `ufw allow
 * 22/tcp`, in plain rules (the lab has no ufw): loopback, replies, ICMP and ICMPv6 (neighbour
 * discovery included, as ufw's before.rules allow), SSH, then drop. Loaded for both families, as ufw
 * does with IPV6=yes. Its chains are left out: only the verdicts matter here.
 */
export function ufwInputRules(family: "ipv4" | "ipv6"): string {
  const icmp = family === "ipv4" ? "icmp" : "ipv6-icmp";
  return `*filter
-A INPUT -i lo -j ACCEPT
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p ${icmp} -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
-A INPUT -j DROP
COMMIT
`;
}
