#!/usr/bin/env python3
"""Helper of nats.sh: credentials for nats-server, and a small client (nats-py).

  auth DIR MODES USER PASSWORD SERVERS
      Writes DIR/auth.conf (included by every node's config) for MODES, a comma list of
      `user` (user/password), `nkey` (an nkey user, seed generated here) or `creds`
      (operator mode: operator, system account and account JWTs signed here, and a user
      .creds file); `creds` cannot be mixed with the others. Also writes DIR/client.json,
      how this helper connects to SERVERS (a comma list of nats:// URLs). Prints the facts
      (KEY=VALUE lines).
  wait-js CLIENT TIMEOUT
      Waits until JetStream answers account info (in a cluster: a meta leader is elected).
  record CLIENT SUBJECTS REPLICAS
      Creates the stream RECORDED on SUBJECTS (comma list), so that what is published there
      is kept and `messages` can print it.
  messages CLIENT N
      The last N messages of RECORDED (all when N is 0), oldest first, one JSON object a line:
      seq, subject, data (UTF-8) or data_base64, headers, time.
  publish CLIENT SUBJECT DATA          publish one core NATS message (flushed)
  check-pubsub CLIENT                  publish and receive one core NATS message
  check-jetstream CLIENT REPLICAS      a stream with REPLICAS replicas: publish, ack, read back
  check-refused URL [USER PASSWORD]    connecting with these (or no) credentials is refused
  check-stream-current CLIENT STREAM   every replica of STREAM is current (exit 1 if not)

CLIENT is the path of a client.json written by `auth`.
"""

import asyncio
import base64
import hashlib
import json
import os
import sys
import time

import nats
import nkeys
from nats.js.api import StreamConfig


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def new_key(prefix):
    """A fresh nkey pair of the given role (nkeys.PREFIX_BYTE_*)."""
    seed = nkeys.encode_seed(os.urandom(32), prefix)
    return nkeys.from_seed(bytearray(seed))


def jwt(issuer, subject_public, name, nats_claims):
    """A NATS JWT (v2) signed by `issuer` (a KeyPair) for `subject_public`."""
    claims = {
        "iat": int(time.time()),
        "iss": issuer.public_key.decode(),
        "name": name,
        "sub": subject_public,
        "nats": nats_claims,
    }
    try:
        digest = hashlib.new("sha512_256")
    except ValueError:
        digest = hashlib.sha256()
    digest.update(json.dumps(claims, separators=(",", ":")).encode())
    claims["jti"] = base64.b32encode(digest.digest()).decode().rstrip("=")
    header = b64url(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}, separators=(",", ":")).encode())
    payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
    signature = issuer.sign(f"{header}.{payload}".encode())
    return f"{header}.{payload}.{b64url(signature)}"


UNLIMITED_ACCOUNT = {
    "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1, "wildcards": True,
    "conn": -1, "leaf": -1, "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1,
}


def creds_file(user_jwt, seed):
    return (
        "-----BEGIN NATS USER JWT-----\n" + user_jwt + "\n------END NATS USER JWT------\n\n"
        "************************* IMPORTANT *************************\n"
        "NKEY Seed printed below can be used to sign and prove identity.\n"
        "NKEYs are sensitive and should be treated as secrets.\n\n"
        "-----BEGIN USER NKEY SEED-----\n" + seed + "\n------END USER NKEY SEED------\n\n"
        "*************************************************************\n"
    )


def write_secret(path, text):
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(text)


