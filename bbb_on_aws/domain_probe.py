"""`probe <domain>`: a live deployment checked from outside, in the order of seed 002's checklist.

DNS of every public name (docs/host-contract.md), then TURN over UDP and TCP 3478 on turn.<domain> and over
TLS on turns.<domain>:443 (the NLB: certificate chain, names, days left), each with Binding, the open-relay
refusal, Allocate with REST credentials, CreatePermission and ChannelBind to a BBB server, and a round trip
through the relay port range; finally the HTTPS front doors (Greenlight, Scalelite, each BBB server's API).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Sequence

from bbb_on_aws import tls_check
from bbb_on_aws.checks import Failure, Report
from bbb_on_aws.turn_probe import Address, Target, TurnSession, rest_credentials

TURN_PORT = 3478
TURNS_PORT = 443
BBB_MEDIA_PORT = 16384  # first port of BBB's UDP media range (docs/host-contract.md, Ports)


def public_names(domain: str) -> dict[str, tuple[str, str]]:
    """The deployment's public DNS names: (what each is for, where its record comes from); host-contract.md."""
    by_stack = "created by the stacks (alias to the load balancer): check the hosted zone and that the stacks deployed"
    return {
        domain: ("Greenlight (ALB) or the single host", by_stack + "; single shape: set by the host's launch"),
        f"scalelite.{domain}": ("Scalelite API and recordings (ALB)", by_stack),
        f"turn.{domain}": (
            "TURN over UDP/TCP 3478 (one weighted record per TURN server)",
            "written by the launch of each TURN server: none means no TURN server finished its "
            "launch (run `bbb-on-aws status`)",
        ),
        f"turns.{domain}": ("TURN over TLS 443 (NLB)", by_stack),
    }


async def check_dns(
    name: str, purpose: str, origin: str = "check the record in the hosted zone"
) -> tuple[str, list[str]]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise Failure(
            f"{name} does not resolve ({error.strerror})",
            f"the record for {purpose} is missing",
            origin,
        ) from None
    addresses = sorted({str(info[4][0]) for info in infos})
    private = [a for a in addresses if not ipaddress.ip_address(a).is_global]
    if private:
        raise Failure(
            f"{name} -> {', '.join(addresses)}",
            f"{name} points at non-public address(es) {', '.join(private)}: browsers on the internet cannot reach them",
            "point the record at the public IP/alias (a split-horizon resolver here may also explain it)",
        )
    return f"{name} -> {', '.join(addresses)}", addresses


def check_https(url: str, expect: str | None, ca_file: str | None, timeout: float) -> str:
    """Blocking GET; passes on 2xx/3xx (and `expect` in the body when given)."""
    context = tls_check.client_context(ca_file)
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), _NoRedirect())
    try:
        with opener.open(url, timeout=timeout) as response:
            status, body = response.status, response.read(65536).decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        status, body = error.code, ""
        if 300 <= status < 400:
            return f"{status} -> {error.headers.get('Location', '?')}"
    except urllib.error.URLError as error:
        reason = error.reason
        if isinstance(reason, ssl.SSLCertVerificationError):
            host = urllib.request.urlparse(url).hostname or ""
            raise tls_check._verification_failure(reason, host, "") from None
        if isinstance(reason, ConnectionRefusedError):
            raise Failure(
                f"{url}: connection refused",
                "nothing listens on 443 there",
                "check the load balancer listener or the host's nginx",
            ) from None
        if isinstance(reason, (TimeoutError, socket.timeout)):
            raise Failure(
                f"{url}: no answer within {timeout:g} s",
                "a firewall or security group drops 443",
                "open TCP 443 to the internet",
            ) from None
        raise Failure(f"{url}: {reason}", "the HTTPS endpoint is unreachable", "check DNS and the listener") from None
    except TimeoutError:
        raise Failure(
            f"{url}: no answer within {timeout:g} s",
            "the server accepted the connection but never answered",
            "check the application's health (ECS service, nginx)",
        ) from None
    if status >= 500:
        raise Failure(
            f"{url}: HTTP {status}",
            "the load balancer has no healthy target, or the application fails "
            "(502/503 from an ALB: targets unhealthy)",
            "run `bbb-on-aws status` and check the ECS "
            "services / the host; the dashboard's frontend row shows healthy targets",
        )
    if status >= 400:
        raise Failure(f"{url}: HTTP {status}", "the application refuses this path", "check the URL and routing rules")
    if expect and expect not in body:
        raise Failure(
            f"{url}: HTTP {status} without {expect!r}",
            "the API answers but not as BBB's API does",
            "check that the server is a BBB/Scalelite API and its secret/config (bbb-conf --check)",
        )
    return f"HTTP {status}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


async def probe_domain(
    domain: str,
    *,
    secret: str | None,
    bbb_servers: Sequence[str] = (),
    turn_servers: Sequence[str] = (),
    peer: Address | None = None,
    ca_file: str | None = None,
    timeout: float = 3.0,
) -> Report:
    report = Report()
    for name, (purpose, origin) in public_names(domain).items():
        await report.run(f"dns {name}", lambda n=name, p=purpose, o=origin: check_dns(n, p, o), timeout)
    credentials = rest_credentials(secret) if secret is not None else None
    bbb_peer = peer
    if bbb_peer is None and bbb_servers:
        try:
            _, addresses = await check_dns(bbb_servers[0], "a BBB server")
            bbb_peer = (addresses[0], BBB_MEDIA_PORT)
        except Failure:
            bbb_peer = None  # its own DNS line below reports it
    if bbb_peer is None:
        report.skip(
            "TURN permission to a BBB server",
            "give --bbb-server HOST (a bbb-<id> name from `status`) or --peer HOST:PORT",
        )
    turn, turns = f"turn.{domain}", f"turns.{domain}"
    targets = [
        Target(turn, TURN_PORT, "udp"),
        Target(turn, TURN_PORT, "tcp"),
        Target(turns, TURNS_PORT, "tls", tls_name=turns, ca_file=ca_file),
    ]
    # turn.<domain> answers with one weighted record per query: each server by its own name finds a bad one.
    targets += [Target(host, TURN_PORT, "udp") for host in turn_servers]
    for target in targets:
        await TurnSession(target, report, timeout, credentials).run(bbb_peer, peer_echoes=peer is not None)
    https = [
        (f"https://{domain}/", None, "Greenlight"),
        (f"https://scalelite.{domain}/bigbluebutton/api", "SUCCESS", "Scalelite API"),
    ]
    https += [(f"https://{host}/bigbluebutton/api", "SUCCESS", f"BBB {host}") for host in bbb_servers]
    for url, expect, what in https:
        await report.run(
            f"https {what}", lambda u=url, e=expect: asyncio.to_thread(check_https, u, e, ca_file, timeout), timeout * 2
        )
    return report
