"""Handlers of the `warden` commands. Each parses its arguments, calls a service, prints."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from warden.cli.context import is_remote, operations, settings_from_args
from warden.cli.output import emit, table, view_table
from warden.core.durations import parse_duration, render_duration
from warden.core.redaction import redact
from warden.errors import ConfigError
from warden.services.views import render_time

if TYPE_CHECKING:
    from warden.services.operations import AdminOperations

__all__ = [
    "agent",
    "apis_create",
    "apis_delete",
    "apis_list",
    "apis_update",
    "apply",
    "audit_verify",
    "clients_approve",
    "clients_create",
    "clients_delete",
    "clients_disable",
    "clients_enable",
    "clients_list",
    "clients_show",
    "clients_update",
    "completion",
    "console_login_url",
    "export",
    "init",
    "keys_list",
    "keys_rotate",
    "registration_tokens_create",
    "registration_tokens_list",
    "registration_tokens_revoke",
    "secrets_list",
    "secrets_revoke",
    "secrets_rotate",
    "serve",
    "token",
    "tokens_revoke",
    "verify",
]


def _json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False))


_time = render_time


def _change(args: argparse.Namespace, change: Callable[[AdminOperations], object], data: object, text: str) -> int:
    """Make one change through the management operations, then report it (`data` with --json, else `text`)."""
    with operations(args) as ops:
        change(ops)
    emit(data, _json(args), text)
    return 0


def _duration(text: str, what: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise ConfigError(f"{what}: {exc}") from None


# init and serve ----------------------------------------------------------------
def init(args: argparse.Namespace) -> int:
    from warden.services.bootstrap import prepare_store

    settings = settings_from_args(args)
    report = prepare_store(settings)
    where = "the configured database" if settings.database_url else os.path.abspath(settings.data_dir)
    emit({"store": where, "keys": report.keys}, _json(args),
         f"store ready in {where} (signing keys: "
         + ", ".join(f"{n} {state}" for state, n in sorted(report.keys.items())) + ")")
    return 0


def serve(args: argparse.Namespace) -> int:
    from warden.server.serve import run_server

    overrides = {"server.host": args.host, "server.port": args.port, "server.workers": args.workers,
                 "issuer": args.issuer, "server.tls_cert": args.tls_cert, "server.tls_key": args.tls_key,
                 "server.tls_client_ca": args.tls_client_ca}
    settings = settings_from_args(args, **overrides)
    return run_server(settings)


# APIs --------------------------------------------------------------------------
def _api_text(api: dict[str, Any], verb: str) -> str:
    return (f"{verb} API {api['identifier']} (scopes: {' '.join(api['scopes'])}, "
            f"ttl {render_duration(api['ttl'])}, {api['alg']})")


def apis_create(args: argparse.Namespace) -> int:
    ttl = _duration(args.ttl, "--ttl")
    scopes = args.scopes.replace(",", " ").split()
    with operations(args) as ops:
        api = ops.create_api(args.identifier, scopes, ttl=ttl, alg=args.alg, name=args.name,
                             dpop_required=args.require_dpop, cert_bound=args.cert_bound, tenant=args.tenant)
    emit(api, _json(args), _api_text(api, "created"))
    return 0


def apis_update(args: argparse.Namespace) -> int:
    from warden.errors import NotFound

    ttl = _duration(args.ttl, "--ttl") if args.ttl is not None else None
    with operations(args) as ops:
        try:
            old = ops.get_api(args.identifier)
        except NotFound:
            raise NotFound(f"no API {args.identifier} (create it with `warden apis create`)") from None
        scopes = args.scopes.replace(",", " ").split() if args.scopes is not None else list(old["scopes"])
        api = ops.save_api(
            args.identifier, scopes, ttl=old["ttl"] if ttl is None else ttl,
            alg=args.alg or old["alg"], name=old["name"] if args.name is None else args.name,
            dpop_required=old["dpop_required"] if args.require_dpop is None else args.require_dpop,
            cert_bound=old["cert_bound"] if args.cert_bound is None else args.cert_bound,
            tenant=None if args.shared else args.tenant if args.tenant is not None else old.get("tenant"))
    emit(api, _json(args), _api_text(api, "updated" if api["changed"] else "unchanged"))
    return 0


def apis_list(args: argparse.Namespace) -> int:
    with operations(args) as ops:
        apis = ops.list_apis()
    emit(apis, _json(args),
         table([(a["identifier"], " ".join(a["scopes"]), render_duration(a["ttl"]), a["alg"], a.get("tenant") or "-")
                for a in apis], ("IDENTIFIER", "SCOPES", "TTL", "ALG", "TENANT")))
    return 0


def apis_delete(args: argparse.Namespace) -> int:
    return _change(args, lambda ops: ops.delete_api(args.identifier), {"deleted": args.identifier},
                   f"deleted API {args.identifier}")


# clients -----------------------------------------------------------------------
def _client_metadata(args: argparse.Namespace) -> dict[str, object]:
    """The raw client metadata the flags describe, checked here (remote mode: leniently, the server
    applies its own dev_mode) so that a mistake is reported the same way in both modes."""
    from warden.core.client_metadata import parse_client_metadata

    raw: dict[str, object] = {}
    if args.jwks:
        try:
            with open(args.jwks, encoding="utf-8") as fh:
                raw["jwks"] = json.load(fh)
        except OSError as exc:
            raise ConfigError(f"cannot read --jwks file {args.jwks}: {exc.strerror}") from None
        except ValueError:
            raise ConfigError(f"--jwks file {args.jwks} is not JSON") from None
    if args.jwks_uri:
        raw["jwks_uri"] = args.jwks_uri
    claims = {}
    for item in args.require_claim:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"--require-claim {item!r}: expected NAME=VALUE")
        claims[name] = value
    if claims and not args.federated:
        raise ConfigError("--require-claim applies to --federated identities")
    federated = []
    for item in args.federated:
        issuer, sep, subject = item.rpartition("=")
        if not sep or not issuer or not subject:
            raise ConfigError(f"--federated {item!r}: expected ISSUER=SUBJECT")
        federated.append({"issuer": issuer, "subject": subject, "claims": claims})
    if federated:
        raw["federated"] = federated
    for flag in ("subject_dn", "san_dns", "san_uri", "san_ip", "san_email"):
        if getattr(args, f"tls_{flag}", None):
            raw[f"tls_client_auth_{flag}"] = getattr(args, f"tls_{flag}")
    if getattr(args, "dpop_bound", False):
        raw["dpop_bound_access_tokens"] = True
    if getattr(args, "cert_bound", False):
        raw["tls_client_certificate_bound_access_tokens"] = True
    if getattr(args, "allow_token_exchange", False):
        raw["token_exchange"] = True
    dev_mode = True if is_remote(args) else settings_from_args(args).dev_mode
    try:
        parse_client_metadata(raw, allow_loopback_http=dev_mode)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return raw


def clients_create(args: argparse.Namespace) -> int:
    from warden.services.admin import parse_grant_spec

    grants = [parse_grant_spec(g) for g in args.grant]
    metadata = _client_metadata(args)
    with operations(args) as ops:
        data = ops.create_client(args.name, grants, auth_method=args.auth_method, tenant=args.tenant,
                                 client_id=args.client_id, rate_limit=args.rate_limit, metadata=metadata,
                                 **_conditions(args))  # type: ignore[arg-type]
    text = f"client_id:     {data['client_id']}"
    if "client_secret" in data:
        text += f"\nclient_secret: {data['client_secret']}\n(the secret is shown once; store it now)"
    emit(data, _json(args), text)
    return 0


def _conditions(args: argparse.Namespace) -> dict[str, object]:
    """The conditional-access options given on the command line (those not given are left out)."""
    options: dict[str, object] = {}
    if args.allowed_ip is not None:
        options["allowed_ips"] = args.allowed_ip
    if getattr(args, "clear_allowed_ips", False):
        if args.allowed_ip is not None:
            raise ConfigError("give --allowed-ip or --clear-allowed-ips, not both")
        options["allowed_ips"] = []
    if args.max_token_lifetime is not None:
        clear = args.max_token_lifetime.strip().lower() == "none" and hasattr(args, "clear_allowed_ips")
        options["max_token_lifetime"] = None if clear else _duration(args.max_token_lifetime, "--max-token-lifetime")
    return options


def clients_update(args: argparse.Namespace) -> int:
    options = _conditions(args)
    with operations(args) as ops:
        data = ops.update_client(args.client_id, name=args.name, token_exchange=args.allow_token_exchange,
                                 **options)  # type: ignore[arg-type]
    metadata = data.get("metadata")
    exchange = "allowed" if isinstance(metadata, dict) and metadata.get("token_exchange") else "not allowed"
    emit(data, _json(args), f"{'updated' if data['changed'] else 'unchanged'} client {args.client_id}"
                            f" (token exchange: {exchange})")
    return 0


def clients_list(args: argparse.Namespace) -> int:
    with operations(args) as ops:
        clients = ops.list_clients()
    data = [{"client_id": c["client_id"], "name": c["name"], "enabled": c["enabled"],
             "auth_method": c["auth_method"], "tenant": c["tenant"], "apis": [g["api"] for g in c["grants"]],
             "pending_approval": bool(c.get("pending_approval"))}
            for c in clients]
    data = [c for c in data if c["pending_approval"] or not args.pending]
    emit(data, _json(args), table([(c["client_id"], c["name"], "pending" if c["pending_approval"] else
                                    ("yes" if c["enabled"] else "no"), c["auth_method"], c["tenant"],
                                    ",".join(c["apis"])) for c in data],
                                  ("CLIENT_ID", "NAME", "ENABLED", "AUTH_METHOD", "TENANT", "APIS")))
    return 0


def clients_show(args: argparse.Namespace) -> int:
    with operations(args) as ops:
        data = ops.get_client(args.client_id)
    emit(data, _json(args), "\n".join(f"{k}: {json.dumps(v) if not isinstance(v, str) else v}"
                                      for k, v in data.items()))
    return 0


def _set_enabled(args: argparse.Namespace, enabled: bool) -> int:
    with operations(args) as ops:
        ops.set_client_enabled(args.client_id, enabled)
    word = "enabled" if enabled else "disabled"
    emit({"client_id": args.client_id, "enabled": enabled}, _json(args), f"{word} client {args.client_id}")
    return 0


def clients_disable(args: argparse.Namespace) -> int:
    return _set_enabled(args, False)


def clients_enable(args: argparse.Namespace) -> int:
    return _set_enabled(args, True)


def clients_approve(args: argparse.Namespace) -> int:
    with operations(args) as ops:
        changed = ops.approve_client(args.client_id)
    emit({"client_id": args.client_id, "approved": changed}, _json(args),
         f"approved client {args.client_id}" if changed else f"client {args.client_id} was not pending approval")
    return 0


def clients_delete(args: argparse.Namespace) -> int:
    return _change(args, lambda ops: ops.delete_client(args.client_id), {"deleted": args.client_id},
                   f"deleted client {args.client_id}")


# secrets -----------------------------------------------------------------------
def secrets_rotate(args: argparse.Namespace) -> int:
    grace = _duration(args.grace, "--grace")
    with operations(args) as ops:
        new = ops.rotate_secret(args.client_id, grace)
    emit({"client_id": new["client_id"], "secret_id": new["secret_id"], "client_secret": new["client_secret"],
          "previous_secrets_expire_at": _time(time.time() + grace)}, _json(args),
         f"secret_id:     {new['secret_id']}\nclient_secret: {new['client_secret']}\n"
         f"(older secrets stay valid for {render_duration(grace)}; the secret is shown once)")
    return 0


def secrets_list(args: argparse.Namespace) -> int:
    with operations(args) as ops:
        data = sorted(ops.list_secrets(args.client_id), key=lambda d: (d["created_at"] or "", d["secret_id"]))
    emit(data, _json(args), view_table(data, secret_id="SECRET_ID", state="STATE", hint="HINT", created_at="CREATED",
                                       expires_at="EXPIRES", last_used_at="LAST_USED"))
    return 0


def secrets_revoke(args: argparse.Namespace) -> int:
    return _change(args, lambda ops: ops.revoke_secret(args.client_id, args.secret_id),
                   {"client_id": args.client_id, "revoked": args.secret_id},
                   f"revoked secret {args.secret_id} of client {args.client_id}")


# dynamic registration --------------------------------------------------------------
def registration_tokens_create(args: argparse.Namespace) -> int:
    from warden.services.admin import parse_grant_spec

    grants = [parse_grant_spec(g) for g in args.grant]
    ttl = _duration(args.ttl, "--ttl") if args.ttl is not None else None
    with operations(args) as ops:
        data = ops.create_registration_token(grants, max_uses=args.max_uses, ttl=ttl, tenant=args.tenant,
                                             approval=args.approval)
    emit(data, _json(args), f"token_id:             {data['token_id']}\n"
                            f"initial_access_token: {data['initial_access_token']}\n"
                            "(shown once; registrants send it as Authorization: Bearer to POST /oauth2/register)")
    return 0


def registration_tokens_list(args: argparse.Namespace) -> int:
    with operations(args) as ops:
        data = ops.list_registration_tokens()
    emit(data, _json(args), table([(d["token_id"], d["state"], f"{d['uses']}/{d['max_uses'] or '-'}",
                                    d["expires_at"], d["tenant"], "yes" if d["approval"] else "no",
                                    ",".join(g["api"] for g in d["grants"])) for d in data],
                                  ("TOKEN_ID", "STATE", "USES", "EXPIRES", "TENANT", "APPROVAL", "APIS")))
    return 0


def registration_tokens_revoke(args: argparse.Namespace) -> int:
    return _change(args, lambda ops: ops.revoke_registration_token(args.token_id), {"revoked": args.token_id},
                   f"revoked registration token {args.token_id}")


# keys --------------------------------------------------------------------------
def keys_list(args: argparse.Namespace) -> int:
    with operations(args) as ops:
        data = sorted(ops.list_keys(), key=lambda d: (d["created_at"] or "", d["kid"]))  # oldest first, both modes
    emit(data, _json(args), view_table(data, kid="KID", alg="ALG", state="STATE", created_at="CREATED",
                                       activated_at="ACTIVATED", retired_at="RETIRED"))
    return 0


def keys_rotate(args: argparse.Namespace) -> int:
    with operations(args) as ops:
        activated = ops.rotate_keys(args.alg)
    emit({"activated": activated}, _json(args), "activated " + (", ".join(activated) or "nothing"))
    return 0


# tokens ------------------------------------------------------------------------
def tokens_revoke(args: argparse.Namespace) -> int:
    with operations(args) as ops:
        if args.jti:
            ops.revoke_jti(args.jti)
            emit({"revoked_jti": args.jti}, _json(args), f"revoked token {args.jti}")
        else:
            at = ops.revoke_client_tokens(args.client)
            emit({"client_id": args.client, "revoked_before": at}, _json(args),
                 f"revoked every token of client {args.client} issued until {at}")
    return 0


def token(args: argparse.Namespace) -> int:
    """Fetch one token; the exit code says why it failed (`token_output.EXIT_*`)."""
    from warden.cli.platform_tokens import platform_token
    from warden.cli.token_output import (
        EXIT_USAGE,
        CommandFailed,
        IssuedAccessToken,
        TokenDestinations,
        exit_code_for,
        write_token,
    )
    from warden.client import ClientCredentials, RetryPolicy, SigningKey, TokenError

    fmt = args.format or ("json" if _json(args) else "text")
    destinations = TokenDestinations(variable=args.variable, github_output=args.github_output,
                                     github_env=args.github_env, gitlab_dotenv=args.gitlab_dotenv)
    destinations.validate(fmt, os.environ)
    sources = [f for f in (args.federated_token_file, args.federated_token_env, args.github_oidc_audience) if f]
    if len(sources) > 1:
        raise CommandFailed("give one of --federated-token-file, --federated-token-env, --github-oidc-audience",
                            EXIT_USAGE)
    if sources and (args.client_secret_file or args.private_key_file):
        raise CommandFailed("a workload identity needs no secret or key: drop --client-secret-file and "
                            "--private-key-file", EXIT_USAGE)
    if args.private_key_file and args.client_secret_file:
        raise CommandFailed("give --client-secret-file or --private-key-file, not both", EXIT_USAGE)
    if (args.private_key_alg or args.key_id) and not args.private_key_file:
        raise CommandFailed("--private-key-alg and --key-id go with --private-key-file", EXIT_USAGE)
    assertion = platform_token(file=args.federated_token_file, env=args.federated_token_env,
                               github_audience=args.github_oidc_audience)
    key = (SigningKey.from_pem_file(args.private_key_file, args.private_key_alg, args.key_id)
           if args.private_key_file else None)
    if (assertion is None and key is None and not args.client_secret_file
            and not os.environ.get("WARDEN_CLIENT_SECRET")):
        raise ConfigError("set WARDEN_CLIENT_SECRET, or pass --client-secret-file, --private-key-file or a "
                          "workload identity (--federated-token-file, --federated-token-env, --github-oidc-audience)")
    cc = ClientCredentials(issuer=args.issuer, client_id=args.client_id, audience=args.audience, scope=args.scope,
                           client_secret_file=args.client_secret_file, private_key=key,
                           client_assertion=(lambda: assertion) if assertion is not None else None,
                           timeout=args.timeout, retry=RetryPolicy(max_attempts=args.attempts))
    try:
        issued = cc.get_access_token()
    except TokenError as exc:
        raise CommandFailed(f"no token: {exc}", exit_code_for(exc.error, status=exc.status,
                                                               retryable=exc.retryable)) from None
    result = IssuedAccessToken(issued.access_token, issued.token_type, int(issued.expires_in),
                               " ".join(issued.scope) if issued.scope else None)
    write_token(result, fmt, destinations, sys.stdout, os.environ)
    return 0


def verify(args: argparse.Namespace) -> int:
    from warden.protocol.errors import OAuthError
    from warden.resource import Validator

    raw = sys.stdin.read().strip() if args.token == "-" else args.token
    validator = Validator(issuer=args.issuer, audience=args.audience)
    try:
        claims = validator.validate(raw, scopes=args.scope)
    except OAuthError as exc:
        sys.stderr.write(f"warden: invalid token: {redact(exc.description or exc.error)}\n")
        return 1
    emit(dict(claims.payload), True)
    return 0


def _secret_env_name(client_id: str) -> str:
    return "WARDEN_APPLY_SECRET_" + "".join(c if c.isalnum() else "_" for c in client_id.upper())


def apply(args: argparse.Namespace) -> int:
    from warden._toml import load_toml
    from warden.errors import NotFound
    from warden.services.apply import parse_apply_document

    document = load_toml(args.file, "apply file")
    # checked here in both modes, so a mistake names the file the same way (the server checks again)
    state = parse_apply_document(document, args.file,
                                 dev_mode=True if is_remote(args) else settings_from_args(args).dev_mode)
    if args.secrets_file and os.path.exists(args.secrets_file):
        raise ConfigError(f"--secrets-file {args.secrets_file} already exists; give a new path")
    with operations(args) as ops:
        given = None
        if args.secrets_from_env:
            new = []
            for c in state.clients:
                try:
                    ops.get_client(c.client_id)
                except NotFound:
                    new.append(c)
            missing = [_secret_env_name(c.client_id) for c in new if not os.environ.get(_secret_env_name(c.client_id))
                       and c.auth_method in ("client_secret_basic", "client_secret_post")]
            if missing:
                raise ConfigError(f"--secrets-from-env: {missing[0]} is not set")
            given = {c.client_id: os.environ[_secret_env_name(c.client_id)] for c in new
                     if os.environ.get(_secret_env_name(c.client_id))}
        result = ops.apply(_json_ready(document), prune=args.prune, dry_run=args.dry_run, secrets=given)
    changes: list[str] = list(result["changes"])
    secrets: list[dict[str, str]] = list(result["secrets"])
    shown = [] if args.secrets_file or args.secrets_from_env else secrets
    if args.secrets_file and secrets:
        fd = os.open(args.secrets_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({s["client_id"]: {"secret_id": s["secret_id"], "client_secret": s["client_secret"]}
                       for s in secrets}, fh, indent=2)
    data = {"changes": changes, "dry_run": args.dry_run,
            "secrets": [{"client_id": s["client_id"], "secret_id": s["secret_id"],
                         "client_secret": s["client_secret"]} for s in shown]}
    lines = [("would " if args.dry_run else "") + c for c in changes] or ["no changes"]
    lines += [f"client_secret for {s['client_id']}: {s['client_secret']} (shown once)" for s in shown]
    if args.secrets_file and secrets:
        lines.append(f"secrets of {len(secrets)} new client(s) written to {args.secrets_file}")
    emit(data, _json(args), "\n".join(lines))
    return 0


def _json_ready(document: dict[str, object]) -> dict[str, object]:
    """TOML values as JSON (a TOML date or time, which no apply key takes, becomes its text and is refused)."""
    loaded: dict[str, object] = json.loads(json.dumps(document, default=str))
    return loaded


def export(args: argparse.Namespace) -> int:
    from warden.services.apply import render_apply_file

    with operations(args) as ops:
        document = ops.export()
    sys.stdout.write(render_apply_file(document))
    return 0


def completion(args: argparse.Namespace) -> int:
    from warden.cli.completion import render_completion
    from warden.cli.main import build_parser

    sys.stdout.write(render_completion(build_parser(), args.shell))
    return 0


def agent(args: argparse.Namespace) -> int:
    from warden.agent import run_agent

    return int(run_agent(args.agent_config))


def audit_verify(args: argparse.Namespace) -> int:
    """Exit 0 when every line links to the one before it; 1 naming the first line that does not."""
    from warden.services.audit import verify_chain

    try:
        with open(args.file, encoding="utf-8") as fh:
            count, broken, why = verify_chain(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read {args.file}: {exc.strerror}") from None
    except UnicodeDecodeError:
        sys.stderr.write(f"warden: {args.file}: not UTF-8 text\n")
        return 1
    if broken is not None:
        sys.stderr.write(f"warden: {args.file}: chain broken at line {broken}: {why} ({count} events verified before it)\n")
        return 1
    print(f"{args.file}: {count} events, chain intact")
    return 0


# console ---------------------------------------------------------------------------
def console_login_url(args: argparse.Namespace) -> int:
    """Print a one-time sign-in URL for the web console (`<issuer>/console`)."""
    with operations(args) as ops:
        login = ops.console_login_url(issuer=args.issuer, read_only=args.read_only)
    emit(login, _json(args), f"{login['url']}\n(works once, until {login['expires_at']}; open it in a browser)")
    return 0