def cmd_auth(directory, modes, user, password, servers):
    modes = [m for m in modes.split(",") if m and m != "none"]
    unknown = [m for m in modes if m not in ("user", "nkey", "creds")]
    if unknown:
        sys.exit("unknown auth mode(s): %s (use user, nkey, creds or none)" % ",".join(unknown))
    if "creds" in modes and len(modes) > 1:
        sys.exit("auth mode creds (operator JWTs) cannot be combined with user or nkey")
    facts, conf, client = [], [], {}
    users = []
    if "user" in modes:
        users.append("{user: %s, password: %s}" % (json.dumps(user), json.dumps(password)))
        facts += [("USER", user), ("PASSWORD", password)]
        client = {"user": user, "password": password}
    if "nkey" in modes:
        kp = new_key(nkeys.PREFIX_BYTE_USER)
        seed, public = kp.seed.decode(), kp.public_key.decode()
        seed_file = os.path.join(directory, "user.nk")
        write_secret(seed_file, seed + "\n")
        users.append("{nkey: %s}" % public)
        facts += [("NKEY_SEED", seed), ("NKEY_PUBLIC", public), ("NKEY_SEED_FILE", seed_file)]
        if not client:
            client = {"nkeys_seed": seed_file}
    if users:
        conf.append("authorization {\n  users: [\n    %s\n  ]\n}\n" % "\n    ".join(users))
    if "creds" in modes:
        operator = new_key(nkeys.PREFIX_BYTE_OPERATOR)
        system = new_key(nkeys.PREFIX_BYTE_ACCOUNT)
        account = new_key(nkeys.PREFIX_BYTE_ACCOUNT)
        member = new_key(nkeys.PREFIX_BYTE_USER)
        pub = lambda kp: kp.public_key.decode()  # noqa: E731
        operator_jwt = jwt(operator, pub(operator), "herald-operator",
                           {"system_account": pub(system), "type": "operator", "version": 2})
        system_jwt = jwt(operator, pub(system), "SYS",
                         {"limits": {**UNLIMITED_ACCOUNT, "mem_storage": 0, "disk_storage": 0},
                          "type": "account", "version": 2})
        account_jwt = jwt(operator, pub(account), "HERALD",
                          {"limits": UNLIMITED_ACCOUNT, "type": "account", "version": 2})
        user_jwt = jwt(account, pub(member), "herald",
                       {"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
                        "type": "user", "version": 2})
        operator_file = os.path.join(directory, "operator.jwt")
        with open(operator_file, "w") as f:
            f.write(operator_jwt + "\n")
        creds = os.path.join(directory, "user.creds")
        write_secret(creds, creds_file(user_jwt, member.seed.decode()))
        conf.append(
            "operator: %s\nsystem_account: %s\nresolver: MEMORY\nresolver_preload: {\n"
            "  %s: %s\n  %s: %s\n}\n"
            % (json.dumps(operator_file), pub(system), pub(system), json.dumps(system_jwt),
               pub(account), json.dumps(account_jwt)))
        facts += [("CREDS_FILE", creds), ("ACCOUNT_PUBLIC", pub(account)),
                  ("USER_PUBLIC", pub(member)), ("OPERATOR_JWT", operator_file)]
        client = {"user_credentials": creds}
    with open(os.path.join(directory, "auth.conf"), "w") as f:
        f.write("".join(conf) or "# no authentication\n")
    client["servers"] = servers.split(",")
    write_secret(os.path.join(directory, "client.json"), json.dumps(client))
    for k, v in facts:
        print("%s=%s" % (k, v))


async def connect(client_file, **extra):
    with open(client_file) as f:
        client = json.load(f)
    servers = client.pop("servers")
    return await nats.connect(servers, allow_reconnect=True, max_reconnect_attempts=5,
                              reconnect_time_wait=0.2, connect_timeout=5, error_cb=quiet,
                              **client, **extra)


async def quiet(_error):
    pass


async def cmd_wait_js(client_file, timeout):
    deadline = time.monotonic() + float(timeout)
    last = None
    while time.monotonic() < deadline:
        try:
            nc = await connect(client_file)
            try:
                await nc.jetstream().account_info()
                return
            finally:
                await nc.close()
        except Exception as e:  # not ready yet: no leader, or the server still starting
            last = e
            await asyncio.sleep(0.2)
    sys.exit("JetStream not ready after %ss: %r" % (timeout, last))


async def cmd_record(client_file, subjects, replicas):
    nc = await connect(client_file)
    try:
        await nc.jetstream().add_stream(StreamConfig(
            name="RECORDED", subjects=subjects.split(","), num_replicas=int(replicas)))
    finally:
        await nc.close()


