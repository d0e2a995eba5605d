"""`warden` command line. Parsing and output only; the work is done by services.

Heavy modules (SQL, the server) are imported inside the commands that need them,
so `warden token` and `warden verify` start fast and work on the base install.
Commands declared with `server=True` refuse in one line when the server extra is
missing (`extras.py`). Every failure is one line on stderr and a non-zero exit: 2
for usage, configuration and a missing extra, 1 for everything else.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from warden import __version__
from warden.cli.extras import is_server_module, missing_server_modules, needs_server_message
from warden.core.algorithms import DEFAULT_ALG, SIGNING_ALGS
from warden.core.redaction import redact
from warden.errors import ConfigError, WardenError

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """No abbreviated options (a script's `--grac` must not become `--grace` today and fail after an
    upgrade adds `--graceful`), examples kept as written, and usage errors in one line (JSON with --json)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        _fail(f"{message} (see `{self.prog} --help`)", 2)


_ERRORS_AS_JSON: list[bool] = [False]  # set once per main() from the command line


def _fail(message: str, code: int) -> NoReturn:
    _write_error(message)
    raise SystemExit(code)


def _write_error(message: str) -> None:
    message = redact(message)  # a secret pasted into an argument must not come back on stderr
    if _ERRORS_AS_JSON[0]:
        sys.stderr.write(json.dumps({"error": message}) + "\n")
    else:
        sys.stderr.write(f"warden: error: {message}\n")


def _common(json_flag: bool = True) -> _Parser:
    parent = _Parser(add_help=False)
    parent.add_argument("--data-dir", default=argparse.SUPPRESS, help="data directory (default ./warden-data)")
    parent.add_argument("--database-url", default=argparse.SUPPRESS, help="PostgreSQL URL instead of SQLite")
    parent.add_argument("--config", default=argparse.SUPPRESS, help="TOML settings file")
    if json_flag:
        parent.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    return parent


def _remote() -> _Parser:
    """Remote mode (`cli/remote.py`): the management commands over a server's admin API."""
    parent = _Parser(add_help=False)
    group = parent.add_argument_group("remote mode (the admin client's id comes from WARDEN_CLIENT_ID)")
    group.add_argument("--server", default=argparse.SUPPRESS, metavar="URL",
                       help="manage this server over its admin API instead of a local store (env WARDEN_SERVER)")
    group.add_argument("--client-secret-file", default=argparse.SUPPRESS, metavar="FILE",
                       help="the admin client's secret (default: env WARDEN_CLIENT_SECRET)")
    group.add_argument("--private-key-file", default=argparse.SUPPRESS, metavar="FILE",
                       help="authenticate with private_key_jwt and this PEM private key instead of a secret")
    group.add_argument("--private-key-alg", default=argparse.SUPPRESS, choices=SIGNING_ALGS,
                       help="the key's algorithm (default: from the key)")
    group.add_argument("--key-id", default=argparse.SUPPRESS, help="the kid to put in the assertion header")
    return parent


def _add(sub: argparse._SubParsersAction[_Parser], name: str, handler: Callable[[argparse.Namespace], int],
         help_text: str, *, json_flag: bool = True, common: bool = True, server: bool = True,
         remote: bool = False, examples: Sequence[str] = ()) -> _Parser:
    """Add a command. `server=False` marks the few that work on the base install (no server extra);
    `remote=True` the management commands, which also run against a server's admin API (`--server`)."""
    parents = ([_common(json_flag)] if common else []) + ([_remote()] if remote else [])
    epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples) if examples else None
    parser: _Parser = sub.add_parser(name, help=help_text, description=help_text, parents=parents, epilog=epilog)
    parser.set_defaults(handler=handler, needs_server=server, command_name=parser.prog, remote_capable=remote)
    return parser


def _conditional_access(p: _Parser) -> None:
    p.add_argument("--allowed-ip", action="append", default=None, metavar="CIDR",
                   help="a network the client may authenticate from (repeat for several; on update the list "
                        "replaces the current one). The address is the TCP peer's, or X-Forwarded-For's from a "
                        "server.trusted_proxies address")
    p.add_argument("--max-token-lifetime", metavar="DURATION",
                   help="cap every token's lifetime for this client, e.g. 10m (update: none removes the cap)")


