"""Container start commands that build connection URLs from separately injected parts.

Rails images want `DATABASE_URL` and `REDIS_URL` with the password inside. A URL is one environment value,
so putting it in the task definition would put the password in the template. Instead each part arrives on
its own (the password as an ECS secret, never as plain environment) and a small POSIX `sh` prologue composes
the URL inside the container, percent-encoding user, password and database name with the image's own Ruby
(generated passwords may hold `@`, `/`, `:` or `%`), removes the raw parts from the environment and then
`exec`s the image's normal start command. Every Rails image used here (Greenlight v3, Scalelite api, poller,
importer) ships Ruby; the busybox/dash `sh` runs the prologue.

Variables the prologue reads:
- database: `DB_USER`, `DB_PASSWORD`, `DB_HOST`, `DB_PORT`, `DB_NAME` (all from the RDS-shaped secret)
- cache: `REDIS_PASSWORD` (the AUTH token secret), `REDIS_HOST`, `REDIS_PORT` (plain environment)
"""

from __future__ import annotations

from dataclasses import dataclass

ENTRY_POINT = ["sh", "-c"]
DATABASE_PARTS = ("DB_USER", "DB_PASSWORD", "DB_HOST", "DB_PORT", "DB_NAME")
CACHE_PARTS = ("REDIS_PASSWORD", "REDIS_HOST", "REDIS_PORT")

# Percent-encodes every byte outside RFC 3986's unreserved set (ERB::Util.url_encode is in Ruby's stdlib).
_URLENC = """urlenc() { ruby -rerb -e 'print ERB::Util.url_encode(ENV.fetch(ARGV[0]))' "$1"; }"""


@dataclass(frozen=True)
class Prologue:
    """Which URLs to compose before `exec`ing the image's start command."""

    database: bool = False
    redis: bool = False

    def prelude(self) -> str:
        """The lines that compose the URLs and drop the raw secrets."""
        lines = ["set -eu"]
        if self.database or self.redis:
            lines.append(_URLENC)
        if self.database:
            lines += [
                'db_user=$(urlenc DB_USER); db_password=$(urlenc DB_PASSWORD); db_name=$(urlenc DB_NAME)',
                'export DATABASE_URL="postgres://$db_user:$db_password@$DB_HOST:$DB_PORT/$db_name'
                '?sslmode=require"',
                "unset DB_PASSWORD db_password",
            ]
        if self.redis:
            lines += [
                "redis_password=$(urlenc REDIS_PASSWORD)",
                'export REDIS_URL="rediss://:$redis_password@$REDIS_HOST:$REDIS_PORT/0"',
                "unset REDIS_PASSWORD redis_password",
            ]
        return "\n".join(lines)

    def script(self, start: str) -> str:
        """The `sh -c` script: compose the URLs, drop the raw secrets, then `exec start`."""
        if not start.strip():
            raise ValueError("start command is empty: give the image's normal start command, e.g. './bin/start'")
        return f"{self.prelude()}\nexec {start}"

    def then(self, body: str) -> str:
        """The `sh -c` script: compose the URLs, then run `body` (a script of its own, no exec)."""
        if not body.strip():
            raise ValueError("script body is empty")
        return f"{self.prelude()}\nset +e\n{body}"

    def command(self, start: str) -> list[str]:
        """`command` for a container whose `entry_point` is ENTRY_POINT."""
        return [self.script(start)]


# nginx in an awsvpc task reaches the api container on 127.0.0.1; the image's templates name the api host
# `scalelite-api` (a Docker link name), so rewrite every file that mentions it before nginx renders them.
NGINX_LOCALHOST_START = (
    "set -eu\n"
    "for f in $(grep -rl scalelite-api /etc/nginx || true); do sed -i 's/scalelite-api/127.0.0.1/g' \"$f\"; done\n"
    "exec /etc/nginx/start -g 'daemon off;'"
)