async def cmd_messages(client_file, n):
    nc = await connect(client_file)
    try:
        js = nc.jetstream()
        info = await js.stream_info("RECORDED")
        first, last = info.state.first_seq, info.state.last_seq
        if info.state.messages == 0:
            return
        start = first if int(n) <= 0 else max(first, last - int(n) + 1)
        for seq in range(start, last + 1):
            try:
                msg = await js.get_msg("RECORDED", seq)
            except nats.js.errors.NotFoundError:
                continue
            record = {"seq": msg.seq, "subject": msg.subject,
                      "headers": dict(msg.headers or {}), "time": str(msg.time or "")}
            try:
                record["data"] = msg.data.decode("utf-8")
            except UnicodeDecodeError:
                record["data_base64"] = base64.b64encode(msg.data).decode()
            print(json.dumps(record, sort_keys=True))
    finally:
        await nc.close()


async def cmd_publish(client_file, subject, data):
    nc = await connect(client_file)
    try:
        await nc.publish(subject, data.encode())
        await nc.flush()
    finally:
        await nc.close()


async def cmd_check_pubsub(client_file):
    nc = await connect(client_file)
    try:
        sub = await nc.subscribe("selftest.pubsub")
        await nc.publish("selftest.pubsub", b"ping")
        msg = await sub.next_msg(timeout=5)
        assert msg.data == b"ping", msg.data
    finally:
        await nc.close()


async def cmd_check_jetstream(client_file, replicas):
    nc = await connect(client_file)
    try:
        js = nc.jetstream()
        name = "SELFTEST_R%s" % replicas
        await js.add_stream(StreamConfig(name=name, subjects=["selftest.js%s" % replicas],
                                         num_replicas=int(replicas)))
        ack = await js.publish("selftest.js%s" % replicas, b"stored",
                               headers={"Nats-Msg-Id": "selftest-1"})
        again = await js.publish("selftest.js%s" % replicas, b"stored",
                                 headers={"Nats-Msg-Id": "selftest-1"})
        assert again.duplicate and again.seq == ack.seq, (ack, again)
        msg = await js.get_msg(name, ack.seq)
        assert msg.data == b"stored", msg.data
        info = await js.stream_info(name)
        assert info.config.num_replicas == int(replicas), info.config
        print("STREAM=%s" % name)
        print("LEADER=%s" % (info.cluster.leader if info.cluster else ""))
    finally:
        await nc.close()


async def cmd_check_stream_current(client_file, stream):
    nc = await connect(client_file)
    try:
        info = await nc.jetstream().stream_info(stream)
        if info.cluster and not info.cluster.leader:
            sys.exit("the stream has no leader")
        replicas = (info.cluster.replicas or []) if info.cluster else []
        behind = [r.name for r in replicas if not r.current or r.offline]
        if behind:
            sys.exit("replicas not current: %s" % ", ".join(behind))
    finally:
        await nc.close()


async def cmd_check_refused(url, user=None, password=None):
    extra = {"user": user, "password": password} if user else {}
    try:
        nc = await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0,
                                connect_timeout=5, error_cb=quiet, **extra)
    except Exception as e:
        if "Authorization Violation" in str(e) or "authorization" in str(e).lower():
            return
        sys.exit("refused, but not for authorization: %r" % e)
    await nc.close()
    sys.exit("the server accepted the connection")


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[1], argv[2:]
    if cmd == "auth":
        cmd_auth(*args)
        return 0
    handlers = {
        "wait-js": cmd_wait_js, "record": cmd_record, "messages": cmd_messages,
        "publish": cmd_publish,
        "check-pubsub": cmd_check_pubsub, "check-jetstream": cmd_check_jetstream,
        "check-refused": cmd_check_refused, "check-stream-current": cmd_check_stream_current,
    }
    if cmd not in handlers:
        print("unknown command %r" % cmd, file=sys.stderr)
        return 2
    try:
        asyncio.run(handlers[cmd](*args))
    except (Exception, AssertionError) as e:  # one line for the caller's log, not a traceback
        print("nats_helper %s: %s: %s" % (cmd, type(e).__name__, e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