def build_parser() -> _Parser:
    import functools

    from warden.cli import commands as c

    manage = functools.partial(_add, remote=True)  # management commands: local store or --server

    parser = _Parser(prog="warden", description="Warden machine-to-machine identity",
                     parents=[_common(), _remote()])
    parser.add_argument("--version", action="version", version=f"warden {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    _add(sub, "init", c.init, "create or upgrade the store (schema, signing keys) and exit; idempotent")

    p = _add(sub, "serve", c.serve, "run the authorization server", json_flag=False)
    p.add_argument("--host", help="address to listen on (default 127.0.0.1; setting server.host)")
    p.add_argument("--port", type=int, help="TCP port (default 8080; setting server.port)")
    p.add_argument("--issuer", help="the public URL of this server (default http://HOST:PORT; setting issuer)")
    p.add_argument("--workers", type=int, help="processes sharing the port (default 1; setting server.workers)")
    p.add_argument("--tls-cert", help="serve HTTPS with this certificate chain (PEM)")
    p.add_argument("--tls-key", help="the certificate's private key (PEM)")
    p.add_argument("--tls-client-ca", help="request client certificates verified against these CAs (mutual TLS)")

    apis = sub.add_parser("apis", help="APIs (resource servers)").add_subparsers(
        dest="apis_command", metavar="COMMAND", parser_class=_Parser, required=True)
    p = manage(apis, "create", c.apis_create, "register an API (refuses an existing identifier: see apis update)",
             examples=['warden apis create https://orders.example --scopes "read write" --ttl 15m'])
    p.add_argument("identifier", help="the API's URI, used as the token audience")
    p.add_argument("--scopes", required=True, help='space-separated, e.g. "read write"')
    p.add_argument("--ttl", default="15m", help="token lifetime (default 15m)")
    p.add_argument("--alg", default=DEFAULT_ALG, choices=SIGNING_ALGS)
    p.add_argument("--name", default="")
    p.add_argument("--require-dpop", action="store_true", help="issue tokens for this API only against a DPoP proof")
    p.add_argument("--cert-bound", action="store_true", help="bind tokens for this API to the client certificate")
    p.add_argument("--tenant", help="the tenant the API belongs to: only its clients can be granted it "
                                    "(default: shared by every tenant)")
    p = manage(apis, "update", c.apis_update, "change an existing API; options not given keep their value",
             examples=["warden apis update https://orders.example --ttl 1h",
                       'warden apis update https://orders.example --scopes "read write admin"'])
    p.add_argument("identifier")
    p.add_argument("--scopes", help="the full new list, space-separated")
    p.add_argument("--ttl", help="token lifetime")
    p.add_argument("--alg", choices=SIGNING_ALGS)
    p.add_argument("--name")
    p.add_argument("--require-dpop", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--cert-bound", action=argparse.BooleanOptionalAction, default=None)
    owner = p.add_mutually_exclusive_group()
    owner.add_argument("--tenant", help="move the API into this tenant (every client granted it must be of it)")
    owner.add_argument("--shared", action="store_true", help="make the API shared by every tenant")
    manage(apis, "list", c.apis_list, "list APIs", examples=["warden apis list --json"])
    p = manage(apis, "delete", c.apis_delete, "delete an API that no client is granted")
    p.add_argument("identifier")

    clients = sub.add_parser("clients", help="clients").add_subparsers(
        dest="clients_command", metavar="COMMAND", parser_class=_Parser, required=True)
    p = manage(clients, "create", c.clients_create, "register a client and print its secret once",
             examples=["warden clients create billing --grant https://orders.example=read,write",
                       "warden clients create ops --grant http://127.0.0.1:8080/admin/v1=warden:admin --json"])
    p.add_argument("name")
    p.add_argument("--grant", action="append", default=[], metavar="IDENTIFIER=scope1,scope2",
                   help="allowed scopes of one API; repeat for several (the first is the default)")
    p.add_argument("--auth-method", default="client_secret_basic")
    p.add_argument("--tenant", help="the client's tenant: its tokens carry it; with the admin grant, the "
                                    "client administers that tenant only")
    p.add_argument("--client-id", help="choose the id instead of generating one")
    p.add_argument("--rate-limit", type=float, help="token requests per second (default: server setting)")
    p.add_argument("--jwks", help="JWKS file of the client's public keys (private_key_jwt)")
    p.add_argument("--jwks-uri", help="https URL of the client's JWKS (private_key_jwt)")
    p.add_argument("--federated", action="append", default=[], metavar="ISSUER=SUBJECT",
                   help="a workload identity that authenticates this client (a trusted issuer and subject)")
    p.add_argument("--require-claim", action="append", default=[], metavar="NAME=VALUE",
                   help="a claim the platform token must carry (with --federated; nested: a/b=value)")
    for flag in ("subject-dn", "san-dns", "san-uri", "san-ip", "san-email"):
        p.add_argument(f"--tls-{flag}", help=f"tls_client_auth: the certificate's {flag.replace('-', ' ')}")
    p.add_argument("--dpop-bound", action="store_true", help="refuse token requests without a DPoP proof")
    p.add_argument("--cert-bound", action="store_true", help="bind tokens to the client certificate (RFC 8705)")
    p.add_argument("--allow-token-exchange", action="store_true",
                   help="allow the token exchange grant (RFC 8693) for the APIs the client is granted")
    _conditional_access(p)
    p = manage(clients, "update", c.clients_update, "change an existing client; options not given keep their value",
             examples=["warden clients update ID --allowed-ip 10.0.0.0/8 --allowed-ip 2001:db8::/32",
                       "warden clients update ID --max-token-lifetime 10m",
                       "warden clients update ID --clear-allowed-ips --max-token-lifetime none",
                       "warden clients update ID --allow-token-exchange",
                       "warden clients update ID --no-allow-token-exchange"])
    p.add_argument("client_id")
    p.add_argument("--name")
    _conditional_access(p)
    p.add_argument("--clear-allowed-ips", action="store_true", help="accept the client from any source address")
    p.add_argument("--allow-token-exchange", action=argparse.BooleanOptionalAction, default=None,
                   help="allow (or, with --no-, refuse) the token exchange grant (RFC 8693)")
    p = manage(clients, "list", c.clients_list, "list clients")
    p.add_argument("--pending", action="store_true", help="only clients registered with approval and not yet approved")
    manage(clients, "approve", c.clients_approve, "let a client registered with --approval authenticate",
         examples=["warden clients list --pending", "warden clients approve ID"]).add_argument("client_id")
    for name, handler, text in (("show", c.clients_show, "show one client"),
                                ("disable", c.clients_disable, "disable a client (its tokens become inactive)"),
                                ("enable", c.clients_enable, "enable a client"),
                                ("delete", c.clients_delete, "delete a client with its grants and secrets")):
        manage(clients, name, handler, text).add_argument("client_id")
    secrets = clients.add_parser("secrets", help="client secrets").add_subparsers(
        dest="secrets_command", metavar="COMMAND", parser_class=_Parser, required=True)
    p = manage(secrets, "rotate", c.secrets_rotate, "add a secret; older ones expire after the grace period")
    p.add_argument("client_id")
    p.add_argument("--grace", default="24h", help="how long older secrets stay valid (default 24h)")
    manage(secrets, "list", c.secrets_list, "list a client's secrets (never their values)").add_argument("client_id")
    p = manage(secrets, "revoke", c.secrets_revoke, "revoke one secret now")
    p.add_argument("client_id")
    p.add_argument("secret_id")

    regs = sub.add_parser("registration-tokens", help="initial access tokens for dynamic registration (RFC 7591)"
                          ).add_subparsers(dest="registration_tokens_command", metavar="COMMAND", parser_class=_Parser,
                                           required=True)
    p = manage(regs, "create", c.registration_tokens_create,
             "make an initial access token for POST /oauth2/register and print it once",
             examples=["warden registration-tokens create --grant https://orders.example=read --max-uses 10 --ttl 1d",
                       "warden registration-tokens create --grant https://orders.example=read,write --tenant acme "
                       "--approval --json"])
    p.add_argument("--grant", action="append", default=[], metavar="IDENTIFIER=scope1,scope2", required=True,
                   help="the most a registered client may get at one API; repeat for several")
    p.add_argument("--max-uses", type=int, help="how many clients it may register (default: unlimited)")
    p.add_argument("--ttl", help="how long it may be used, e.g. 1d (default: until revoked)")
    p.add_argument("--tenant", help="the tenant registered clients belong to")
    p.add_argument("--approval", action="store_true",
                   help="registered clients are refused until `warden clients approve ID`")
    manage(regs, "list", c.registration_tokens_list, "list initial access tokens (never their values)")
    manage(regs, "revoke", c.registration_tokens_revoke, "stop an initial access token registering clients"
         ).add_argument("token_id")

    keys = sub.add_parser("keys", help="signing keys").add_subparsers(
        dest="keys_command", metavar="COMMAND", parser_class=_Parser, required=True)
    manage(keys, "list", c.keys_list, "list signing keys and their states")
    p = manage(keys, "rotate", c.keys_rotate, "activate the published next key and publish a new one")
    p.add_argument("--alg", action="append", choices=SIGNING_ALGS, help="only these algorithms")

    tokens = sub.add_parser("tokens", help="issued tokens").add_subparsers(
        dest="tokens_command", metavar="COMMAND", parser_class=_Parser, required=True)
    p = manage(tokens, "revoke", c.tokens_revoke, "revoke one token or every token of a client")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--jti")
    group.add_argument("--client")

    manage(sub, "export", c.export, "print the store's APIs and clients as an apply file (TOML)", json_flag=False,
         examples=["warden export > warden.toml"])
    p = _add(sub, "completion", c.completion, "print a shell completion script", common=False, server=False,
             examples=["warden completion bash > /etc/bash_completion.d/warden",
                       "warden completion zsh > ~/.zfunc/_warden", "warden completion fish > "
                       "~/.config/fish/completions/warden.fish"])
    p.add_argument("shell", choices=("bash", "zsh", "fish"))

    p = _add(sub, "token", c.token, "fetch an access token (secret from WARDEN_CLIENT_SECRET or a file, or a "
             "workload identity's platform token); exit 3: authentication refused, 4: server unavailable, "
             "5: request refused", server=False,
             examples=["warden token --issuer https://auth.example --client-id billing --audience https://api.example",
                       "warden token ... --github-oidc-audience warden --format github --github-env WARDEN_TOKEN",
                       "warden token ... --federated-token-env WARDEN_ID_TOKEN --format gitlab "
                       "--gitlab-dotenv warden.env"])
    p.add_argument("--issuer", required=True)
    p.add_argument("--client-id", required=True)
    p.add_argument("--client-secret-file")
    p.add_argument("--private-key-file", help="authenticate with private_key_jwt and this PEM private key")
    p.add_argument("--private-key-alg", choices=SIGNING_ALGS, help="the key's algorithm (default: from the key)")
    p.add_argument("--key-id", help="the kid to put in the assertion header")
    p.add_argument("--scope")
    p.add_argument("--audience")
    p.add_argument("--format", choices=("text", "json", "env", "github", "gitlab"),
                   help="text (the token; the default), json (as --json), env (VARIABLE=token, shell-quoted), "
                        "github (::add-mask:: first, then --github-output / --github-env), "
                        "gitlab (a dotenv line with --gitlab-dotenv, else export VARIABLE=token)")
    p.add_argument("--variable", default="WARDEN_ACCESS_TOKEN", help="the variable name of the env and gitlab formats")
    p.add_argument("--github-output", metavar="NAME", help="github format: append NAME=token to $GITHUB_OUTPUT "
                                                          "(a step output, steps.ID.outputs.NAME)")
    p.add_argument("--github-env", metavar="NAME", help="github format: append NAME=token to $GITHUB_ENV "
                                                       "(an environment variable of the job's later steps)")
    p.add_argument("--gitlab-dotenv", metavar="FILE", help="gitlab format: append VARIABLE=token to FILE "
                                                          "(for artifacts:reports:dotenv)")
    p.add_argument("--federated-token-file", metavar="FILE",
                   help="workload identity: send the platform token in FILE as the client assertion")
    p.add_argument("--federated-token-env", metavar="VAR",
                   help="workload identity: send the platform token in environment variable VAR "
                        "(GitLab CI id_tokens)")
    p.add_argument("--github-oidc-audience", metavar="AUD",
                   help="workload identity: request a GitHub Actions OIDC token for audience AUD "
                        "(needs permissions: id-token: write)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per HTTP request")
    p.add_argument("--attempts", type=int, default=4,
                   help="attempts before giving up on an unavailable server (with backoff)")

    p = _add(sub, "verify", c.verify, "validate an access token against an issuer's JWKS", server=False)
    p.add_argument("token", help="the token, or - to read it from stdin")
    p.add_argument("--issuer", required=True)
    p.add_argument("--audience", required=True)
    p.add_argument("--scope", action="append", default=[])

    p = manage(sub, "apply", c.apply, "make APIs and clients match a TOML file (idempotent, all-or-nothing)",
             examples=["warden apply warden.toml --dry-run", "warden apply warden.toml --secrets-file new-secrets.json",
                       "warden export > warden.toml && warden apply warden.toml   # no changes"])
    p.add_argument("file")
    p.add_argument("--prune", action="store_true", help="delete clients and APIs the file does not list")
    p.add_argument("--dry-run", action="store_true",
                   help="check everything a real run would and print the changes, without making them")
    p.add_argument("--secrets-file", help="write the secrets of new clients to this new file (JSON, mode 0600) "
                                          "instead of printing them")
    p.add_argument("--secrets-from-env", action="store_true",
                   help="take each new client's secret from WARDEN_APPLY_SECRET_<CLIENT_ID> (upper case, other "
                        "characters as _) instead of generating one")

    audit = sub.add_parser("audit", help="audit log").add_subparsers(
        dest="audit_command", metavar="COMMAND", parser_class=_Parser, required=True)
    p = _add(audit, "verify", c.audit_verify, "check a chained audit log (audit.chain); name the first broken line",
             common=False, server=False)
    p.add_argument("file", help="the audit log (JSON lines written with audit.chain = true)")

    console = sub.add_parser("console", help="the web console").add_subparsers(
        dest="console_command", metavar="COMMAND", parser_class=_Parser, required=True)
    p = manage(console, "login-url", c.console_login_url,
             "print a one-time sign-in URL for the web console (<issuer>/console)")
    p.add_argument("--issuer", help="the server's public URL (default: setting issuer)")
    p.add_argument("--read-only", action="store_true", help="the session may look but not change anything")

    p = _add(sub, "agent", c.agent, "run the token agent sidecar", common=False, server=False)
    p.add_argument("--config", dest="agent_config", required=True)
    return parser


def _goes_remote(args: argparse.Namespace) -> bool:
    """A management command sent to a server's admin API needs no server extra (remote.py is base-install)."""
    if not getattr(args, "remote_capable", False):
        return False
    from warden.cli.context import is_remote

    try:
        return is_remote(args)
    except ConfigError:
        return True  # a malformed --server: let the command report it


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    _ERRORS_AS_JSON[0] = "--json" in (sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    if args.needs_server and not _goes_remote(args) and missing_server_modules():
        _write_error(needs_server_message(args.command_name))
        return 2
    try:
        return int(handler(args))
    except ModuleNotFoundError as exc:
        if not is_server_module(exc.name):
            raise
        # a partial install: the up-front check passed but an optional server module is missing
        _write_error(f"{needs_server_message(args.command_name)} ({exc.name} is missing)")
        return 2
    except ConfigError as exc:
        _write_error(str(exc))
        return 2
    except WardenError as exc:
        _write_error(str(exc))
        return int(getattr(exc, "exit_code", 1))  # `warden token` says why it failed (cli/token_output.py)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
